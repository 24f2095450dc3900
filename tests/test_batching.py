"""Dynamic batching: concurrent requests for one network share a call, and each answer equals
what the request gets alone."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mrmp.rates import RateKey
from service.app import create_app
from service.batching import Batcher
from service.errors import BadShapeError
from service.host import Served
from service.metrics import BATCH_BUCKETS, BUCKETS, Metrics
from service.settings import Settings
from tests.service_helpers import sequence

CLASSES = 8


def v1_body(frames: list[int], seed: int, **ask) -> dict:
    seqs = [sequence(frames=t, seed=seed + i) for i, t in enumerate(frames)]
    return {"sequences": seqs, "top_k": CLASSES, **ask}


def v2_body(frames: int, count: int, seed: int, **parameters) -> dict:
    seqs = np.array([sequence(frames=frames, seed=seed + i) for i in range(count)], np.float32)
    return {
        "inputs": [
            {
                "name": "skeleton",
                "shape": list(seqs.shape),
                "datatype": "FP32",
                "data": seqs.reshape(-1).tolist(),
            }
        ],
        "parameters": parameters,
        "outputs": [{"name": "logits"}],
    }


def scores(answer: dict) -> np.ndarray:
    """(B, classes) probabilities of a v1 answer, by class index; or a V2 answer's logits."""
    if "outputs" in answer:
        (out,) = answer["outputs"]
        return np.asarray(out["data"], np.float32).reshape(out["shape"])
    rows = []
    for p in answer["predictions"]:
        row = np.zeros(CLASSES, np.float32)
        for t in p["top_k"]:
            row[t["class_index"]] = t["score"]
        rows.append(row)
    return np.asarray(rows)


def requests(name: str) -> list[tuple[str, dict]]:
    """Both protocols, sequences of different lengths, two networks (a tier and a cached rate),
    and one request refused at its description."""
    v2 = f"/v2/models/{name}/infer"
    # Every joint at one point: the descriptor has no extent to normalise by.
    bad = {"sequences": [[[[0.5, 0.5, 0.5]] * 30] * 12], "tier": "balanced"}
    return [
        ("/v1/classify", v1_body([12], 0, tier="balanced")),
        ("/v1/classify", v1_body([30, 7, 18], 10, tier="balanced")),
        (v2, v2_body(20, 2, 20, tier="balanced")),
        ("/v1/classify", bad),
        ("/v1/classify", v1_body([25], 30, rate=0.93)),
        (v2, v2_body(9, 3, 40, rate=0.93)),
        ("/v1/classify", v1_body([16, 40], 50, tier="balanced")),
        (v2, v2_body(14, 1, 60, tier="balanced")),
    ]


async def post_all(store: Path, tmp: Path, concurrently: bool, **settings) -> tuple[list, str]:
    """Each request's (status, answer) and the /metrics text of a fresh app."""
    app = create_app(
        Settings(model_path=store, tier_dir=tmp / "tiers", onnx_tiers=False, **settings)
    )
    app.state.host.prepare_tiers()  # the lifespan's work, which ASGITransport does not run
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mrmp") as client:
        todo = requests(app.state.host.name)
        if concurrently:
            answers = await asyncio.gather(*(client.post(path, json=b) for path, b in todo))
        else:
            answers = [await client.post(path, json=b) for path, b in todo]
        metrics = (await client.get("/metrics")).text
    return [(r.status_code, r.json()) for r in answers], metrics


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_batched_answers_equal_the_unbatched(synthetic_store, tmp_path):
    # A long delay: the batches run when every request in flight waits in one, not on a timer.
    batched, text = asyncio.run(
        post_all(synthetic_store, tmp_path, True, batch_max_delay_ms=5000, batch_max_size=64)
    )
    alone, alone_text = asyncio.run(
        post_all(synthetic_store, tmp_path, False, batch_max_delay_ms=0)
    )
    statuses = [s for s, _ in batched]
    assert statuses == [200, 200, 200, 422, 200, 200, 200, 200], batched
    assert "sequence 0" in batched[3][1]["error"]
    for (status, answer), (status_alone, answer_alone) in zip(batched, alone, strict=True):
        assert status == status_alone
        if status == 200:
            np.testing.assert_allclose(scores(answer), scores(answer_alone), rtol=0, atol=1e-5)
            assert answer.get("rate_served", answer.get("parameters", {}).get("rate_served")) in (
                0.9,
                0.93,
            )

    sizes = families(text)["mrmp_batch_size"]
    by_name = {s.name: s.value for s in sizes.samples}
    # 9 sequences at the tier in one call, 4 at rate 0.93 in another.
    assert (by_name["mrmp_batch_size_count"], by_name["mrmp_batch_size_sum"]) == (2, 13)
    buckets = {s.labels["le"]: s.value for s in sizes.samples if s.name.endswith("_bucket")}
    assert list(buckets) == [*(str(float(b)) for b in BATCH_BUCKETS), "+Inf"]
    assert buckets["2.0"] == 0 and buckets["4.0"] == 1 and buckets["16.0"] == 2

    alone_sizes = families(alone_text)["mrmp_batch_size"]
    alone_sum = next(s.value for s in alone_sizes.samples if s.name == "mrmp_batch_size_sum")
    alone_count = next(s.value for s in alone_sizes.samples if s.name == "mrmp_batch_size_count")
    assert (alone_count, alone_sum) == (7, 13)  # one call per answered request

    wait = families(text)["mrmp_batch_queue_wait_seconds"]
    wait_le = [s.labels["le"] for s in wait.samples if s.name.endswith("_bucket")]
    assert wait_le == [*(str(b) for b in BUCKETS), "+Inf"]
    count = next(s.value for s in wait.samples if s.name.endswith("_count"))
    assert count == 7  # once per request that reached a batch
    inference = families(text)["mrmp_inference_duration_seconds"]
    assert sum(s.value for s in inference.samples if s.name.endswith("_count")) == 7


# -- the batcher alone -------------------------------------------------------------------------


class Doubling:
    """A runner that records the batch sizes it was called with; it fails on a NaN."""

    backend = "test"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(len(x))
        if np.isnan(x).any():
            raise FloatingPointError("a NaN reached the network")
        return x.reshape(len(x), -1)[:, :2] * 2

    def nbytes(self) -> int:
        return 0


KEY = RateKey.of(0.5, "prior")


def network(runner: Doubling, looked_up: list | None = None):
    """A `Network` that serves every key with `runner`, recording the keys looked up."""
    served = Served(runner, None, KEY)  # type: ignore[arg-type]

    def lookup(key: RateKey) -> tuple[Served, bool, float]:
        if looked_up is not None:
            looked_up.append(key)
        return served, True, 0.0

    return lookup


def rows(*values: float) -> np.ndarray:
    return np.asarray(values, np.float32)[:, None, None].repeat(2, axis=2)


def as_descriptors(sequences) -> tuple[np.ndarray, list[list]]:
    """A `Prepare` for the batcher alone: the rows are their own descriptors, no warnings."""
    return np.asarray(sequences, np.float32), [[] for _ in sequences]


def test_batch_runs_when_full_or_at_its_delay():
    runner = Doubling()

    async def scenario() -> tuple[list, float]:
        # Ten requests in flight elsewhere: only the size or the delay runs a batch.
        batcher = Batcher(3, 0.05, Metrics(), lambda: 10, as_descriptors, network(runner))
        t0 = time.perf_counter()
        full = await asyncio.gather(batcher.run(KEY, rows(1, 2)), batcher.run(KEY, rows(3)))
        waited = await asyncio.gather(batcher.run(KEY, rows(4)), batcher.run(KEY, rows(5)))
        return [*full, *waited], time.perf_counter() - t0

    runs, elapsed = asyncio.run(scenario())
    assert runner.calls == [3, 2]
    np.testing.assert_array_equal(runs[0].logits, [[2, 2], [4, 4]])
    np.testing.assert_array_equal(runs[3].logits, [[10, 10]])
    assert runs[0].queue_s < 0.04 <= runs[2].queue_s  # the full batch did not wait
    assert elapsed >= 0.05


def test_a_batch_that_derives_reports_one_miss_as_the_rate_cache_does():
    runner = Doubling()
    served = Served(runner, None, KEY)  # type: ignore[arg-type]
    derived: list[RateKey] = []

    def deriving(key: RateKey) -> tuple[Served, bool, float]:
        derived.append(key)
        return served, len(derived) > 1, 0.25 if len(derived) == 1 else 0.0

    async def scenario() -> list:
        batcher = Batcher(3, 5.0, Metrics(), lambda: 10, as_descriptors, deriving)
        return await asyncio.gather(*(batcher.run(KEY, rows(i)) for i in range(3)))

    runs = asyncio.run(scenario())
    assert runner.calls == [3] and len(derived) == 1
    # One request derived the network; the others shared it, like a rate-cache waiter.
    assert [r.cache_hit for r in runs] == [False, True, True]
    assert [r.derive_s for r in runs] == [0.25, 0.0, 0.0]


def test_a_failed_call_fails_its_batch_and_a_cancelled_request_is_left_out():
    runner = Doubling()

    async def scenario() -> list:
        in_flight = [3]
        batcher = Batcher(8, 5.0, Metrics(), lambda: in_flight[0], as_descriptors, network(runner))
        first = asyncio.ensure_future(batcher.run(KEY, rows(1)))
        gone = asyncio.ensure_future(batcher.run(KEY, rows(2)))
        await asyncio.sleep(0)
        gone.cancel()  # its client went away
        await asyncio.sleep(0)
        in_flight[0] = 2  # ... and it left the data plane
        out = [await asyncio.gather(first, batcher.run(KEY, rows(3)))]
        bad = batcher.run(KEY, rows(float("nan")))
        good = batcher.run(KEY, rows(4))
        out.append(await asyncio.gather(bad, good, return_exceptions=True))
        return out

    (ok, failed) = asyncio.run(scenario())
    assert runner.calls == [2, 2]  # the cancelled request's row was not run
    np.testing.assert_array_equal(ok[1].logits, [[6, 6]])
    assert all(isinstance(r, FloatingPointError) for r in failed)


@pytest.mark.parametrize("delay", [0.0, 5.0])
def test_a_lone_request_does_not_wait(delay):
    runner = Doubling()

    async def scenario():
        batcher = Batcher(32, delay, Metrics(), lambda: 1, as_descriptors, network(runner))
        return await batcher.run(KEY, rows(7))

    run = asyncio.run(scenario())
    assert run.queue_s < 0.05 and runner.calls == [1]
    np.testing.assert_array_equal(run.logits, [[14, 14]])


def test_a_refused_request_in_a_batch_is_refused_alone_and_the_others_run():
    runner = Doubling()
    described: list[int] = []
    looked_up: list[RateKey] = []

    def prepare(sequences):
        described.append(len(sequences))
        for i, s in enumerate(sequences):
            if np.asarray(s).min() < 0:
                raise BadShapeError(f"sequence {i}: a negative row")
        return as_descriptors(sequences)

    async def scenario() -> list:
        batcher = Batcher(8, 5.0, Metrics(), lambda: 3, prepare, network(runner, looked_up))
        todo = [rows(1), rows(2, -1), rows(3, 4)]
        return await asyncio.gather(*(batcher.run(KEY, r) for r in todo), return_exceptions=True)

    first, refused, last = asyncio.run(scenario())
    # Described together first; on the refusal, each request alone; one call for the others.
    assert described == [5, 1, 2, 2] and runner.calls == [3]
    assert isinstance(refused, BadShapeError) and str(refused).startswith("sequence 1:")
    np.testing.assert_array_equal(first.logits, [[2, 2]])
    np.testing.assert_array_equal(last.logits, [[6, 6], [8, 8]])
    assert first.warnings == [[]] and len(last.warnings) == 2
    assert looked_up == [KEY]  # once for the batch's call


def test_a_batch_refused_whole_looks_no_network_up():
    runner = Doubling()
    looked_up: list[RateKey] = []

    def refuse(sequences):
        raise BadShapeError("sequence 0: refused")

    async def scenario() -> list:
        batcher = Batcher(8, 5.0, Metrics(), lambda: 2, refuse, network(runner, looked_up))
        todo = [batcher.run(KEY, rows(1)), batcher.run(KEY, rows(2))]
        return await asyncio.gather(*todo, return_exceptions=True)

    assert all(isinstance(r, BadShapeError) for r in asyncio.run(scenario()))
    assert looked_up == [] and runner.calls == []  # a refused request derives nothing


def test_a_refused_request_derives_no_network_and_is_not_counted_degraded(
    synthetic_store, tmp_path
):
    # Every joint at one point, at rates no tier serves; three allowed to degrade under load.
    bad = {"sequences": [[[[0.5, 0.5, 0.5]] * 30] * 12], "rate": 0.77, "allow_degrade": True}

    async def scenario() -> tuple[list[int], str]:
        settings = Settings(
            model_path=synthetic_store,
            tier_dir=tmp_path / "tiers",
            onnx_tiers=False,
            degrade_in_flight=1,
        )
        app = create_app(settings)
        app.state.host.prepare_tiers()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mrmp") as client:
            together = [client.post("/v1/classify", json=bad) for _ in range(3)]
            answers = await asyncio.gather(*together)
            alone = await client.post("/v1/classify", json={**bad, "rate": 0.78})
            statuses = [r.status_code for r in [*answers, alone]]
            return statuses, (await client.get("/metrics")).text

    statuses, text = asyncio.run(scenario())
    assert statuses == [422] * 4
    found = families(text)
    derivations = found["mrmp_derivation_duration_seconds"].samples
    assert sum(s.value for s in derivations if s.name.endswith("_count")) == 0
    assert sum(s.value for s in found["mrmp_degraded_requests"].samples) == 0
