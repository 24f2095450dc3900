"""Load and protocol hygiene (issue 19): what counts as load, no inference before ready, HEAD
wherever GET is served, and every 405 with its Allow header."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mrmp.store import read_manifest
from service.app import create_app
from service.settings import Settings
from tests.service_helpers import ready_client, sequence


def _app(store: Path, tmp: Path, **settings) -> FastAPI:
    return create_app(Settings(model_path=store, tier_dir=tmp / "tiers", **settings))


def _v2_body(frames: int = 6) -> dict:
    seq = sequence(frames=frames)
    flat = [v for frame in seq for joint in frame for v in joint]
    return {
        "inputs": [
            {"name": "skeleton", "shape": [1, frames, 30, 3], "datatype": "FP32", "data": flat}
        ]
    }


@pytest.fixture(scope="module")
def client(synthetic_store: Path, tmp_path_factory: pytest.TempPathFactory):
    with ready_client(synthetic_store, tmp_path_factory.mktemp("hygiene"), onnx_tiers=False) as c:
        yield c


# -- no inference before the model is ready ------------------------------------------------


def test_inference_before_ready_is_503_with_retry_after_on_both_protocols(
    synthetic_store, tmp_path
):
    # No lifespan: the tiers are never prepared, as in the seconds after a start.
    client = TestClient(_app(synthetic_store, tmp_path, onnx_tiers=False))
    name = read_manifest(synthetic_store).name
    for path, body in [
        ("/v1/classify", {"sequences": [sequence()]}),
        ("/v1/classify", {"sequences": [sequence()], "max_latency_ms": 5}),
        ("/v1/classify", {"sequences": [sequence()], "tier": "fast"}),
        (f"/v2/models/{name}/infer", _v2_body()),
    ]:
        r = client.post(path, json=body)
        assert r.status_code == 503, (path, r.text)
        assert r.headers["retry-after"] == "1"
        assert "not ready" in r.json()["error"]
    assert client.get("/v2/health/ready").status_code == 503
    rates = client.get("/v1/rates").json()
    assert rates["timings_missing"] == [row["rate"] for row in rates["rates"]]
    assert rates["timings_missing"]


def test_ready_model_has_every_timing_and_serves(client):
    rates = client.get("/v1/rates").json()
    assert rates["timings_missing"] == []
    answer = client.post("/v1/classify", json={"sequences": [sequence()], "tier": "fast"})
    assert answer.status_code == 200 and answer.json()["tier"] == "fast"


# -- HEAD and 405 ------------------------------------------------------------------------------


def _get_paths(client: TestClient) -> list[str]:
    name = client.get("/v1/model").json()["name"]
    version = client.get("/v1/model").json()["version"]
    return [
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        f"/v2/models/{name}",
        f"/v2/models/{name}/ready",
        f"/v2/models/{name}/versions/{version}",
        f"/v2/models/{name}/versions/{version}/ready",
        "/v1/model",
        "/v1/rates",
        "/metrics",
        "/openapi.json",
    ]


def test_head_is_served_wherever_get_is(client):
    for path in _get_paths(client):
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path


def test_head_of_an_unknown_model_is_404_as_get(client):
    assert client.head("/v2/models/nope").status_code == 404


def test_every_405_names_the_allowed_methods(client):
    name = client.get("/v1/model").json()["name"]
    for method, path, allowed in [
        ("GET", "/v1/classify", "POST"),
        ("PUT", "/v1/ping", "POST"),
        ("GET", f"/v2/models/{name}/infer", "POST"),
        ("POST", "/v2/health/live", "GET, HEAD"),
        ("DELETE", "/metrics", "GET, HEAD"),
        ("POST", "/v1/rates", "GET, HEAD"),
    ]:
        r = client.request(method, path)
        assert r.status_code == 405, (method, path)
        assert r.headers["allow"] == allowed, (method, path)


def test_openapi_lists_no_head_operations(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p, ops in paths.items() if "head" in ops]


# -- what counts as load -----------------------------------------------------------------------


def _samples(text: str, name: str) -> dict[tuple, float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    }


async def _stalled(app: FastAPI, stall: asyncio.Event, gone: bool) -> None:
    """A POST whose body starts and stalls until `stall` is set; then the client goes away
    (`gone`) or never finishes."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/classify",
        "raw_path": b"/v1/classify",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100000")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b'{"sequences": [[[', "more_body": True}
        await stall.wait()
        return {"type": "http.disconnect"} if gone else await asyncio.Event().wait()

    async def send(message: dict) -> None:
        pass

    await app(scope, receive, send)


def test_stalled_uploads_are_not_load_and_a_client_gone_is_499(synthetic_store, tmp_path):
    app = _app(synthetic_store, tmp_path, onnx_tiers=False, degrade_in_flight=2)
    app.state.host.prepare_tiers()  # what the lifespan does in the background

    async def scenario() -> tuple[dict, dict, str]:
        stall = asyncio.Event()
        uploads = [asyncio.create_task(_stalled(app, stall, gone=True)) for _ in range(12)]
        await asyncio.sleep(0.05)  # every upload has started and stalled
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            during = (await http.get("/metrics")).text
            body = {"sequences": [sequence()], "tier": "accurate", "allow_degrade": True}
            answer = (await http.post("/v1/classify", json=body)).json()
            stall.set()
            await asyncio.gather(*uploads)
            after = (await http.get("/metrics")).text
        return answer, _samples(during, "mrmp_in_flight_requests"), after

    answer, in_flight, after = asyncio.run(scenario())
    assert list(in_flight.values()) == [0.0]
    assert answer["degraded"] is False and answer["rate_served"] == 0.5
    statuses = {
        dict(k)["status"]: v
        for k, v in _samples(after, "mrmp_requests_total").items()
        if dict(k)["endpoint"] == "/v1/classify"
    }
    assert statuses == {"200": 1.0, "499": 12.0}
    assert list(_samples(after, "mrmp_in_flight_requests").values()) == [0.0]


def test_requests_running_compute_are_load(synthetic_store, tmp_path):
    """The other side of the rule: requests whose bodies are whole and that wait for compute
    count, and a degradable request among them is degraded."""
    app = _app(synthetic_store, tmp_path, onnx_tiers=False, degrade_in_flight=2)
    app.state.host.prepare_tiers()
    body = json.dumps({"sequences": [sequence(frames=64)], "tier": "accurate"}).encode()
    degradable = {"sequences": [sequence()], "tier": "accurate", "allow_degrade": True}

    async def scenario() -> list[dict]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            plain = [http.post("/v1/classify", content=body) for _ in range(4)]
            answers = await asyncio.gather(http.post("/v1/classify", json=degradable), *plain)
        return [a.json() for a in answers]

    first, *_ = asyncio.run(scenario())
    assert first["degraded"] is True and first["tier"] == "fast"
