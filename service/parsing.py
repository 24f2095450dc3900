"""Request bodies -> validated arrays and options, without pydantic on the hot path.

FastAPI's model parsing costs several times the network itself on these bodies (nested lists
of floats), so bodies are read as bytes, decoded with orjson and checked here by hand; every
failure is an `ApiError` whose message says what is wrong. The pydantic models in
`service.schemas` describe the same bodies for the OpenAPI document.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from starlette.requests import ClientDisconnect, Request

from mrmp.skeleton import SkeletonError, describe
from service.errors import ApiError, bad_request, invalid
from service.host import ModelHost, Options
from service.settings import Settings

V2_INPUT = "skeleton"
V2_DATATYPES = {"FP32": np.float32, "FP64": np.float64}


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body is {declared} bytes; the limit is {limit}", "too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body exceeds the limit of {limit} bytes", "too_large")
            chunks.append(chunk)
    except ClientDisconnect:
        raise bad_request("client disconnected before the body was sent", "disconnect") from None
    return b"".join(chunks)


def decode_json(body: bytes) -> Any:
    if not body:
        raise bad_request("request body is empty; expected a JSON object", "malformed_json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        # orjson refuses NaN/Infinity; the standard parser reads them so that the skeleton
        # check below can name the bad value instead of calling the JSON malformed.
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise bad_request(f"malformed JSON: {e}", "malformed_json") from None


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise invalid(f"{what} must be a JSON object, got {type(data).__name__}", "bad_shape")
    return data


def _unknown(data: dict[str, Any], known: set[str], what: str) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise invalid(
            f"unknown field(s) in {what}: {', '.join(extra)}; known: {', '.join(sorted(known))}",
            "unknown_field",
        )


def _rate(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f'rate must be a number or "auto", got {value!r}', "bad_rate")
    number = _finite(value)
    if number is None:
        raise invalid(f"rate must be a finite number, got {str(value)[:40]}", "bad_rate")
    return number


def _finite(value: int | float) -> float | None:
    """The value as a float, or None when it is not finite (or too large for a float)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _optional_str(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise invalid(f"{field} must be a string, got {value!r}", f"bad_{field}")


def options(host: ModelHost, fields: dict[str, Any], batch: int) -> Options:
    """Serving options from a body's (v1) or parameters' (V2) fields: rate, tier, mode,
    allow_degrade, or instead of a rate or tier a need, max_latency_ms or min_accuracy;
    `rate` may also be "auto": the default tier, pruned further under load."""
    rate, allow_degrade = fields.get("rate"), fields.get("allow_degrade")
    tier, mode = fields.get("tier"), fields.get("mode")
    need = None
    for name in ("max_latency_ms", "min_accuracy"):
        value = fields.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(f"{name} must be a number, got {value!r}", "bad_need")
        number = _finite(value)
        if number is None or number < 0:
            raise invalid(f"{name} must be a finite number >= 0, got {str(value)[:40]}", "bad_need")
        if need is not None:
            raise invalid("give max_latency_ms or min_accuracy, not both", "bad_need")
        need = (name, number)
    auto = rate == "auto"
    asked = None if auto else _rate(rate)
    tier_name = _optional_str(tier, "tier")
    mode_name = _optional_str(mode, "mode")
    if allow_degrade is not None and not isinstance(allow_degrade, bool):
        raise invalid(f"allow_degrade must be true or false, got {allow_degrade!r}", "bad_degrade")
    try:
        return host.resolve(
            asked, tier_name, mode_name, auto or bool(allow_degrade), need=need, batch=batch
        )
    except ValueError as e:
        msg = str(e)
        reason = (
            "unmet_need"
            if msg.startswith("no rate")
            else "bad_tier"
            if msg.startswith("unknown tier")
            else "bad_mode"
            if "mode" in msg
            else "bad_rate"
        )
        raise invalid(msg, reason) from None


def _numeric(value: Any, where: str) -> np.ndarray:
    try:
        arr = np.array(value)
    except ValueError:
        raise invalid(
            f"{where} is not a regular array: its nested lists have different lengths",
            "bad_shape",
        ) from None
    if arr.dtype.kind not in "fiu":
        raise invalid(f"{where} must hold only numbers", "bad_shape")
    return arr


def _describe(host: ModelHost, seq: np.ndarray, where: str) -> np.ndarray:
    try:
        return describe(seq, host.descriptor, host.num_joints)
    except SkeletonError as e:
        reason = "non_finite" if "NaN" in str(e) else "bad_shape"
        raise invalid(f"{where}: {e}", reason) from None


def _check_frames(n: int, limit: int, where: str) -> None:
    if n == 0:
        raise invalid(f"{where} has no frames", "empty")
    if n > limit:
        raise invalid(f"{where} has {n} frames; the limit is {limit}", "too_long")


def _check_count(n: int, limit: int) -> None:
    if n == 0:
        raise invalid("no sequences given", "empty")
    if n > limit:
        raise invalid(f"{n} sequences in one request; the limit is {limit}", "too_many")


@dataclass
class ClassifyRequest:
    x: np.ndarray  # (B, J, F) descriptors
    options: Options
    top_k: int


CLASSIFY_FIELDS = {
    "sequences",
    "rate",
    "tier",
    "mode",
    "top_k",
    "allow_degrade",
    "max_latency_ms",
    "min_accuracy",
}


def parse_classify(data: Any, host: ModelHost, settings: Settings) -> ClassifyRequest:
    data = _object(data, "the request body")
    _unknown(data, CLASSIFY_FIELDS, "the request body")
    if "sequences" not in data:
        raise invalid("missing field: sequences (a list of T x J x 3 nested lists)", "bad_shape")
    seqs = data["sequences"]
    if not isinstance(seqs, list):
        raise invalid("sequences must be a list of T x J x 3 nested lists", "bad_shape")
    _check_count(len(seqs), settings.max_sequences)
    opts = options(host, data, len(seqs))
    top_k = data.get("top_k", 3)
    classes = len(host.class_names)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise invalid(f"top_k must be a positive integer, got {top_k!r}", "bad_top_k")
    top_k = min(top_k, classes, settings.max_top_k)
    x = np.empty((len(seqs), host.num_joints, host.descriptor.feature_dim()), dtype=np.float32)
    for i, seq in enumerate(seqs):
        where = f"sequence {i}"
        if not isinstance(seq, list):
            raise invalid(f"{where} must be a list of frames (T x J x 3)", "bad_shape")
        _check_frames(len(seq), settings.max_frames, where)
        x[i] = _describe(host, _numeric(seq, where), where)
    return ClassifyRequest(x, opts, top_k)


@dataclass
class InferRequest:
    id: str | None
    x: np.ndarray
    options: Options
    outputs: list[str]
    binary: dict[str, bool]


V2_OUTPUTS = ("logits", "probabilities", "class_index", "label")


def parse_infer(data: Any, binary: bytes, host: ModelHost, settings: Settings) -> InferRequest:
    """A V2 inference request; `binary` holds the bytes after the JSON header, if any."""
    data = _object(data, "the inference request")
    params = _object(data.get("parameters") or {}, "parameters")
    rid = data.get("id")
    if rid is not None and not isinstance(rid, str):
        raise invalid(f"id must be a string, got {rid!r}", "bad_id")
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise invalid(f"inputs must be a list of one tensor named {V2_INPUT!r}", "bad_shape")
    tensor = _object(inputs[0], "inputs[0]")
    if tensor.get("name") != V2_INPUT:
        raise invalid(
            f"unknown input {tensor.get('name')!r}; this model's input is {V2_INPUT!r}",
            "bad_input_name",
        )
    datatype = tensor.get("datatype")
    dtype = V2_DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise invalid(
            f"datatype {tensor.get('datatype')!r} is not supported; use FP32 (or FP64)",
            "bad_datatype",
        )
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) not in (3, 4)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise invalid(
            f"shape must be [batch, frames, joints, 3] (or [frames, joints, 3]), got {shape!r}",
            "bad_shape",
        )
    if len(shape) == 3:
        shape = [1, *shape]
    b, t, j, c = shape
    _check_count(b, settings.max_sequences)
    _check_frames(t, settings.max_frames, "every sequence")
    if j != host.num_joints or c != 3:
        raise invalid(
            f"shape {shape} does not fit this model: expected [batch, frames, "
            f"{host.num_joints}, 3]",
            "bad_shape",
        )
    arr = _tensor_data(tensor, binary, dtype, b * t * j * c)
    arr = arr.reshape(b, t, j, c)
    x = np.empty((b, host.num_joints, host.descriptor.feature_dim()), dtype=np.float32)
    for i in range(b):
        x[i] = _describe(host, arr[i], f"sequence {i}")
    opts = options(host, params, b)
    outputs, out_binary = _requested_outputs(data.get("outputs"), params)
    return InferRequest(rid, x, opts, outputs, out_binary)


def _tensor_data(tensor: dict[str, Any], binary: bytes, dtype: type, size: int) -> np.ndarray:
    tparams = _object(tensor.get("parameters") or {}, "inputs[0].parameters")
    nbytes = tparams.get("binary_data_size")
    if nbytes is not None:
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise invalid(f"binary_data_size must be a byte count, got {nbytes!r}", "bad_shape")
        expected = size * np.dtype(dtype).itemsize
        if nbytes != expected or len(binary) < expected:
            raise invalid(
                f"binary input holds {min(nbytes, len(binary))} bytes; shape and datatype "
                f"need {expected}",
                "bad_shape",
            )
        return np.frombuffer(binary[:expected], dtype=np.dtype(dtype).newbyteorder("<"))
    if "data" not in tensor:
        raise invalid("inputs[0] has no data (and no binary_data_size)", "bad_shape")
    arr = _numeric(tensor["data"], "inputs[0].data").reshape(-1)
    if arr.size != size:
        raise invalid(
            f"inputs[0].data holds {arr.size} values; its shape needs {size}", "bad_shape"
        )
    return arr


def _requested_outputs(outputs: Any, params: dict[str, Any]) -> tuple[list[str], dict[str, bool]]:
    all_binary = bool(params.get("binary_data_output", False))
    if outputs is None:
        return list(V2_OUTPUTS), dict.fromkeys(V2_OUTPUTS, all_binary)
    if not isinstance(outputs, list):
        raise invalid("outputs must be a list of {name} objects", "bad_output")
    names: list[str] = []
    binary: dict[str, bool] = {}
    for i, out in enumerate(outputs):
        out = _object(out, f"outputs[{i}]")
        name = out.get("name")
        if name not in V2_OUTPUTS:
            raise invalid(f"unknown output {name!r}; known: {', '.join(V2_OUTPUTS)}", "bad_output")
        oparams = _object(out.get("parameters") or {}, f"outputs[{i}].parameters")
        names.append(name)
        binary[name] = bool(oparams.get("binary_data", all_binary))
    return names, binary
