"""The HTTP contract (v1, V2, metrics) and every error path, through FastAPI's TestClient."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from mrmp.derive import derive
from mrmp.runtime import OnnxRunner, TorchRunner, export_onnx
from mrmp.skeleton import describe_batch
from mrmp.store import StoreError, load_model
from service.app import create_app
from service.metrics import Metrics
from service.settings import Settings
from tests.service_helpers import ready_client, sequence


@pytest.fixture(scope="module")
def client(synthetic_store: Path, tmp_path_factory: pytest.TempPathFactory):
    # Tiers on onnxruntime whatever is fastest here, so that the tests below know the backend.
    with ready_client(
        synthetic_store, tmp_path_factory.mktemp("svc"), tier_backend="onnxruntime"
    ) as c:
        yield c


def classify(client, **body):
    body.setdefault("sequences", [sequence()])
    return client.post("/v1/classify", json=body)


# -- v1 ----------------------------------------------------------------------------------------


def test_classify_answers_per_sequence_and_states_what_served_it(client, synthetic_store):
    model, manifest = load_model(synthetic_store)
    seqs = [sequence(seed=s) for s in range(3)]
    r = client.post("/v1/classify", json={"sequences": seqs, "rate": 0.9312, "top_k": 2})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["model"] == manifest.name and a["model_version"] == manifest.version
    assert a["rate_asked"] == 0.9312 and a["rate_served"] == 0.931 and a["mode"] == "prior"
    # Not a tier: the shared onnxruntime graphs, the fc layer (density 0.07) apart as CSR by
    # the memory rule.
    assert a["backend"] == "onnxruntime-shared-split" and a["tier"] is None
    net, info = derive(model, 0.931, "prior")
    assert a["observed_rate"] == pytest.approx(info.observed_rate, abs=1e-6)
    assert a["threshold"] == pytest.approx(model.prior.threshold(0.931))
    assert a["kept_params"] == info.kept_params
    x = torch.from_numpy(describe_batch(seqs, manifest.descriptor_config))
    probs = net(x).softmax(dim=1).numpy()
    assert len(a["predictions"]) == 3
    for p, row in zip(a["predictions"], probs, strict=True):
        assert p["class_index"] == int(row.argmax())
        assert p["label"] == manifest.class_names[p["class_index"]]
        assert p["score"] == pytest.approx(float(row.max()), abs=1e-5)
        assert [t["class_index"] for t in p["top_k"]] == list(np.argsort(-row)[:2])
        assert p["warnings"] == []  # nothing missing, 12 frames
    assert set(a["timings"]) == {"parse_ms", "derive_ms", "inference_ms", "total_ms"}
    # The same rate again comes from the cache.
    again = client.post("/v1/classify", json={"sequences": seqs, "rate": 0.9312}).json()
    assert again["cache_hit"] and again["timings"]["derive_ms"] == 0


def test_tiers_and_default_are_served_from_onnx(client):
    default = classify(client).json()
    assert default["tier"] == "balanced" and default["rate_served"] == 0.9
    assert default["backend"].startswith("onnxruntime") and default["cache_hit"]
    fast = classify(client, tier="fast").json()
    assert fast["rate_served"] == 0.98 and fast["backend"].startswith("onnxruntime")
    # A rate equal to a tier's is served by the tier.
    assert classify(client, rate=0.5).json()["tier"] == "accurate"
    dense = classify(client, rate=0).json()
    assert dense["observed_rate"] == 0 and dense["backend"] == "onnxruntime-shared"
    exact = classify(client, rate=0.9, mode="exact").json()
    assert exact["mode"] == "exact" and exact["threshold"] is None
    assert exact["observed_rate"] == pytest.approx(0.9, abs=1e-3)


def test_model_and_rates_describe_the_tiers(client, synthetic_store):
    _, manifest = load_model(synthetic_store)
    m = client.get("/v1/model").json()
    assert m["class_names"] == manifest.class_names
    assert m["layout"]["num_joints"] == 30 and len(m["layout"]["joint_names"]) == 30
    assert m["rate_range"] == [0.0, 0.99] and m["seen_rates"] == manifest.seen_rates
    assert m["tiers"] == {"accurate": 0.5, "balanced": 0.9, "fast": 0.98}
    rates = client.get("/v1/rates").json()
    rows = {row["rate"]: row for row in rates["rates"]}
    assert {0.5, 0.9, 0.98} <= set(rows)
    evaluation = manifest.evaluated("prior")
    assert rows[0.9]["accuracy"] == evaluation["0.90"].accuracy
    assert rows[0.98]["tier"] == "fast"
    assert rows[0.98]["latency_ms"]["compute_batch1_p50"] > 0
    kept = [rows[r]["kept_params"] for r in sorted(rows)]
    flops = [rows[r]["flops"] for r in sorted(rows)]
    assert kept == sorted(kept, reverse=True) and flops == sorted(flops, reverse=True)


def test_exact_mode_tiers_have_rows_of_the_networks_that_serve_them(synthetic_store, tmp_path):
    """The tier rows are the exact-mode networks (their backend, observed rate and timings);
    the prior-mode rows stay for the needs; each row's live p50 is its own mode's traffic."""
    with ready_client(synthetic_store, tmp_path, tier_mode="exact") as c:
        for mode in ("exact", "prior", "prior"):  # the tier, then prior-mode requests at 0.5
            body = {"sequences": [sequence()], "rate": 0.5, "mode": mode}
            assert c.post("/v1/classify", json=body).status_code == 200
        answer = classify(c, tier="accurate").json()
        rows = c.get("/v1/rates").json()["rates"]
    tiers = {r["tier"]: r for r in rows if r["tier"]}
    assert {r["mode"] for r in tiers.values()} == {"exact"} and set(tiers) == {
        "accurate",
        "balanced",
        "fast",
    }
    accurate = tiers["accurate"]
    assert accurate["backend"] == answer["backend"] and accurate["candidates_ms"]
    assert accurate["observed_rate"] == answer["observed_rate"]
    prior = next(r for r in rows if r["rate"] == 0.5 and r["mode"] == "prior")
    assert prior["tier"] is None and prior["latency_ms"]["compute_batch1_p50"] > 0
    live = [k for k in accurate["latency_ms"] if k.endswith("_live_p50")]
    assert live == [f"{answer['backend']}_live_p50"]  # the two prior requests are not in it
    assert [k for k in prior["latency_ms"] if k.endswith("_live_p50")] == [
        "onnxruntime-shared_live_p50"
    ]


# -- errors ------------------------------------------------------------------------------------

J = 30
GOOD = sequence(frames=4)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{", 400, "malformed JSON"),
        (b"", 400, "empty"),
        (b"[1, 2]", 422, "must be a JSON object"),
        (json.dumps({"rate": 0.5}).encode(), 422, "missing field: sequences"),
        (json.dumps({"sequences": GOOD}).encode(), 422, "sequence 0"),  # one level short
        (json.dumps({"sequences": [[[[1, 2]] * J]]}).encode(), 422, "last dimension must be 3"),
        (json.dumps({"sequences": [[[[1, 2, 3]] * 7]]}).encode(), 422, "expected 30 joints"),
        (json.dumps({"sequences": [[[[1, 2, 3]] * J, [[1, 2, 3]]]]}).encode(), 422, "different"),
        (json.dumps({"sequences": [[[["a", 2, 3]] * J]]}).encode(), 422, "only numbers"),
        (b'{"sequences": [[' + b"[[NaN, 1, 2]]" * 0 + b"]]}", 422, "no frames"),
        (json.dumps({"sequences": []}).encode(), 422, "no sequences"),
        (json.dumps({"sequences": [GOOD], "rate": 1.5}).encode(), 422, "outside the model"),
        (json.dumps({"sequences": [GOOD], "rate": -0.1}).encode(), 422, "outside the model"),
        (json.dumps({"sequences": [GOOD], "rate": "0.9"}).encode(), 422, "rate must be a number"),
        (json.dumps({"sequences": [GOOD], "rate": True}).encode(), 422, "rate must be a number"),
        (json.dumps({"sequences": [GOOD], "tier": "turbo"}).encode(), 422, "unknown tier"),
        (json.dumps({"sequences": [GOOD], "mode": "magic"}).encode(), 422, "unknown mode"),
        (json.dumps({"sequences": [GOOD], "rate": 0.5, "tier": "fast"}).encode(), 422, "one of"),
        (json.dumps({"sequences": [GOOD], "top_k": 0}).encode(), 422, "top_k"),
        (json.dumps({"sequences": [GOOD], "rates": 0.5}).encode(), 422, "unknown field"),
    ],
)
def test_bad_classify_bodies_get_a_clear_4xx(client, body, status, words):
    r = client.post("/v1/classify", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_non_finite_values_are_named(client):
    frames = [[[0.0, 1.0, 2.0]] * J] * 3
    text = json.dumps({"sequences": [frames]}).replace("0.0", "NaN", 1)
    r = client.post("/v1/classify", content=text)
    assert r.status_code == 422 and "NaN or Inf" in r.json()["error"]
    text = json.dumps({"sequences": [frames]}).replace("2.0", "1e999", 1)
    r = client.post("/v1/classify", content=text)
    assert r.status_code == 422 and "NaN or Inf" in r.json()["error"]


def test_non_finite_values_are_named_where_they_were_sent(client):
    """Missing joints are filled after the check, so the position and the count are those of
    the body: frames 0-1 empty (dropped), joint 7 missing in frame 2 (interpolated)."""
    frames = np.asarray(sequence(frames=12))
    frames[:2] = 0.0
    frames[2, 7] = 0.0
    frames[3, 7, 1] = np.nan
    frames[6, 20, 2] = np.inf
    text = json.dumps({"sequences": [sequence(), frames.tolist()]})
    r = client.post("/v1/classify", content=text.replace("Infinity", "1e999"))
    assert r.status_code == 422, r.text
    assert r.json()["error"].startswith(
        "sequence 1: sequence contains NaN or Inf in 2 value(s); first at frame 3, joint 7, "
        "coordinate y (nan)"
    )


def test_sparse_kernels_off_runs_cached_rates_dense_on_onnxruntime(synthetic_store, tmp_path):
    with ready_client(synthetic_store, tmp_path, sparse_kernels=False) as c:
        answer = c.post("/v1/classify", json={"sequences": [sequence()], "rate": 0.93}).json()
    assert answer["backend"] == "onnxruntime-shared" and not answer["cache_hit"]


def test_limits_on_frames_sequences_and_body(synthetic_store, tmp_path):
    with ready_client(
        synthetic_store,
        tmp_path,
        max_frames=5,
        max_sequences=2,
        max_body_bytes=20_000,
        onnx_tiers=False,
    ) as c:
        r = c.post("/v1/classify", json={"sequences": [sequence(frames=6)]})
        assert r.status_code == 422 and "limit is 5" in r.json()["error"]
        r = c.post("/v1/classify", json={"sequences": [sequence(frames=2)] * 3})
        assert r.status_code == 422 and "limit is 2" in r.json()["error"]
        big = json.dumps({"sequences": [sequence(frames=5)] * 2}).encode() + b" " * 20_000
        r = c.post("/v1/classify", content=big)
        assert r.status_code == 413 and "limit" in r.json()["error"]

        def chunks():  # no content-length: the limit applies while reading
            yield big[:15_000]
            yield big[15_000:]

        r = c.post("/v1/classify", content=chunks())
        assert r.status_code == 413
        # The service still answers after refusals.
        assert c.post("/v1/classify", json={"sequences": [sequence(frames=3)]}).status_code == 200


def test_unknown_paths_and_methods_answer_json(client):
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and "no such endpoint" in r.json()["error"]
    r = client.get("/v1/classify")
    assert r.status_code == 405 and "error" in r.json()


def test_corrupt_store_is_refused_at_start_naming_the_file(synthetic_store, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in synthetic_store.glob("*.*"):
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "latent.safetensors").write_bytes(b"\0" * 100)
    with pytest.raises(StoreError, match=r"latent\.safetensors"):
        create_app(Settings(model_path=bad))


@pytest.mark.parametrize(
    "descriptor",
    [
        {"chunks": 5},
        {"local_frame": [0, 1, 2]},
        # The right feature count, but a joint the model does not have.
        {"chunks": 2, "root_joint": 30},
        {"chunks": 2, "root_joint": [2, 2]},  # not one root in each person
        {"chunks": 2, "local_frame": [0, 1, 30]},
    ],
)
def test_descriptor_that_does_not_fit_the_model_is_refused(synthetic_store, tmp_path, descriptor):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in synthetic_store.glob("*.*"):
        (bad / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["descriptor"] = {**manifest["descriptor"], **descriptor}
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=r"manifest\.json: .*descriptor .* does not fit the model"):
        create_app(Settings(model_path=bad))


def test_tier_outside_the_model_range_is_refused(synthetic_store):
    with pytest.raises(ValueError, match="outside the model's range"):
        create_app(
            Settings(
                model_path=synthetic_store, tiers={"x": 0.995}, default_tier="x", degrade_tier="x"
            )
        )


# -- ONNX --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.5, 0.98])
def test_onnx_tier_equals_torch(synthetic_store, tmp_path, rate):
    model, _ = load_model(synthetic_store)
    net, _ = derive(model, rate, "prior")
    runner = OnnxRunner(export_onnx(net, tmp_path / "t.onnx"))
    x = np.random.default_rng(1).standard_normal((7, 30, 12)).astype(np.float32)
    np.testing.assert_allclose(runner(x), TorchRunner(net)(x), atol=1e-4, rtol=0)


def test_each_tier_is_served_by_its_fastest_measured_candidate(synthetic_store, tmp_path):
    with ready_client(synthetic_store, tmp_path, tier_batch=1) as c:
        rows = [r for r in c.get("/v1/rates").json()["rates"] if r["tier"]]
        served = {t: classify(c, tier=t).json()["backend"] for t in ("accurate", "fast")}
    assert len(rows) == 3
    for row in rows:
        candidates = row["candidates_ms"]
        # torch (dense or sparse kernels), onnxruntime, and at 0.98 the compacted export.
        assert len(candidates) >= 2 and any(b.startswith("torch") for b in candidates)
        assert "onnxruntime" in candidates
        fastest = min(candidates, key=lambda b: candidates[b]["compute_batch1_p50"])
        assert row["backend"] == fastest
        assert row["latency_ms"]["compute_batch1_p50"] == candidates[fastest]["compute_batch1_p50"]
    by_rate = {r["tier"]: r["backend"] for r in rows}
    assert served == {t: by_rate[t] for t in served}


def test_tiers_are_exported_once_and_rebuilt_when_weights_change(synthetic_store, tmp_path):
    with ready_client(synthetic_store, tmp_path):
        pass
    onnx = tmp_path / "tiers" / "fast.onnx"
    stamp = json.loads((tmp_path / "tiers" / "fast.json").read_text())
    first = onnx.stat().st_mtime_ns
    with ready_client(synthetic_store, tmp_path):
        pass
    assert onnx.stat().st_mtime_ns == first  # current: reused
    stale = {**stamp, "model_version": "0" * 64}
    (tmp_path / "tiers" / "fast.json").write_text(json.dumps(stale))
    with ready_client(synthetic_store, tmp_path):
        pass
    assert onnx.stat().st_mtime_ns != first
    assert json.loads((tmp_path / "tiers" / "fast.json").read_text()) == stamp
    sess = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["x"]

    # An export whose stamp says current but that answers differently is rebuilt once.
    (tmp_path / "tiers" / "accurate.onnx").replace(onnx)
    with ready_client(synthetic_store, tmp_path, tier_backend="onnxruntime") as c:
        fast = classify(c, tier="fast").json()
    assert fast["backend"].startswith("onnxruntime") and fast["tier"] == "fast"
    assert onnx.stat().st_mtime_ns != first


def test_a_failing_candidate_is_dropped_and_the_other_tiers_go_on(
    synthetic_store, tmp_path, monkeypatch
):
    real = OnnxRunner.__call__

    def fails_at_batch_32(self, x):
        if len(x) == 32:
            raise RuntimeError("simulated onnxruntime failure")
        return real(self, x)

    monkeypatch.setattr(OnnxRunner, "__call__", fails_at_batch_32)
    with ready_client(synthetic_store, tmp_path, tier_backend="onnxruntime") as c:
        rows = [r for r in c.get("/v1/rates").json()["rates"] if r["tier"]]
        answers = [classify(c, tier=t).json() for t in ("accurate", "balanced", "fast")]
    assert len(rows) == 3 and all(r["backend"].startswith("torch") for r in rows)
    assert all(not any(b.startswith("onnx") for b in r["candidates_ms"]) for r in rows)
    assert [a["tier"] for a in answers] == ["accurate", "balanced", "fast"]


def test_forcing_onnxruntime_without_onnx_tiers_is_refused(synthetic_store):
    with pytest.raises(ValueError, match="needs onnx_tiers"):
        Settings(model_path=synthetic_store, tier_backend="onnxruntime", onnx_tiers=False)


# -- V2 ----------------------------------------------------------------------------------------


def test_v2_health_and_metadata(client, synthetic_store):
    _, manifest = load_model(synthetic_store)
    name = manifest.name
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get(f"/v2/models/{name}").json()
    assert meta["name"] == name and meta["versions"] == [manifest.version]
    assert meta["inputs"] == [{"name": "skeleton", "datatype": "FP32", "shape": [-1, -1, 30, 3]}]
    assert client.get(f"/v2/models/{name}/ready").json() == {"name": name, "ready": True}
    r = client.get("/v2/models/other")
    assert r.status_code == 404 and 'unknown model "other"' in r.json()["error"]
    long = "x" * 5000  # a path segment is quoted cut, as a body's values are
    for path in (f"/v2/models/{long}", f"/v2/models/{name}/versions/{long}"):
        r = client.get(path)
        assert r.status_code == 404 and len(r.json()["error"]) < 200, r.json()["error"]
    assert client.post("/v2/models/other/infer", json={}).status_code == 404


def test_v2_infer_json_echoes_id_and_serves_the_rate(client, synthetic_store):
    _, manifest = load_model(synthetic_store)
    seqs = np.array([sequence(frames=6, seed=s) for s in range(2)], dtype=np.float32)
    body = {
        "id": "req-42",
        "parameters": {"rate": 0.93},
        "inputs": [
            {
                "name": "skeleton",
                "shape": list(seqs.shape),
                "datatype": "FP32",
                "data": seqs.reshape(-1).tolist(),
            }
        ],
        "outputs": [{"name": "logits"}, {"name": "label"}],
    }
    r = client.post(f"/v2/models/{manifest.name}/infer", json=body)
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["id"] == "req-42" and a["model_name"] == manifest.name
    assert a["parameters"]["rate_served"] == 0.93
    assert a["parameters"]["backend"] == "onnxruntime-shared-split"
    logits = {o["name"]: o for o in a["outputs"]}["logits"]
    assert logits["shape"] == [2, 8] and logits["datatype"] == "FP32"
    v1 = client.post(
        "/v1/classify", json={"sequences": seqs.tolist(), "rate": 0.93, "top_k": 1}
    ).json()
    got = np.array(logits["data"]).reshape(2, 8).argmax(1)
    assert got.tolist() == [p["class_index"] for p in v1["predictions"]]
    labels = {o["name"]: o for o in a["outputs"]}["label"]
    assert labels["data"] == [p["label"] for p in v1["predictions"]]


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"inputs": []}, "list of one tensor"),
        (
            {"inputs": [{"name": "x", "shape": [1, 2, 30, 3], "datatype": "FP32", "data": []}]},
            "unknown input",
        ),
        (
            {
                "inputs": [
                    {"name": "skeleton", "shape": [1, 2, 30, 3], "datatype": "INT8", "data": []}
                ]
            },
            "datatype",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "skeleton",
                        "shape": [1, 2, 30, 3],
                        "datatype": "FP32",
                        "data": [1.0] * 7,
                    }
                ]
            },
            "holds 7 values",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "skeleton",
                        "shape": [1, 2, 29, 3],
                        "datatype": "FP32",
                        "data": [1.0] * 174,
                    }
                ]
            },
            "does not fit",
        ),
        ({"parameters": {"rate": 7}}, "outside"),
        ({"outputs": [{"name": "nope"}]}, "unknown output"),
        ({"outputs": [{"name": "label"}, {"name": "label"}]}, 'outputs[1] requests "label" again'),
        ({"id": 5}, "id must be a string"),
    ],
)
def test_v2_bad_requests(client, synthetic_store, patch, words):
    _, manifest = load_model(synthetic_store)
    body = {
        "inputs": [
            {"name": "skeleton", "shape": [1, 2, 30, 3], "datatype": "FP32", "data": [0.5] * 180}
        ],
        **patch,
    }
    r = client.post(f"/v2/models/{manifest.name}/infer", json=body)
    assert r.status_code == 422, r.text
    assert words in r.json()["error"]


def test_v2_outputs_absent_or_empty_answer_every_output(client, synthetic_store):
    _, manifest = load_model(synthetic_store)
    data = np.random.default_rng(0).normal(size=180).tolist()
    tensor = {"name": "skeleton", "shape": [1, 2, 30, 3], "datatype": "FP32", "data": data}
    names = []
    for extra in ({}, {"outputs": []}):
        r = client.post(f"/v2/models/{manifest.name}/infer", json={"inputs": [tensor], **extra})
        assert r.status_code == 200, r.text
        names.append([o["name"] for o in r.json()["outputs"]])
    assert names[0] == names[1] and len(names[0]) > 1


# -- metrics -----------------------------------------------------------------------------------


def test_live_p50_is_a_rate_label_and_modes_own_traffic():
    """A row's live median is the traffic of its own snapped label in its own mode: none for a
    rate off the label grid (0.68 with a grid of 0.05 is 0.70's label), none across modes."""
    metrics = Metrics(rate_step=0.05)
    metrics.inference_duration.labels(metrics.label(0.7), "prior", "onnxruntime").observe(0.001)
    live_p50 = metrics.live_p50()
    assert set(live_p50(0.7, "prior")) == {"onnxruntime_live_p50"}
    assert live_p50(0.68, "prior") == {}
    assert live_p50(0.7, "exact") == {}


def test_a_rate_off_the_label_grid_leaves_the_grid_rates_observed_rate(client):
    """0.504 is labelled 0.50, as the accurate tier (0.5) is: the gauge keeps the tier's."""
    tier = classify(client, tier="accurate").json()
    off = classify(client, rate=0.504, mode=tier["mode"]).json()
    assert off["observed_rate"] != tier["observed_rate"]
    series = {
        (s.labels["rate"], s.labels["mode"]): s.value
        for s in _family(client, "mrmp_observed_rate").samples
    }
    assert series[("0.50", tier["mode"])] == pytest.approx(tier["observed_rate"], abs=1e-6)


def test_top_k_null_is_top_k_absent(client):
    absent, null = (classify(client, **k).json()["predictions"][0] for k in ({}, {"top_k": None}))
    assert len(null["top_k"]) == len(absent["top_k"]) == 3


def test_observed_rates_are_the_cached_networks_under_concurrent_requests(
    synthetic_store, tmp_path
):
    """A network evicted while another request for it is still being answered stays gone
    from mrmp_observed_rate (it is recorded as it enters the cache, not per answer)."""
    rates = [round(0.61 + 0.01 * i, 2) for i in range(9)] * 4
    with ready_client(synthetic_store, tmp_path, cache_max_entries=1, onnx_tiers=False) as c:
        tiers = {s.labels["rate"] for s in _family(c, "mrmp_observed_rate").samples}

        def post(rate: float) -> int:
            body = {"sequences": [sequence(frames=4)], "rate": rate}
            return c.post("/v1/classify", json=body).status_code

        with ThreadPoolExecutor(6) as pool:
            assert set(pool.map(post, rates)) == {200}
        cached = {s.labels["rate"] for s in _family(c, "mrmp_observed_rate").samples} - tiers
    assert len(cached) == 1, cached


def _family(client, name: str):
    families = text_string_to_metric_families(client.get("/metrics").text)
    return next(f for f in families if f.name == name)


def test_metrics_stay_bounded_after_a_thousand_distinct_rates(synthetic_store, tmp_path):
    with ready_client(synthetic_store, tmp_path, cache_max_entries=8, onnx_tiers=False) as c:
        seq = [sequence(frames=3)]
        rates = np.linspace(0.5, 0.98, 1000)
        for r in rates:
            assert c.post("/v1/classify", json={"sequences": seq, "rate": float(r)}).status_code
        c.post("/v1/classify", content=b"{")
        text = c.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    inference = families["mrmp_inference_duration_seconds"]
    rate_labels = {s.labels["rate"] for s in inference.samples if "rate" in s.labels}
    assert len(rate_labels) <= 49  # 0.50 .. 0.98 on the 0.01 grid, whatever was asked
    assert all(len(label) == 4 for label in rate_labels)
    counts = [s.value for s in inference.samples if s.name.endswith("_count")]
    assert sum(counts) >= 1000
    assert families["mrmp_derivation_duration_seconds"].type == "histogram"
    assert families["mrmp_request_duration_seconds"].type == "histogram"
    events = {
        s.labels["event"]: s.value
        for s in families["mrmp_cache_events"].samples
        if s.name.endswith("_total")
    }
    # Tier rates are served by their tiers; every other distinct key is derived once.
    misses = len({round(r * 1000) for r in rates} - {500, 900, 980})
    assert events["miss"] == misses and events["eviction"] == misses - 8
    assert events["hit"] + events["miss"] == 1000  # a tier's network is a hit too
    assert next(iter(families["mrmp_cache_entries"].samples)).value == 8
    observed = [s for s in families["mrmp_observed_rate"].samples]
    assert 1 <= len(observed) <= 8
    for s in observed:
        assert s.value == pytest.approx(float(s.labels["rate"]), abs=0.01)
    statuses = {
        (s.labels["endpoint"], s.labels["status"]) for s in families["mrmp_requests"].samples
    }
    assert ("/v1/classify", "200") in statuses and ("/v1/classify", "400") in statuses
    errors = {s.labels["reason"] for s in families["mrmp_errors"].samples}
    assert "malformed_json" in errors


# -- degradation -------------------------------------------------------------------------------


def test_degradable_requests_are_served_by_the_degrade_tier_under_load(synthetic_store, tmp_path):
    # A threshold of 0 requests in flight: every request is "under load" (it counts itself).
    with ready_client(synthetic_store, tmp_path, degrade_in_flight=0) as c:
        plain = classify(c, rate=0.6).json()
        assert plain["rate_served"] == 0.6 and not plain["degraded"]
        allowed = classify(c, rate=0.6, allow_degrade=True).json()
        assert allowed["rate_served"] == 0.98 and allowed["degraded"]
        assert allowed["rate_asked"] == 0.6 and allowed["tier"] == "fast"
        auto = classify(c, rate="auto").json()
        assert auto["degraded"] and auto["rate_served"] == 0.98
        # Never degraded to a lower rate than asked.
        high = classify(c, rate=0.99, allow_degrade=True).json()
        assert high["rate_served"] == 0.99 and not high["degraded"]
        r = classify(c, allow_degrade="yes")
        assert r.status_code == 422 and "allow_degrade" in r.json()["error"]
        text = c.get("/metrics").text
    assert 'mrmp_degraded_requests_total{rate="0.98"} 2.0' in text


def test_auto_rate_without_load_is_the_default_tier(client):
    auto = classify(client, rate="auto").json()
    assert auto["rate_served"] == 0.9 and auto["tier"] == "balanced" and not auto["degraded"]


def test_settings_refuse_unknown_tier_names():
    with pytest.raises(ValueError, match="degrade_tier"):
        Settings(degrade_tier="warp")


def test_v2_binary_tensors_and_their_errors(client, synthetic_store):
    name = load_model(synthetic_store)[1].name
    arr = np.asarray([sequence(frames=3)], dtype=np.float32)
    head = {
        "inputs": [
            {
                "name": "skeleton",
                "shape": list(arr.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": arr.nbytes},
            }
        ],
        "outputs": [{"name": "class_index", "parameters": {"binary_data": True}}],
    }
    header = json.dumps(head).encode()

    def post(body: bytes, length: str) -> object:
        return client.post(
            f"/v2/models/{name}/infer",
            content=body,
            headers={"Inference-Header-Content-Length": length},
        )

    r = post(header + arr.tobytes(), str(len(header)))
    assert r.status_code == 200
    size = int(r.headers["inference-header-content-length"])
    answer = json.loads(r.content[:size])
    assert answer["outputs"][0]["parameters"]["binary_data_size"] == 8
    index = np.frombuffer(r.content[size:], dtype="<i8")
    v1 = client.post("/v1/classify", json={"sequences": arr.tolist(), "top_k": 1}).json()
    assert index.tolist() == [v1["predictions"][0]["class_index"]]

    assert post(header + arr.tobytes()[:-4], str(len(header))).status_code == 422
    assert post(header, "x").status_code == 400
    assert post(header, str(len(header) + 10)).status_code == 400
    head["inputs"][0]["parameters"]["binary_data_size"] = "many"
    bad = json.dumps(head).encode()
    r = post(bad + arr.tobytes(), str(len(bad)))
    assert r.status_code == 422 and "binary_data_size" in r.json()["error"]


# -- by need -----------------------------------------------------------------------------------


def test_every_rate_of_the_table_is_timed(client):
    for row in client.get("/v1/rates").json()["rates"]:
        assert row["latency_ms"]["compute_batch1_p50"] > 0, row
        assert row["latency_ms"]["compute_batch32_p50"] > 0, row


def test_min_accuracy_serves_the_most_pruned_rate_that_meets_it(client):
    rows = client.get("/v1/rates").json()["rates"]
    scored = [r for r in rows if r["accuracy"] is not None]
    floor = min(r["accuracy"] for r in scored)
    a = classify(client, min_accuracy=floor).json()
    assert a.get("chosen_by") == "min_accuracy", a
    assert a["rate_served"] == max(r["rate"] for r in scored)
    top = max(r["accuracy"] for r in scored)
    best = max(r["rate"] for r in scored if r["accuracy"] == top)
    assert classify(client, min_accuracy=top).json()["rate_served"] == best
    r = classify(client, min_accuracy=top + 0.5)
    assert r.status_code == 422 and "no rate reaches" in r.json()["error"]


def test_max_latency_serves_the_least_pruned_rate_that_fits(client):
    rows = client.get("/v1/rates").json()["rates"]
    b1 = {r["rate"]: r["latency_ms"]["compute_batch1_p50"] for r in rows}
    budget = sorted(b1.values())[len(b1) // 2]
    a = classify(client, max_latency_ms=budget).json()
    assert a["chosen_by"] == "max_latency_ms"
    assert a["rate_served"] == min(r for r, ms in b1.items() if ms <= budget)
    r = classify(client, max_latency_ms=min(b1.values()) / 10)
    assert r.status_code == 422 and "no rate meets max_latency_ms" in r.json()["error"]
    for body in (
        {"max_latency_ms": -1},
        {"min_accuracy": "high"},
        {"rate": 0.5, "min_accuracy": 50},
        {"max_latency_ms": 5, "min_accuracy": 50},
    ):
        assert classify(client, **body).status_code == 422, body


def test_review_findings_stay_4xx(client):
    """Inputs that once reached a 500 (or a wrong answer) in review."""
    deep = b"[" * 100_000
    assert client.post("/v1/classify", content=deep).status_code == 400
    huge = "1" + "0" * 400
    for field in ("rate", "max_latency_ms", "min_accuracy"):
        body = '{"sequences": [[[[1, 2, 3]]]], "' + field + '": ' + huge + "}"
        r = client.post("/v1/classify", content=body)
        assert r.status_code == 422 and field in r.json()["error"], (field, r.text)
    r = classify(client, min_accuracy=0, mode="x")
    assert r.status_code == 422 and "unknown mode" in r.json()["error"]
    r = classify(client, min_accuracy=0, mode="exact")
    assert r.status_code == 422 and "prior-mode" in r.json()["error"]
    r = client.post(
        "/v2/models/synthetic-mrmp/infer",
        content=b"{}",
        headers={"Inference-Header-Content-Length": "\u00b2".encode()},  # a digit to isdigit()
    )
    assert r.status_code == 400
    # A tier asked in another mode is not served by the tier, and the answer says so.
    a = classify(client, tier="fast", mode="exact").json()
    assert a["tier"] is None and a["backend"] != "onnxruntime"
