"""A real `mrmp serve` process on loopback: a stock V2 client (tritonclient), concurrency on
the rate cache, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.http import free_port
from mrmp.store import read_manifest
from tests.service_helpers import sequence, wait_ready

tritonclient_http = pytest.importorskip("tritonclient.http")


def start_server(
    store: Path, tiers: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[str, int, subprocess.Popen]:
    """`mrmp serve` on a free loopback port, once it reports ready."""
    port = free_port()
    env = {
        **os.environ,
        "MRMP_TIER_DIR": str(tiers),
        "MRMP_TIER_BACKEND": "onnxruntime",
        **(env or {}),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    mrmp = Path(sys.executable).with_name("mrmp")
    proc = subprocess.Popen(
        [str(mrmp), "serve", "--model", str(store), "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    if "--workers" in args:  # each worker prepares its tiers and turns ready on its own
        _every_worker_ready(url, proc)
    return url, port, proc


@pytest.fixture(scope="module")
def server(synthetic_store: Path, tmp_path_factory: pytest.TempPathFactory):
    url, port, proc = start_server(synthetic_store, tmp_path_factory.mktemp("tiers"))
    yield url, port, proc
    if proc.poll() is None:
        proc.kill()


def test_stock_v2_client_works_unchanged(server, synthetic_store):
    url, port, _ = server
    name = read_manifest(synthetic_store).name
    client = tritonclient_http.InferenceServerClient(f"127.0.0.1:{port}")
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(name)
    meta = client.get_model_metadata(name)
    assert meta["inputs"][0]["name"] == "skeleton"

    seqs = np.array([sequence(frames=8, seed=s) for s in range(3)], dtype=np.float32)
    tensor = tritonclient_http.InferInput("skeleton", list(seqs.shape), "FP32")
    tensor.set_data_from_numpy(seqs)  # binary tensor extension, the client's default
    result = client.infer(name, [tensor], request_id="abc", parameters={"rate": 0.93})
    answer = result.get_response()
    assert answer["id"] == "abc" and answer["parameters"]["rate_served"] == 0.93
    logits = result.as_numpy("logits")
    labels = result.as_numpy("label")
    assert logits.shape == (3, 8) and logits.dtype == np.float32

    v1 = httpx.post(
        f"{url}/v1/classify", json={"sequences": seqs.tolist(), "rate": 0.93, "top_k": 1}
    ).json()
    assert logits.argmax(1).tolist() == [p["class_index"] for p in v1["predictions"]]
    assert [b.decode() for b in labels] == [p["label"] for p in v1["predictions"]]

    # JSON tensors both ways, and a tier by name.
    tensor.set_data_from_numpy(seqs, binary_data=False)
    out = tritonclient_http.InferRequestedOutput("probabilities", binary_data=False)
    result = client.infer(name, [tensor], outputs=[out], parameters={"tier": "fast"})
    probs = result.as_numpy("probabilities")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert result.get_response()["parameters"]["backend"].startswith("onnxruntime")

    with pytest.raises(Exception, match="unknown model"):
        client.infer("nope", [tensor])
    with pytest.raises(Exception, match="outside the model's range"):
        client.infer(name, [tensor], parameters={"rate": 1.5})


def _misses(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "mrmp_cache_events":
            for s in family.samples:
                if s.name.endswith("_total") and s.labels["event"] == "miss":
                    return s.value
    return 0.0


def test_sixteen_concurrent_requests_derive_a_new_rate_once(server):
    url, _, _ = server
    before = _misses(url)
    body = {"sequences": [sequence(frames=5)], "rate": 0.777}
    with httpx.Client() as http, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: http.post(f"{url}/v1/classify", json=body), range(16)))
    assert all(a.status_code == 200 for a in answers)
    served = [a.json() for a in answers]
    assert {a["rate_served"] for a in served} == {0.777}
    assert sum(not a["cache_hit"] for a in served) == 1
    assert _misses(url) == before + 1


@pytest.mark.parametrize("worker_args", [(), ("--workers", "2")], ids=["one", "two workers"])
def test_sigterm_drains_then_exits_0_without_dropping_accepted_requests(
    synthetic_store, tmp_path, worker_args
):
    """With several workers, their supervisor has each of them drain (DrainingMultiprocess)."""
    url, port, proc = start_server(
        synthetic_store, tmp_path, *worker_args, env={"MRMP_DRAIN_SECONDS": "3"}
    )
    statuses: list[int | str] = []
    stop = threading.Event()

    def load() -> None:
        body = {"sequences": [sequence(frames=4)], "rate": 0.6}
        with httpx.Client() as http:
            while not stop.is_set():
                try:
                    statuses.append(http.post(f"{url}/v1/classify", json=body).status_code)
                except httpx.ConnectError:  # the listener closed: not accepted, not dropped
                    time.sleep(0.01)
                except httpx.TransportError as e:  # sent, and no answer: dropped
                    statuses.append(type(e).__name__)

    # A request under way when the drain begins: its headers and half its body sent before.
    payload = json.dumps({"sequences": [sequence(frames=4)], "rate": 0.6}).encode()
    head = "POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(payload)}\r\n\r\n"
    upload = socket.create_connection(("127.0.0.1", port))
    upload.sendall(head.encode() + payload[: len(payload) // 2])

    clients = [threading.Thread(target=load) for _ in range(4)]
    for c in clients:
        c.start()
    try:
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        # Draining: not ready (so balancers stop routing here), still alive and serving. Each
        # probe is a new connection (which either worker may accept), from one client: a
        # client made per probe costs tens of ms on a slow machine, and the drain is 3 s.
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as probe:
            deadline = time.monotonic() + 1.0
            while probe.get(f"{url}/v2/health/ready").status_code != 503:
                assert time.monotonic() < deadline, "still ready 1 s after SIGTERM"
                time.sleep(0.05)
            assert [probe.get(f"{url}/v2/health/ready").status_code for _ in range(10)] == [
                503
            ] * 10
            assert probe.get(f"{url}/v2/health/live").status_code == 200
        # Every answer while draining closes its connection, whenever its request began: the
        # client reconnects elsewhere rather than keep one the server is about to close.
        with httpx.Client() as client:
            body = {"sequences": [sequence(frames=4)], "rate": 0.6}
            answer = client.post(f"{url}/v1/classify", json=body)
            assert answer.status_code == 200 and answer.headers["connection"] == "close"
        upload.sendall(payload[len(payload) // 2 :])
        upload.settimeout(10)
        answer = upload.recv(65536).split(b"\r\n\r\n")[0].lower()
        assert answer.startswith(b"http/1.1 200") and b"connection: close" in answer, answer
        upload.close()
        served_while_draining = len(statuses)
        assert proc.wait(timeout=30) == 0
    finally:
        stop.set()
        for c in clients:
            c.join()
    assert len(statuses) > served_while_draining > 0
    assert set(statuses) == {200}


def test_a_worker_starting_when_the_drain_begins_drains_too(synthetic_store, tmp_path):
    """SIGTERM while a replaced worker is still starting (ignoring the drain signal until its
    app listens): the supervisor repeats the signal, so that worker never reports ready."""
    env = {"MRMP_DRAIN_SECONDS": "8"}
    url, _, proc = start_server(synthetic_store, tmp_path, "--workers", "2", env=env)
    try:
        first = _workers(proc.pid)
        os.kill(min(first), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(_workers(proc.pid) - first) < 1:  # the replacement is spawned, not ready
            assert time.monotonic() < deadline, "the supervisor never replaced the worker"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        statuses = []
        while time.monotonic() < deadline and len(statuses) < 60:  # about 6 s of probes
            try:
                statuses.append(httpx.get(f"{url}/v2/health/ready").status_code)
            except httpx.TransportError:
                break
            time.sleep(0.1)
        assert statuses and set(statuses) == {503}, statuses
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def _post_on_a_new_connection(port: int, body: bytes) -> str:
    """One POST on its own connection: the status, "refused" when the connection was not
    accepted, "dropped" when the request was sent and no answer came (reset or closed)."""
    with socket.socket() as sock:
        sock.settimeout(30)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            return "refused"
        head = f"POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n"
        try:
            sock.sendall(head.encode() + body)
            answer = sock.recv(64)
        except ConnectionResetError:
            return "dropped"
        return answer.split(b" ")[1].decode() if answer else "dropped"


@pytest.mark.parametrize(
    ("connections", "worker_args"), [(16, ()), (64, ()), (16, ("--workers", "2"))]
)
def test_sigterm_under_load_drops_no_request_that_was_sent(
    synthetic_store, tmp_path, connections, worker_args
):
    """Default settings, SIGTERM while clients post, a new connection per request: a client is
    refused a connection or answered, never reset after sending."""
    _, port, proc = start_server(synthetic_store, tmp_path, *worker_args)
    body = json.dumps({"sequences": [sequence(frames=4)], "rate": 0.6}).encode()
    outcomes: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            outcomes.append(_post_on_a_new_connection(port, body))
            if outcomes[-1] == "refused":
                time.sleep(0.01)

    clients = [threading.Thread(target=load) for _ in range(connections)]
    for c in clients:
        c.start()
    try:
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        time.sleep(0.2)
    finally:
        stop.set()
        for c in clients:
            c.join()
    assert "dropped" not in outcomes, Counter(outcomes)
    assert set(outcomes) <= {"200", "refused"}, Counter(outcomes)
    assert outcomes.count("200") >= connections


def test_two_workers_report_merged_metrics(synthetic_store, tmp_path):
    url, _, proc = start_server(synthetic_store, tmp_path, "--workers", "2")
    try:
        body = {"sequences": [sequence(frames=4)], "tier": "fast"}
        with httpx.Client() as http, ThreadPoolExecutor(4) as pool:
            codes = list(
                pool.map(
                    lambda _: http.post(f"{url}/v1/classify", json=body).status_code, range(40)
                )
            )
        assert codes == [200] * 40
        # Each scrape lands on either worker; both show the sum over the two.
        for _ in range(4):
            families = {
                f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
            }
            counts = [
                s.value
                for s in families["mrmp_inference_duration_seconds"].samples
                if s.name.endswith("_count") and s.labels["rate"] == "0.98"
            ]
            assert sum(counts) == 40
        # /v1/rates too: the live median of the tier's row is the median of the two workers'
        # merged histogram (as PromQL's histogram_quantile interpolates it), not one worker's.
        buckets: dict[str, list[tuple[float, float]]] = {}
        for s in families["mrmp_inference_duration_seconds"].samples:
            if s.name.endswith("_bucket") and s.labels["rate"] == "0.98":
                buckets.setdefault(s.labels["backend"], []).append((float(s.labels["le"]), s.value))
        merged = {f"{b}_live_p50": _median_ms(sorted(pairs)) for b, pairs in buckets.items()}
        for _ in range(4):
            rows = httpx.get(f"{url}/v1/rates").json()["rates"]
            fast = next(r for r in rows if r["tier"] == "fast")
            live = {k: v for k, v in fast["latency_ms"].items() if k.endswith("_live_p50")}
            assert live == pytest.approx(merged, abs=1e-3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _median_ms(cumulative: list[tuple[float, float]]) -> float:
    """The median of a histogram's cumulative (le, count) buckets in ms, interpolated within
    its bucket."""
    rank = cumulative[-1][1] / 2
    lower_le, lower_count = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            return 1e3 * (lower_le + (le - lower_le) * (rank - lower_count) / (count - lower_count))
        lower_le, lower_count = le, count
    raise AssertionError("no bucket holds the median")


def _workers(supervisor: int) -> set[int]:
    """The worker processes uvicorn's supervisor has spawned (not multiprocessing's helpers)."""
    workers = set()
    for child in Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split():
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.add(int(child))
        except FileNotFoundError:
            continue
    return workers


def _every_worker_ready(url: str, proc: subprocess.Popen, in_a_row: int = 20) -> None:
    """Readiness 200 on `in_a_row` new connections in a row, each accepted by either worker."""
    ready = 0
    while ready < in_a_row:
        wait_ready(url, proc)
        ready = ready + 1 if httpx.get(f"{url}/v2/health/ready").status_code == 200 else 0


def _live_gauges(url: str) -> dict[str, float]:
    families = text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
    names = ("mrmp_cache_entries", "mrmp_cache_bytes", "mrmp_in_flight_requests")
    return {f.name: sum(s.value for s in f.samples) for f in families if f.name in names}


def _observed_rates(url: str) -> set[str]:
    families = text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
    return {s.labels["rate"] for f in families if f.name == "mrmp_observed_rate" for s in f.samples}


def test_two_workers_forget_the_observed_rate_of_an_evicted_network(synthetic_store, tmp_path):
    """prometheus-client cannot remove a series in multiprocess mode: mrmp_observed_rate is the
    networks each live worker holds (its tiers and cached rates), not every rate ever served."""
    env = {"MRMP_CACHE_MAX_ENTRIES": "1"}
    url, _, proc = start_server(synthetic_store, tmp_path, "--workers", "2", env=env)
    try:
        tiers = _observed_rates(url)
        assert tiers == {"0.50", "0.90", "0.98"}
        with httpx.Client() as http:
            for rate in (0.61, 0.62, 0.63, 0.64, 0.65, 0.66):
                body = {"sequences": [sequence(frames=4)], "rate": rate}
                assert http.post(f"{url}/v1/classify", json=body).status_code == 200
        for _ in range(4):  # each scrape lands on either worker: the same merged answer
            cached = _observed_rates(url) - tiers
            assert "0.66" in cached and len(cached) <= 2, cached  # one cached rate a worker
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_replaced_workers_leave_no_live_gauges_behind(synthetic_store, tmp_path):
    """--workers 2: a worker killed and replaced takes its live gauges with it, so the cache
    gauges are the live workers' values (here: replace both, and they are a fresh server's)."""
    url, _, proc = start_server(synthetic_store, tmp_path, "--workers", "2")
    try:
        _every_worker_ready(url, proc)
        fresh = _live_gauges(url)
        with httpx.Client() as http:
            for rate in (0.61, 0.62, 0.63, 0.64, 0.65, 0.66):
                body = {"sequences": [sequence(frames=4)], "rate": rate}
                assert http.post(f"{url}/v1/classify", json=body).status_code == 200
        loaded = _live_gauges(url)
        assert loaded["mrmp_cache_entries"] == fresh["mrmp_cache_entries"] + 6
        assert loaded["mrmp_cache_bytes"] > fresh["mrmp_cache_bytes"]
        first = _workers(proc.pid)
        assert len(first) == 2
        for victim in sorted(first):
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while victim in (now := _workers(proc.pid)) or len(now) < 2:
                assert time.monotonic() < deadline, "the supervisor never replaced the worker"
                time.sleep(0.2)
        assert not _workers(proc.pid) & first
        _every_worker_ready(url, proc)
        for _ in range(4):  # each scrape lands on either new worker
            assert _live_gauges(url) == fresh
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "manifest"])
def test_serve_refuses_a_bad_store_at_start_naming_the_file(synthetic_store, tmp_path, damage):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in synthetic_store.glob("*.*"):
        (bad / f.name).write_bytes(f.read_bytes())
    weights = bad / "latent.safetensors"
    blob = weights.read_bytes()
    if damage == "truncated":
        weights.write_bytes(blob[: len(blob) // 2])
    elif damage == "flipped":
        weights.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    else:
        (bad / "manifest.json").write_text("{not json")
    mrmp = Path(sys.executable).with_name("mrmp")
    done = subprocess.run(
        [str(mrmp), "serve", "--model", str(bad), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    named = "manifest.json" if damage == "manifest" else "latent.safetensors"
    assert named in done.stderr and str(bad) in done.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"MRMP_TIERS": '{"balanced": 0.5, "fast": 0.995}'},
            "tier 'fast' rate 0.995 is outside the model's range",
        ),
        ({"MRMP_TIERS": "notjson"}, "tiers"),
        ({"MRMP_LOG_LEVEL": "verbose"}, "log_level"),
    ],
)
def test_serve_refuses_bad_settings_at_start_in_one_message(synthetic_store, env, named):
    mrmp = Path(sys.executable).with_name("mrmp")
    done = subprocess.run(
        [str(mrmp), "serve", "--model", str(synthetic_store), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr


def test_schemathesis_from_the_openapi_finds_no_server_error(server, tmp_path):
    """Schema-driven fuzzing of every operation of the running service: never a 5xx."""
    url, _, _ = server
    schemathesis = Path(sys.executable).with_name("schemathesis")
    if not schemathesis.exists():
        pytest.skip("schemathesis is not installed")
    done = subprocess.run(
        [
            str(schemathesis),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "30",
            "--seed",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its cache folder goes there, not into the repository
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "passed" in done.stdout
