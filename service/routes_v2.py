"""The KServe / Triton open inference protocol (V2), with the binary tensor extension so that
stock clients (tritonclient, kserve) work unchanged. The pruning rate travels in
`parameters`: {"rate": 0.9} or {"tier": "fast"}, and optionally {"mode": "exact"}."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response

from service.errors import ApiError, bad_request
from service.host import ModelHost
from service.parsing import V2_INPUT, decode_json, parse_infer, read_body
from service.routes_v1 import ERRORS, json_response, served_fields, softmax
from service.schemas import V2InferAnswer, V2InferBody, request_body

router = APIRouter(prefix="/v2", tags=["v2"])

HEADER_LENGTH = "inference-header-content-length"


def _host(request: Request, name: str, version: str | None = None) -> ModelHost:
    host: ModelHost = request.app.state.host
    if name != host.name:
        raise ApiError(404, f"unknown model {name!r}; this server serves {host.name!r}", "no_model")
    if version is not None and version not in (host.version, host.version[:12]):
        raise ApiError(
            404,
            f"unknown version {version!r} of {name!r}; served: {host.version[:12]}",
            "no_model",
        )
    return host


@router.get("")
async def server_metadata(request: Request) -> Response:
    return json_response(
        {
            "name": "mrmp",
            "version": request.app.version,
            "extensions": ["binary_tensor_data", "parameters"],
        }
    )


@router.get("/health/live")
async def live() -> Response:
    return json_response({"live": True})


@router.get("/health/ready", responses={503: {"description": "not ready yet, or draining"}})
async def ready(request: Request) -> Response:
    ok = request.app.state.is_ready()
    return json_response({"ready": ok}, 200 if ok else 503)


def _metadata(host: ModelHost) -> dict[str, object]:
    j, c = host.num_joints, len(host.class_names)
    return {
        "name": host.name,
        "versions": [host.version],
        "platform": "pytorch",
        "inputs": [{"name": V2_INPUT, "datatype": "FP32", "shape": [-1, -1, j, 3]}],
        "outputs": [
            {"name": "logits", "datatype": "FP32", "shape": [-1, c]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, c]},
            {"name": "class_index", "datatype": "INT64", "shape": [-1]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {"class_names": ",".join(host.class_names)},
    }


@router.get("/models/{name}", responses=ERRORS)
async def model_metadata(name: str, request: Request) -> Response:
    return json_response(_metadata(_host(request, name)))


@router.get("/models/{name}/versions/{version}", responses=ERRORS)
async def model_version_metadata(name: str, version: str, request: Request) -> Response:
    return json_response(_metadata(_host(request, name, version)))


@router.get("/models/{name}/ready", responses=ERRORS)
async def model_ready(name: str, request: Request) -> Response:
    host = _host(request, name)
    ok = request.app.state.is_ready()
    return json_response({"name": host.name, "ready": ok}, 200 if ok else 503)


@router.get("/models/{name}/versions/{version}/ready", responses=ERRORS)
async def model_version_ready(name: str, version: str, request: Request) -> Response:
    host = _host(request, name, version)
    ok = request.app.state.is_ready()
    return json_response({"name": host.name, "ready": ok}, 200 if ok else 503)


async def _infer(request: Request, host: ModelHost) -> Response:
    settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    header = request.headers.get(HEADER_LENGTH)
    if header is not None:
        if not (header.isascii() and header.isdigit()) or int(header) > len(body):
            raise bad_request(
                f"Inference-Header-Content-Length {header!r} does not fit a body of "
                f"{len(body)} bytes",
                "malformed_json",
            )
        split = int(header)
        data, binary = decode_json(body[:split]), body[split:]
    else:
        data, binary = decode_json(body), b""
    req = parse_infer(data, binary, host, settings)
    await asyncio.sleep(0)  # let queued requests start, so the in-flight count sees them
    opts = host.degrade(req.options, request.app.state.metrics.active)
    result = host.infer(req.x, opts.rate, opts.mode)
    host.record_observed(result.served)
    logits = result.logits.astype(np.float32, copy=False)
    index = logits.argmax(axis=1)
    tensors = {
        "logits": (logits, "FP32"),
        "probabilities": (softmax(logits).astype(np.float32), "FP32"),
        "class_index": (index.astype(np.int64), "INT64"),
        "label": (np.array([host.class_names[i] for i in index], dtype=object), "BYTES"),
    }
    params = {
        k: v
        for k, v in served_fields(result).items()
        if v is not None  # V2 parameters are bool, number or string
    }
    params["degraded"] = opts.degraded_from is not None
    params["chosen_by"] = opts.chosen_by
    if opts.rate_asked is not None:
        params["rate_asked"] = opts.rate_asked
    tier = host.tier_of(result.served.key)
    if tier is not None:
        params["tier"] = tier
    outputs, blobs = [], []
    for name in req.outputs:
        arr, datatype = tensors[name]
        out: dict[str, object] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if req.binary[name]:
            blob = _binary(arr, datatype)
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = arr.tolist()
        outputs.append(out)
    answer: dict[str, object] = {
        "model_name": host.name,
        "model_version": host.version,
        "parameters": params,
        "outputs": outputs,
    }
    if req.id is not None:
        answer["id"] = req.id
    if not blobs:
        return json_response(answer)
    head = orjson.dumps(answer)
    return Response(
        b"".join([head, *blobs]),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )


def _binary(arr: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":  # each element: 4-byte little-endian length, then its bytes
        parts = []
        for s in arr.reshape(-1):
            b = str(s).encode()
            parts += [len(b).to_bytes(4, "little"), b]
        return b"".join(parts)
    return np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


@router.post(
    "/models/{name}/infer",
    response_model=V2InferAnswer,
    responses=ERRORS,
    openapi_extra=request_body(V2InferBody),
)
async def infer(name: str, request: Request) -> Response:
    return await _infer(request, _host(request, name))


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=V2InferAnswer,
    responses=ERRORS,
    openapi_extra=request_body(V2InferBody),
)
async def infer_version(name: str, version: str, request: Request) -> Response:
    return await _infer(request, _host(request, name, version))
