"""The V2 codec (KServe / Triton open inference protocol): an inference request's JSON and its
binary tensor extension in, the answer's tensors out (JSON, or a JSON header followed by the
binary tensors). The serving fields travel in `parameters`: {"rate": 0.9} or {"tier": "fast"},
and optionally {"mode": "exact"}; the answer's `parameters` say what served it, and hold in
"warnings" the JSON list of each sequence's warnings (V2 parameters are bool, number or string).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from fastapi import Response

from service.dataplane import Answer, InferenceRequest
from service.decoding import (
    check_count,
    check_frames,
    decode_ask,
    decode_json,
    json_object,
    numeric,
)
from service.errors import (
    BadHeaderLengthError,
    BadIdError,
    BadOutputError,
    BadShapeError,
    UnknownInputError,
    UnsupportedDatatypeError,
)
from service.host import ModelHost
from service.responses import json_response
from service.settings import Settings

INPUT = "skeleton"
DATATYPES = {"FP32": np.float32, "FP64": np.float64}
OUTPUTS = ("logits", "probabilities", "class_index", "label")
HEADER_LENGTH = "inference-header-content-length"


@dataclass(frozen=True)
class V2Request:
    """A decoded inference request: the data plane's part, and what the answer must hold."""

    request: InferenceRequest
    id: str | None
    outputs: list[str]
    binary: dict[str, bool]  # per output: sent as binary data


def split_body(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """The JSON part of a body and the binary tensor data after it (empty without the
    Inference-Header-Content-Length header)."""
    if header_length is None:
        return decode_json(body), b""
    if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
        raise BadHeaderLengthError(
            f"Inference-Header-Content-Length {header_length!r} does not fit a body of "
            f"{len(body)} bytes"
        )
    split = int(header_length)
    return decode_json(body[:split]), body[split:]


def decode_infer(
    body: bytes, header_length: str | None, started: float, settings: Settings, num_joints: int
) -> V2Request:
    """An inference request with one input tensor `skeleton` of shape [batch, frames,
    joints, 3] (or [frames, joints, 3]), FP32 or FP64, as JSON data or binary data."""
    data, binary = split_body(body, header_length)
    data = json_object(data, "the inference request")
    params = json_object(data.get("parameters") or {}, "parameters")
    rid = data.get("id")
    if rid is not None and not isinstance(rid, str):
        raise BadIdError(f"id must be a string, got {rid!r}")
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise BadShapeError(f"inputs must be a list of one tensor named {INPUT!r}")
    tensor = json_object(inputs[0], "inputs[0]")
    if tensor.get("name") != INPUT:
        raise UnknownInputError(
            f"unknown input {tensor.get('name')!r}; this model's input is {INPUT!r}"
        )
    datatype = tensor.get("datatype")
    dtype = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise UnsupportedDatatypeError(
            f"datatype {tensor.get('datatype')!r} is not supported; use FP32 (or FP64)"
        )
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) not in (3, 4)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise BadShapeError(
            f"shape must be [batch, frames, joints, 3] (or [frames, joints, 3]), got {shape!r}"
        )
    if len(shape) == 3:
        shape = [1, *shape]
    b, t, j, c = shape
    check_count(b, settings.max_sequences)
    check_frames(t, settings.max_frames, "every sequence")
    if j != num_joints or c != 3:
        raise BadShapeError(
            f"shape {shape} does not fit this model: expected [batch, frames, {num_joints}, 3]"
        )
    arr = _tensor_data(tensor, binary, dtype, b * t * j * c).reshape(b, t, j, c)
    outputs, out_binary = _requested_outputs(data.get("outputs"), params)
    return V2Request(
        InferenceRequest(list(arr), decode_ask(params), started), rid, outputs, out_binary
    )


def _tensor_data(tensor: dict[str, Any], binary: bytes, dtype: type, size: int) -> np.ndarray:
    tparams = json_object(tensor.get("parameters") or {}, "inputs[0].parameters")
    nbytes = tparams.get("binary_data_size")
    if nbytes is not None:
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise BadShapeError(f"binary_data_size must be a byte count, got {nbytes!r}")
        expected = size * np.dtype(dtype).itemsize
        if nbytes != expected or len(binary) < expected:
            raise BadShapeError(
                f"binary input holds {min(nbytes, len(binary))} bytes; shape and datatype "
                f"need {expected}"
            )
        return np.frombuffer(binary[:expected], dtype=np.dtype(dtype).newbyteorder("<"))
    if "data" not in tensor:
        raise BadShapeError("inputs[0] has no data (and no binary_data_size)")
    arr = numeric(tensor["data"], "inputs[0].data").reshape(-1)
    if arr.size != size:
        raise BadShapeError(f"inputs[0].data holds {arr.size} values; its shape needs {size}")
    return arr


def _requested_outputs(outputs: Any, params: dict[str, Any]) -> tuple[list[str], dict[str, bool]]:
    all_binary = bool(params.get("binary_data_output", False))
    if outputs is None:
        return list(OUTPUTS), dict.fromkeys(OUTPUTS, all_binary)
    if not isinstance(outputs, list):
        raise BadOutputError("outputs must be a list of {name} objects")
    names: list[str] = []
    binary: dict[str, bool] = {}
    for i, out in enumerate(outputs):
        out = json_object(out, f"outputs[{i}]")
        name = out.get("name")
        if name not in OUTPUTS:
            raise BadOutputError(f"unknown output {name!r}; known: {', '.join(OUTPUTS)}")
        oparams = json_object(out.get("parameters") or {}, f"outputs[{i}].parameters")
        names.append(name)
        binary[name] = bool(oparams.get("binary_data", all_binary))
    return names, binary


def encode_infer(answer: Answer, req: V2Request, host: ModelHost) -> Response:
    """The answer's requested outputs, and what served it in `parameters`."""
    logits = answer.logits.astype(np.float32, copy=False)
    index = logits.argmax(axis=1)
    tensors = {
        "logits": (logits, "FP32"),
        "probabilities": (answer.probabilities().astype(np.float32), "FP32"),
        "class_index": (index.astype(np.int64), "INT64"),
        "label": (np.array([host.class_names[i] for i in index], dtype=object), "BYTES"),
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
