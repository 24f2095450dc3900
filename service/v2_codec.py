"""The V2 codec (KServe / Triton open inference protocol): an inference request's JSON and its
binary tensor extension in, the answer's tensors out (JSON, or a JSON header followed by the
binary tensors). The serving fields travel in `parameters`: {"rate": 0.9} or {"tier": "fast"},
and optionally {"mode": "exact"}; the answer's `parameters` say what served it, and hold in
"warnings" the JSON list of each sequence's warnings (V2 parameters are bool, number or string).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from fastapi import Response

from service.dataplane import Answer, InferenceRequest
from service.decoding import (
    ASK_FIELDS,
    FRAME_LEVELS,
    check_count,
    check_frames,
    decode_ask,
    decode_json,
    json_object,
    numeric,
    reject_unknown,
)
from service.errors import (
    BadHeaderLengthError,
    BadIdError,
    BadOutputError,
    BadParameterError,
    BadShapeError,
    MalformedJsonError,
    MissingHeaderLengthError,
    UnknownInputError,
    UnknownParameterError,
    UnsupportedDatatypeError,
    shown,
)
from service.host import ModelHost
from service.json_arrays import decode_json_arrays
from service.responses import json_response
from service.settings import Settings

INPUT = "skeleton"
DATATYPES = {"FP32": np.float32, "FP64": np.float64}
OUTPUTS = ("logits", "probabilities", "class_index", "label")
# The members of an inference request and of its input tensor (the V2 protocol's
# $inference_request and $request_input); another is refused, as an unknown v1 field is.
REQUEST_FIELDS = {"id", "parameters", "inputs", "outputs"}
TENSOR_FIELDS = {"name", "shape", "datatype", "parameters", "data"}
HEADER_LENGTH = "inference-header-content-length"
# Request parameters the protocol reserves (KServe V2 binary tensor extension; Triton's
# parameters, sequence and schedule-policy extensions), with their JSON types: accepted,
# typed, and otherwise unused by this server. Names starting "triton_" are Triton's too.
RESERVED_PARAMETERS: dict[str, tuple[type, ...]] = {
    "binary_data_output": (bool,),
    "sequence_id": (int, str),
    "sequence_start": (bool,),
    "sequence_end": (bool,),
    "priority": (int,),
    "timeout": (int,),
    "headers": (dict,),
}
_TYPE_NAMES = {bool: "true or false", int: "an integer >= 0", str: "a string", dict: "an object"}


@dataclass(frozen=True)
class V2Request:
    """A decoded inference request: the data plane's part, and what the answer must hold."""

    request: InferenceRequest
    id: str | None
    outputs: list[str]
    binary: dict[str, bool]  # per output: sent as binary data


def split_body(
    body: bytes, header_length: str | None, content_type: str | None, arrays: bool = True
) -> tuple[Any, bytes]:
    """The JSON part of a body and the binary tensor data after it (empty without the
    Inference-Header-Content-Length header); with `arrays`, a well-formed tensor's JSON data
    as one float64 ndarray (`_decode_json`)."""
    decode = _decode_json if arrays else decode_json
    if header_length is None:
        if content_type is not None and content_type.startswith("application/octet-stream"):
            raise MissingHeaderLengthError(
                f"a binary body (Content-Type {content_type}) needs the "
                f"Inference-Header-Content-Length header: the byte length of its JSON part"
            )
        try:
            return decode(body), b""
        except MalformedJsonError:
            end = _json_end(body)
            if end is not None and end < len(body):
                raise MissingHeaderLengthError(
                    f"the body holds {len(body) - end} bytes after its JSON part ({end} bytes): "
                    f"binary tensor data needs the Inference-Header-Content-Length header"
                ) from None
            raise
    if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
        raise BadHeaderLengthError(
            f"Inference-Header-Content-Length {shown(header_length)} does not fit a body of "
            f"{len(body)} bytes"
        )
    split = int(header_length)
    if split == 0:
        raise BadHeaderLengthError(
            f"Inference-Header-Content-Length is 0, so the body's JSON part is empty; it must "
            f"be the byte length of the JSON inference request that starts the {len(body)}-byte "
            f"body"
        )
    try:
        return decode(body[:split]), body[split:]
    except MalformedJsonError as e:
        raise MalformedJsonError(
            f"the JSON part (the first {split} bytes, per Inference-Header-Content-Length): "
            f"{e.message}"
        ) from None


def _decode_json(body: bytes) -> Any:
    """JSON with the tensor's `data` as an ndarray, flat or nested [batch][frame][joint][axis]
    or [frame][joint][axis], when it is a regular array of numbers."""
    return decode_json_arrays(body, ("inputs", 0, "data"), ndims=(1, 3, 4), each=False)


def _json_end(body: bytes) -> int | None:
    """The byte length of the JSON value a body starts with, or None when it starts with none.
    Read as Latin-1, one character per byte, so the index is a byte count."""
    try:
        return json.JSONDecoder().raw_decode(body.decode("latin-1"))[1]
    except (ValueError, RecursionError):
        return None


def decode_infer(
    body: bytes,
    headers: Mapping[str, str],
    started: float,
    settings: Settings,
    num_joints: int,
) -> V2Request:
    """An inference request with one input tensor `skeleton` of shape [batch, frames,
    joints, 3] (or [frames, joints, 3]), FP32 or FP64, as JSON data or binary data.
    `headers` are the request's (Inference-Header-Content-Length, Content-Type)."""
    header_length, content_type = headers.get(HEADER_LENGTH), headers.get("content-type")
    try:
        return _decode_infer(body, header_length, content_type, started, settings, num_joints)
    except _NestedOtherwiseError:
        # Refused as nested lists, so the message is the checked path's.
        return _decode_infer(
            body, header_length, content_type, started, settings, num_joints, arrays=False
        )


class _NestedOtherwiseError(Exception):
    """JSON data decoded as an array nested otherwise than the tensor's shape."""


def _decode_infer(
    body: bytes,
    header_length: str | None,
    content_type: str | None,
    started: float,
    settings: Settings,
    num_joints: int,
    arrays: bool = True,
) -> V2Request:
    data, binary = split_body(body, header_length, content_type, arrays)
    data = json_object(data, "the inference request")
    reject_unknown(data, REQUEST_FIELDS, "the inference request")
    params = request_parameters(data.get("parameters"))
    rid = data.get("id")
    if rid is not None and not isinstance(rid, str):
        raise BadIdError(f"id must be a string, got {shown(rid)}")
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise BadShapeError(f"inputs must be a list of one tensor named {shown(INPUT)}")
    tensor = json_object(inputs[0], "inputs[0]")
    reject_unknown(tensor, TENSOR_FIELDS, "inputs[0]")
    if tensor.get("name") != INPUT:
        raise UnknownInputError(
            f"unknown input {shown(tensor.get('name'))}; this model's input is {shown(INPUT)}"
        )
    datatype = tensor.get("datatype")
    dtype = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise UnsupportedDatatypeError(
            f"datatype {shown(tensor.get('datatype'))} is not supported; use FP32 (or FP64)"
        )
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) not in (3, 4)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise BadShapeError(
            f"shape must be [batch, frames, joints, 3] (or [frames, joints, 3]), got {shown(shape)}"
        )
    dims = len(shape)
    if dims == 3:
        shape = [1, *shape]
    b, t, j, c = shape
    check_count(b, settings.max_sequences)
    check_frames(t, settings.max_frames, "every sequence")
    if j != num_joints or c != 3:
        raise BadShapeError(
            f"shape {shown(shape)} does not fit this model: expected "
            f"[batch, frames, {num_joints}, 3]"
        )
    arr = _tensor_data(tensor, binary, dtype, b * t * j * c, dims).reshape(b, t, j, c)
    outputs, out_binary = _requested_outputs(data.get("outputs"), params)
    return V2Request(
        InferenceRequest(list(arr), decode_ask(params), started), rid, outputs, out_binary
    )


def request_parameters(value: Any) -> dict[str, Any]:
    """A request's `parameters`, checked as v1 fields are: the serving fields (their types are
    decode_ask's) and the protocol's reserved parameters, typed; any other name is refused."""
    params = _parameters(value, "parameters")
    unknown = sorted(
        k
        for k in params
        if k not in ASK_FIELDS and k not in RESERVED_PARAMETERS and not k.startswith("triton_")
    )
    if unknown:
        raise UnknownParameterError(
            f"unknown parameter(s) in parameters: {', '.join(unknown)}; known: "
            f"{', '.join(sorted(ASK_FIELDS))}, and the protocol's "
            f"{', '.join(RESERVED_PARAMETERS)}, triton_*"
        )
    for name, types in RESERVED_PARAMETERS.items():
        if name in params and not _typed(params[name], types):
            kinds = " or ".join(_TYPE_NAMES[t] for t in types)
            raise BadParameterError(f"parameters.{name} must be {kinds}, got {shown(params[name])}")
    return params


def _typed(value: Any, types: tuple[type, ...]) -> bool:
    """Whether a JSON value is one of `types`; booleans are not integers, integers not < 0."""
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int):
        return int in types and value >= 0
    return any(t not in (bool, int) and isinstance(value, t) for t in types)


def _parameters(value: Any, where: str) -> dict[str, Any]:
    """A `parameters` object (absent: empty); anything else, 0 and [] included, is refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadParameterError(f"{where} must be a JSON object of name: value, got {shown(value)}")
    return value


def _tensor_data(
    tensor: dict[str, Any], binary: bytes, dtype: type, size: int, dims: int
) -> np.ndarray:
    """The tensor's `size` values, from its binary data or its JSON data (flat, or nested in
    `dims` levels as its shape is)."""
    tparams = _parameters(tensor.get("parameters"), "inputs[0].parameters")
    reject_unknown(tparams, {"binary_data_size"}, "inputs[0].parameters")
    nbytes = tparams.get("binary_data_size")
    if nbytes is not None:
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise BadShapeError(f"binary_data_size must be a byte count, got {shown(nbytes)}")
        expected = size * np.dtype(dtype).itemsize
        if nbytes != expected or len(binary) < expected:
            raise BadShapeError(
                f"binary input holds {min(nbytes, len(binary))} bytes; shape and datatype "
                f"need {expected}"
            )
        if len(binary) > expected:
            raise BadShapeError(
                f"the body holds {len(binary)} bytes of binary data after its JSON part; "
                f"inputs[0] (binary_data_size) accounts for {expected}"
            )
        return np.frombuffer(binary, dtype=np.dtype(dtype).newbyteorder("<"))
    if binary:
        raise BadShapeError(
            f"the body holds {len(binary)} bytes of binary data after its JSON part, but "
            f"inputs[0] has no binary_data_size parameter"
        )
    if "data" not in tensor:
        raise BadShapeError("inputs[0] has no data (and no binary_data_size)")
    values = tensor["data"]
    if isinstance(values, np.ndarray) and values.ndim not in (1, dims):
        raise _NestedOtherwiseError
    nested = isinstance(values, np.ndarray) and values.ndim > 1
    nested |= isinstance(values, list) and bool(values) and isinstance(values[0], list)
    # Flat (as tritonclient sends it) or nested as the shape is: [sequence][frame][joint][axis]
    levels = ("sequence", *FRAME_LEVELS)[-dims:] if nested else ("value",)
    arr = numeric(values, "inputs[0].data", levels).reshape(-1)
    if arr.size != size:
        raise BadShapeError(f"inputs[0].data holds {arr.size} values; its shape needs {size}")
    return arr


def _requested_outputs(outputs: Any, params: dict[str, Any]) -> tuple[list[str], dict[str, bool]]:
    all_binary = params.get("binary_data_output", False)  # typed by request_parameters
    if not isinstance(outputs, list | None):
        raise BadOutputError("outputs must be a list of {name} objects")
    if not outputs:  # none named: every output, as the V2 protocol and Triton answer
        return list(OUTPUTS), dict.fromkeys(OUTPUTS, all_binary)
    names: list[str] = []
    binary: dict[str, bool] = {}
    for i, out in enumerate(outputs):
        out = json_object(out, f"outputs[{i}]")
        reject_unknown(out, {"name", "parameters"}, f"outputs[{i}]")
        name = out.get("name")
        if name not in OUTPUTS:
            raise BadOutputError(f"unknown output {shown(name)}; known: {', '.join(OUTPUTS)}")
        if name in binary:
            raise BadOutputError(f"outputs[{i}] requests {shown(name)} again")
        oparams = _parameters(out.get("parameters"), f"outputs[{i}].parameters")
        if "classification" in oparams:  # what tritonclient's class_count sends
            raise BadParameterError(
                f"outputs[{i}].parameters.classification: the classification extension is not "
                f"supported; request probabilities and label (or use v1's top_k)"
            )
        reject_unknown(oparams, {"binary_data"}, f"outputs[{i}].parameters")
        wanted = oparams.get("binary_data", all_binary)
        if not isinstance(wanted, bool):
            raise BadParameterError(
                f"outputs[{i}].parameters.binary_data must be true or false, got {shown(wanted)}"
            )
        names.append(name)
        binary[name] = wanted
    return names, binary


def encode_infer(answer: Answer, req: V2Request, host: ModelHost) -> Response:
    """The answer's requested outputs, and what served it in `parameters`."""
    logits = answer.logits.astype(np.float32, copy=False)
    index = logits.argmax(axis=1)
    tensors = {
        "logits": (logits, "FP32"),
        "probabilities": (answer.probabilities().astype(np.float32), "FP32"),
        "class_index": (index.astype(np.int64), "INT64"),
        "label": (np.asarray(host.class_names, dtype=object)[index], "BYTES"),
    }
    # V2 parameters are bool, number or string: no nulls.
    params = {k: v for k, v in answer.served_fields().items() if v is not None}
    params["degraded"] = answer.choice.degraded_from is not None
    params["chosen_by"] = answer.choice.chosen_by
    if answer.choice.rate_asked is not None:
        params["rate_asked"] = answer.choice.rate_asked
    if answer.tier is not None:
        params["tier"] = answer.tier
    params["warnings"] = orjson.dumps(answer.warnings).decode()  # per sequence, a JSON list
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
    encoded: dict[str, object] = {
        "model_name": host.name,
        "model_version": host.version,
        "parameters": params,
        "outputs": outputs,
    }
    if req.id is not None:
        encoded["id"] = req.id
    if not blobs:
        return json_response(encoded)
    head = orjson.dumps(encoded)
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
