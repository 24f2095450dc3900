"""The KServe / Triton open inference protocol (V2) routes: health, metadata, and inference
through the V2 codec (`service.v2_codec`, with the binary tensor extension, so that stock
clients such as tritonclient and kserve work unchanged) and the data plane."""

from __future__ import annotations

import time
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request, Response

from service.dataplane import DataPlane
from service.decoding import read_body
from service.dependencies import HostDep, PlaneDep, ReadyDep, SettingsDep
from service.errors import UnknownModelError, shown
from service.host import ModelHost
from service.http_methods import serve_head_where_get
from service.input_rules import InputRules
from service.responses import ERROR_RESPONSES, json_response
from service.schemas import V2InferAnswer, V2InferBody, request_body
from service.settings import Settings
from service.v2_codec import INPUT, decode_infer, encode_infer

router = APIRouter(prefix="/v2", tags=["v2"])


def _served(host: ModelHost, name: str, version: str | None = None) -> ModelHost:
    """The host, when `name` is the model it serves and `version` (full or its first 12
    characters), if given, the served version; 404 otherwise."""
    if name != host.name:
        raise UnknownModelError(
            f"unknown model {shown(name)}; this server serves {shown(host.name)}"
        )
    if version is not None and version not in (host.version, host.version[:12]):
        raise UnknownModelError(
            f"unknown version {shown(version)} of {shown(name)}; served: {host.version[:12]}"
        )
    return host


async def _named(name: str, host: HostDep) -> ModelHost:
    return _served(host, name)


async def _versioned(name: str, version: str, host: HostDep) -> ModelHost:
    return _served(host, name, version)


NamedModel = Annotated[ModelHost, Depends(_named)]
VersionedModel = Annotated[ModelHost, Depends(_versioned)]


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
async def ready(ok: ReadyDep) -> Response:
    return json_response({"ready": ok}, 200 if ok else 503)


def _metadata(host: ModelHost, rules: InputRules) -> dict[str, object]:
    """The model's tensors, and in `parameters` (strings: V2 parameters are bool, number or
    string) the classes and the input contract: joint names, persons, bones and coordinate
    frame of the layout, and the input rules, the last three as JSON."""
    j, c = host.num_joints, len(host.class_names)
    layout = host.manifest.layout
    return {
        "name": host.name,
        "versions": [host.version],
        "platform": "pytorch",
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, -1, j, 3]}],
        "outputs": [
            {"name": "logits", "datatype": "FP32", "shape": [-1, c]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, c]},
            {"name": "class_index", "datatype": "INT64", "shape": [-1]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {
            "class_names": ",".join(host.class_names),
            "joint_names": ",".join(layout.joint_names),
            "persons": str(layout.persons),
            "bones": orjson.dumps(layout.bones).decode(),
            "frame": orjson.dumps(layout.frame.model_dump()).decode(),
            "input": orjson.dumps(rules.public()).decode(),
        },
    }


@router.get("/models/{name}", responses=ERROR_RESPONSES)
async def model_metadata(host: NamedModel, plane: PlaneDep) -> Response:
    return json_response(_metadata(host, plane.rules))


@router.get("/models/{name}/versions/{version}", responses=ERROR_RESPONSES)
async def model_version_metadata(host: VersionedModel, plane: PlaneDep) -> Response:
    return json_response(_metadata(host, plane.rules))


@router.get("/models/{name}/ready", responses=ERROR_RESPONSES)
async def model_ready(host: NamedModel, ok: ReadyDep) -> Response:
    return json_response({"name": host.name, "ready": ok}, 200 if ok else 503)


@router.get("/models/{name}/versions/{version}/ready", responses=ERROR_RESPONSES)
async def model_version_ready(host: VersionedModel, ok: ReadyDep) -> Response:
    return json_response({"name": host.name, "ready": ok}, 200 if ok else 503)


async def _infer(
    request: Request, host: ModelHost, plane: DataPlane, settings: Settings
) -> Response:
    started = time.perf_counter()
    body = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
    req = decode_infer(body, request.headers, started, settings, host.num_joints)
    return encode_infer(await plane.infer(req.request), req, host)


@router.post(
    "/models/{name}/infer",
    response_model=V2InferAnswer,
    responses=ERROR_RESPONSES,
    openapi_extra=request_body(V2InferBody),
)
async def infer(
    request: Request, host: NamedModel, plane: PlaneDep, settings: SettingsDep
) -> Response:
    return await _infer(request, host, plane, settings)


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=V2InferAnswer,
    responses=ERROR_RESPONSES,
    openapi_extra=request_body(V2InferBody),
)
async def infer_version(
    request: Request, host: VersionedModel, plane: PlaneDep, settings: SettingsDep
) -> Response:
    return await _infer(request, host, plane, settings)


serve_head_where_get(router)
