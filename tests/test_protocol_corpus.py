"""Protocol hygiene (issue 19): compressed bodies, bodies that stall or are abandoned, V2
parameters checked as v1 fields are, and a corpus of malformed bodies, headers and encodings
over both protocols whose every answer names its cause."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn

from service.app import create_app
from service.settings import Settings
from tests.service_helpers import ready_client, sequence, wait_ready

J = 30
GOOD = sequence(frames=6)
FLAT = [v for frame in GOOD for joint in frame for v in joint]


def v2_body(data: list = FLAT, **extra: object) -> dict:
    tensor = {"name": "skeleton", "shape": [1, 6, J, 3], "datatype": "FP32", "data": data}
    return {"inputs": [tensor], **extra}


def v2_binary(header_length: int | None = None) -> tuple[bytes, dict[str, str]]:
    """A V2 body with its tensor as binary data, and its headers."""
    blob = np.asarray(GOOD, dtype="<f4").tobytes()
    tensor = {
        "name": "skeleton",
        "shape": [1, 6, J, 3],
        "datatype": "FP32",
        "parameters": {"binary_data_size": len(blob)},
    }
    head = json.dumps({"inputs": [tensor]}).encode()
    headers = {"content-type": "application/octet-stream"}
    if header_length is not None:
        headers["inference-header-content-length"] = str(header_length)
    return head + blob, headers


@pytest.fixture(scope="module")
def client(synthetic_store: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("corpus")
    with ready_client(synthetic_store, tmp, onnx_tiers=False, max_body_bytes=2**20) as c:
        yield c


@pytest.fixture(scope="module")
def infer_path(client) -> str:
    return f"/v2/models/{client.get('/v1/model').json()['name']}/infer"


# -- Content-Encoding --------------------------------------------------------------------------

ENCODERS = {"gzip": gzip.compress, "deflate": zlib.compress, "identity": lambda b: b}


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_encoded_bodies_are_decoded_on_both_protocols(client, infer_path, encoding):
    encode = ENCODERS[encoding]
    plain = client.post("/v1/classify", json={"sequences": [GOOD]}).json()
    r = client.post(
        "/v1/classify",
        content=encode(json.dumps({"sequences": [GOOD]}).encode()),
        headers={"content-type": "application/json", "content-encoding": encoding},
    )
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == plain["predictions"]
    r = client.post(
        infer_path,
        content=encode(json.dumps(v2_body()).encode()),
        headers={"content-type": "application/json", "content-encoding": encoding},
    )
    assert r.status_code == 200, r.text
    body, headers = v2_binary()
    split = body.index(b"}]}") + 3
    headers = {**headers, "inference-header-content-length": str(split)}
    r = client.post(
        infer_path, content=encode(body), headers={**headers, "content-encoding": encoding}
    )
    assert r.status_code == 200, r.text


def test_stacked_codings_and_gzip_members_are_decoded_in_turn(client):
    """Codings listed in the order applied (RFC 9110, 8.4) and a gzip body of several members
    (RFC 1952, 2.2), as gzip and curl write them."""
    plain = client.post("/v1/classify", json={"sequences": [GOOD]}).json()
    body = json.dumps({"sequences": [GOOD]}).encode()
    for content, encoding in [
        (gzip.compress(zlib.compress(body)), "deflate, gzip"),
        (gzip.compress(gzip.compress(body)), "gzip, gzip"),
        (gzip.compress(body[:10]) + gzip.compress(body[10:]), "gzip"),
    ]:
        r = client.post(
            "/v1/classify",
            content=content,
            headers={"content-type": "application/json", "content-encoding": encoding},
        )
        assert r.status_code == 200, (encoding, r.text)
        assert r.json()["predictions"] == plain["predictions"]


def test_content_encoding_on_several_header_lines_is_one_list(client):
    body = gzip.compress(gzip.compress(json.dumps({"sequences": [GOOD]}).encode()))
    lines = [("content-type", "application/json")]
    r = client.post(
        "/v1/classify", content=body, headers=[*lines, *[("content-encoding", "gzip")] * 2]
    )
    assert r.status_code == 200, r.text
    r = client.post(
        "/v1/classify",
        content=body,
        headers=[*lines, ("content-encoding", "gzip"), ("content-encoding", "br")],
    )
    assert r.status_code == 415 and '"br"' in r.json()["error"]


def test_numbers_beyond_any_limit_are_quoted_cut(client, infer_path):
    """A number of thousands of digits where a count belongs is refused, and quoted in 40
    characters, not echoed whole."""
    huge = "9" * 20000
    tensor = '{{"name": "skeleton", "shape": {}, "datatype": "FP32", "data": []}}'
    for shape in (f"[1, {huge}, 30, 3]", f"[{huge}, 4, 30, 3]", f"[1, 4, {huge}, 3]"):
        path, body = infer_path, '{"inputs": [' + tensor.format(shape) + "]}"
        r = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        message = r.json()["error"]
        assert "99999" in message and len(message) < 200, message


def test_raw_deflate_is_read_as_deflate(client):
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = packer.compress(json.dumps({"sequences": [GOOD]}).encode()) + packer.flush()
    r = client.post(
        "/v1/classify",
        content=raw,
        headers={"content-type": "application/json", "content-encoding": "deflate"},
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compression_bomb_is_refused_at_the_decoded_limit(client, infer_path, encoding):
    bomb = ENCODERS[encoding](b" " * (64 * 2**20))  # 64 MiB of spaces in about 64 KiB
    assert len(bomb) < 2**20
    for path in ("/v1/classify", infer_path):
        started = time.perf_counter()
        r = client.post(path, content=bomb, headers={"content-encoding": encoding})
        assert r.status_code == 413, r.text
        assert f"decompressed ({encoding}) exceeds the limit of {2**20} bytes" in r.json()["error"]
        assert time.perf_counter() - started < 2  # stopped at the limit, not inflated whole


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "snappy", "gzip, br"])
def test_other_encodings_are_415_naming_them(client, infer_path, encoding):
    for path in ("/v1/classify", infer_path):
        r = client.post(path, json={"sequences": [GOOD]}, headers={"content-encoding": encoding})
        assert r.status_code == 415, r.text
        assert f'Content-Encoding "{encoding}" is not supported' in r.json()["error"]


# -- V2 parameters -----------------------------------------------------------------------------


def test_v2_serving_parameters_and_the_protocol_reserved_ones_are_accepted(client, infer_path):
    reserved = {
        "sequence_id": 7,
        "sequence_start": True,
        "sequence_end": False,
        "priority": 1,
        "timeout": 1000,
        "headers": {},
        "triton_enable_empty_final_response": True,
        "binary_data_output": False,
    }
    r = client.post(infer_path, json=v2_body(parameters={"rate": 0.5, **reserved}))
    assert r.status_code == 200, r.text
    assert r.json()["parameters"]["rate_served"] == 0.5
    r = client.post(infer_path, json=v2_body(parameters={"sequence_id": "a-string-id"}))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"Rate": 0.99}, "unknown parameter(s) in parameters: Rate; known: allow_degrade,"),
        ({"rate": 0.5, "tire": "fast"}, "unknown parameter(s) in parameters: tire"),
        (0, "parameters must be a JSON object of name: value, got 0"),
        ([], "parameters must be a JSON object"),
        ("", "parameters must be a JSON object"),
        ({"binary_data_output": "yes"}, "parameters.binary_data_output must be true or false"),
        ({"priority": True}, "parameters.priority must be an integer >= 0, got true"),
        ({"timeout": -1}, "parameters.timeout must be an integer >= 0"),
        ({"sequence_start": 1}, "parameters.sequence_start must be true or false"),
        ({"allow_degrade": "true"}, "allow_degrade must be true or false"),
        ({"rate": "0.5"}, "rate must be a number"),
    ],
)
def test_v2_parameters_are_checked_as_v1_fields_are(client, infer_path, parameters, words):
    r = client.post(infer_path, json=v2_body(parameters=parameters))
    assert r.status_code == 422, r.text
    assert words in r.json()["error"]


def test_unknown_v2_parameter_lists_the_known_ones(client, infer_path):
    message = client.post(infer_path, json=v2_body(parameters={"Rate": 0.99})).json()["error"]
    for known in ("rate", "tier", "mode", "max_latency_ms", "sequence_id", "triton_*"):
        assert known in message


def test_output_parameters_are_typed(client, infer_path):
    outputs = [{"name": "logits", "parameters": {"binary_data": "no"}}]
    r = client.post(infer_path, json=v2_body(outputs=outputs))
    assert r.status_code == 422
    assert "outputs[0].parameters.binary_data must be true or false" in r.json()["error"]


# -- the corpus: every refusal names its cause -------------------------------------------------

DEEP = "[" * 300 + "1" + "]" * 300
NULL_AT = [[list(joint) for joint in frame] for frame in GOOD]
NULL_AT[2][7][1] = None
V1 = "/v1/classify"
V2 = "v2"  # replaced by the model's infer path

CORPUS: list[tuple[str, bytes, dict[str, str], int, list[str]]] = [
    # (path, body, headers, status, words the message must hold)
    (V1, b"", {}, 400, ["body is empty"]),
    (V1, b"{", {}, 400, ["malformed JSON"]),
    (V1, b"\xff\xfe{}", {}, 400, ["malformed JSON", "UTF-8"]),
    (V1, b"\x1f\x8b\x08junk", {"content-encoding": "gzip"}, 400, ["not valid gzip data"]),
    (V1, gzip.compress(b"{}")[:-6], {"content-encoding": "gzip"}, 400, ["truncated gzip"]),
    (V1, gzip.compress(b"{}") + b"xx", {"content-encoding": "gzip"}, 400, ["2 bytes after"]),
    (V1, b"{}", {"content-encoding": "br"}, 415, ['"br"', "gzip, deflate or identity"]),
    (V1, b"{}", {"content-encoding": ", ".join(["gzip"] * 5)}, 415, ["5 codings", "at most 4"]),
    (
        V1,
        json.dumps({"sequences": [json.loads(DEEP)]}).encode(),
        {},
        422,
        ["sequence 0", "nested too deep", "frames x joints x axes"],
    ),
    (
        V1,
        json.dumps({"sequences": [NULL_AT]}).encode(),
        {},
        422,
        ["sequence 0, frame 2, joint 7, axis y", "null is not a number"],
    ),
    (
        V1,
        json.dumps({"sequences": [[[[1, 2, 3]] * J, [[1, 2, 3]]]]}).encode(),
        {},
        422,
        ["sequence 0, frame 1", "different lengths", "1 joints here, 30 in the first"],
    ),
    (
        V1,
        json.dumps({"sequences": [GOOD, [[[1, 2, 3]] * J, []]]}).encode(),
        {},
        422,
        ["sequence 1, frame 1", "empty list where joints belong"],
    ),
    (
        V1,
        json.dumps({"sequences": [[[1, 2, 3]] * J]}).encode(),
        {},
        422,
        ["sequence 0, frame 0, joint 0", "nested too shallow"],
    ),
    (
        V1,
        json.dumps({"sequences": [[[[1, "a", 3]] * J]]}).encode(),
        {},
        422,
        ["sequence 0, frame 0, joint 0, axis y", '"a" is not a number'],
    ),
    (
        V1,
        b'{"sequences": [[' + b"[" + b"[NaN, 1, 2], " * (J - 1) + b"[1, 2, 3]]" + b"]]}",
        {},
        422,
        ["sequence 0", "frame 0, joint 0, coordinate x"],
    ),
    (
        V1,
        json.dumps({"sequences": [GOOD], "Rate": 0.9}).encode(),
        {},
        422,
        ["unknown field", "Rate"],
    ),
    (V2, v2_binary()[0], v2_binary()[1], 400, ["Inference-Header-Content-Length", "binary body"]),
    (
        V2,
        v2_binary()[0],
        {"content-type": "application/json"},
        400,
        ["after its JSON part", "Inference-Header-Content-Length"],
    ),
    (V2, *v2_binary(0), 400, ["Inference-Header-Content-Length is 0", "JSON part is empty"]),
    (V2, *v2_binary(10), 400, ["JSON part (the first 10 bytes", "malformed JSON"]),
    (V2, v2_binary()[0], {"inference-header-content-length": "x"}, 400, ['"x" does not fit']),
    (V2, json.dumps(v2_body(parameters={"Rate": 0.99})).encode(), {}, 422, ["Rate", "known"]),
    (V2, json.dumps(v2_body(parameters=0)).encode(), {}, 422, ["parameters must be a JSON"]),
    (
        V2,
        json.dumps(v2_body([*FLAT[:-1], None])).encode(),
        {},
        422,
        ["inputs[0].data, value 539", "null is not a number"],
    ),
    (
        V2,
        json.dumps(v2_body([NULL_AT])).encode(),
        {},
        422,
        ["inputs[0].data, sequence 0, frame 2, joint 7, axis y", "null is not a number"],
    ),
    (
        V2,
        json.dumps(v2_body([json.loads(DEEP)])).encode(),
        {},
        422,
        ["nested too deep"],
    ),
    (V2, gzip.compress(b"{}") + b"xx", {"content-encoding": "gzip"}, 400, ["after the end"]),
    (V1, b'{"\\ud800": 1}', {}, 400, ["malformed JSON", "surrogate", "column 3"]),
    (V2, b'{"id": "\\udc00", "inputs": []}', {}, 400, ["malformed JSON", "surrogate"]),
    (
        V1,
        b'{"sequences": [[[[' + b"1" * 5000 + b", 0, 0]]]]}",
        {},
        422,
        ["sequence 0, frame 0, joint 0, axis x", "is too large for a coordinate"],
    ),
    (V1, b"null", {}, 422, ["the request body must be a JSON object, got null"]),
    (V1, b"[" * 1000 + b"]" * 1000, {}, 422, ["must be a JSON object, got [[[[[[[["]),
    (V1, b'{"sequences": [[[[1, 2, 3]]]], "top_k": NaN}', {}, 422, ["top_k must be", "got NaN"]),
    (V1, b'{"sequences": [[[[1, 2, 3]]]], "rate": -Infinity}', {}, 422, ["got -Infinity"]),
    (
        V1,
        gzip.compress(b"") * 65 + gzip.compress(b"{}"),
        {"content-encoding": "gzip"},
        400,
        ["more than 64 gzip members"],
    ),
    (V1, json.dumps({"sequences": [GOOD], "tier": ""}).encode(), {}, 422, ['unknown tier ""']),
    (V1, json.dumps({"sequences": [GOOD], "top_k": "3"}).encode(), {}, 422, ['got "3"']),
    (V2, b'{"inputs": [5]}', {}, 422, ["inputs[0] must be a JSON object, got 5"]),
    (
        V2,
        json.dumps(v2_body(model="m")).encode(),
        {},
        422,
        ["unknown field(s) in the inference request: model"],
    ),
    (
        V2,
        json.dumps({"inputs": [{**v2_body()["inputs"][0], "dtype": "FP32"}]}).encode(),
        {},
        422,
        ["unknown field(s) in inputs[0]: dtype"],
    ),
    (
        V2,
        json.dumps(
            v2_body(outputs=[{"name": "label", "parameters": {"classification": 2}}])
        ).encode(),
        {},
        422,
        ["outputs[0].parameters.classification", "extension is not supported"],
    ),
    (
        V2,
        v2_binary()[0] + b"\0" * 8,
        {"inference-header-content-length": str(v2_binary()[0].index(b"}]}") + 3)},
        422,
        [
            f"{len(v2_binary()[0]) - v2_binary()[0].index(b'}]}') - 3 + 8} bytes of binary data",
            "accounts for",
        ],
    ),
    (
        V2,
        json.dumps(v2_body()).encode() + b"\0" * 8,
        {"inference-header-content-length": str(len(json.dumps(v2_body())))},
        422,
        ["8 bytes of binary data", "no binary_data_size"],
    ),
    (V2, b"{}", {"content-encoding": "zstd"}, 415, ['"zstd"']),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "words"),
    CORPUS,
    ids=[f"{i}-{'v1' if c[0] == V1 else 'v2'}-{c[3]}" for i, c in enumerate(CORPUS)],
)
def test_every_refusal_names_its_cause(client, infer_path, path, body, headers, status, words):
    headers = {"content-type": "application/json", **headers}
    r = client.post(infer_path if path == V2 else path, content=body, headers=headers)
    assert r.status_code == status, r.text
    message = r.json()["error"]
    for word in words:
        assert word in message, (word, message)


# -- bodies that stall or are abandoned (a live server: real sockets) --------------------------


@pytest.fixture(scope="module")
def live(synthetic_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A served app on a free port, with a 0.5 s body timeout."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        model_path=synthetic_store,
        tier_dir=tmp_path_factory.mktemp("live") / "tiers",
        onnx_tiers=False,
        body_timeout_s=0.5,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, _Running(thread))
    yield url
    server.should_exit = True
    thread.join(10)


class _Running:
    """A server thread seen as wait_ready sees a process: poll() is None while it runs."""

    stdout = None

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread

    def poll(self) -> int | None:
        return None if self.thread.is_alive() else 1


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _stalled_post(url: str, path: str) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", _port(url)), timeout=5)
    conn.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: 5000\r\n\r\n".encode()
        + b'{"sequences": [[['
    )
    return conn


def _read_all(conn: socket.socket) -> bytes:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_a_stalled_body_is_408_and_its_connection_closed(live, protocol):
    import httpx

    name = httpx.get(f"{live}/v1/model").json()["name"]
    path = "/v1/classify" if protocol == "v1" else f"/v2/models/{name}/infer"
    stalled = [_stalled_post(live, path) for _ in range(4)]
    started = time.monotonic()
    for conn in stalled:
        answer = _read_all(conn)  # returns once the server closes the connection
        conn.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"connection: close" in head.lower()
        assert b"did not arrive within 0.5 s" in body
    assert time.monotonic() - started < 5
    metrics = httpx.get(f"{live}/metrics").text
    assert 'mrmp_errors_total{reason="body_timeout"}' in metrics
    # The stalled uploads are gone: an idle server serves at the default tier, undegraded.
    r = httpx.post(f"{live}/v1/classify", json={"sequences": [GOOD], "rate": "auto"})
    assert r.status_code == 200 and r.json()["degraded"] is False


def test_a_client_gone_mid_body_is_counted_as_499_never_400(live):
    import httpx

    def errors(reason: str) -> float:
        for line in httpx.get(f"{live}/metrics").text.splitlines():
            if line.startswith(f'mrmp_errors_total{{reason="{reason}"}}'):
                return float(line.split()[-1])
        return 0.0

    before = errors("client_closed")
    conn = _stalled_post(live, "/v1/classify")
    time.sleep(0.1)
    conn.close()
    deadline = time.monotonic() + 5
    while errors("client_closed") == before:
        assert time.monotonic() < deadline, "the abandoned body was never counted"
        time.sleep(0.05)
    assert errors("client_closed") == before + 1
    assert errors("disconnect") == 0 and errors("body_timeout") >= 0


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_compressed_requests_are_served(live, algorithm, binary):
    import httpx
    import tritonclient.http as triton

    name = httpx.get(f"{live}/v1/model").json()["name"]
    client = triton.InferenceServerClient(live.removeprefix("http://"))
    tensor = triton.InferInput("skeleton", [1, 6, J, 3], "FP32")
    tensor.set_data_from_numpy(np.asarray([GOOD], dtype=np.float32), binary_data=binary)
    result = client.infer(
        name,
        [tensor],
        parameters={"rate": 0.5},
        request_compression_algorithm=algorithm,
    )
    assert result.as_numpy("probabilities").shape[0] == 1
    assert result.get_response()["parameters"]["rate_served"] == 0.5
