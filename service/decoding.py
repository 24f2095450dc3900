"""Decoding shared by both protocols: the body within its limit, JSON, the serving fields, and
the bounds on sequences and frames; each refusal raised as its own error type.

Bodies are read as bytes, decoded with orjson and checked here by hand: FastAPI's model parsing
costs several times the network itself on these bodies (nested lists of floats). The pydantic
models in `service.schemas` describe the same bodies for the OpenAPI document.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from starlette.requests import ClientDisconnect, Request

from service.errors import (
    BadDegradeError,
    BadModeError,
    BadNeedError,
    BadRateError,
    BadShapeError,
    BadTierError,
    BodyTooLargeError,
    ClientClosedError,
    EmptyInputError,
    MalformedJsonError,
    TooLongError,
    TooManyError,
    UnknownFieldError,
)
from service.policy import NEEDS, Ask, Need

# The fields that choose the network, in a v1 body and in V2 parameters alike.
ASK_FIELDS = ("rate", "tier", "mode", "allow_degrade", *NEEDS)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientClosedError("client disconnected before the body was sent") from None
    return b"".join(chunks)


def decode_json(body: bytes) -> Any:
    if not body:
        raise MalformedJsonError("request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        # orjson refuses NaN/Infinity; the standard parser reads them so that the skeleton
        # check can name the bad value instead of calling the JSON malformed.
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedJsonError(f"malformed JSON: {e}") from None


def json_object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadShapeError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def reject_unknown(data: Mapping[str, Any], known: set[str], what: str) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise UnknownFieldError(
            f"unknown field(s) in {what}: {', '.join(extra)}; known: {', '.join(sorted(known))}"
        )


def decode_ask(fields: Mapping[str, Any]) -> Ask:
    """The serving fields of a v1 body or of V2 parameters: rate (a number, or "auto": the
    default tier, pruned further under load), tier, mode, allow_degrade, or instead of a rate
    or tier one need, max_latency_ms or min_accuracy."""
    need = None
    for name in NEEDS:
        value = fields.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadNeedError(f"{name} must be a number, got {value!r}")
        number = _finite(value)
        if number is None or number < 0:
            raise BadNeedError(f"{name} must be a finite number >= 0, got {str(value)[:40]}")
        if need is not None:
            raise BadNeedError("give max_latency_ms or min_accuracy, not both")
        need = Need(name, number)
    rate = fields.get("rate")
    auto = rate == "auto"
    asked = None if auto else _rate(rate)
    tier, mode = fields.get("tier"), fields.get("mode")
    if tier is not None and not isinstance(tier, str):
        raise BadTierError(f"tier must be a string, got {tier!r}")
    if mode is not None and not isinstance(mode, str):
        raise BadModeError(f"mode must be a string, got {mode!r}")
    allow_degrade = fields.get("allow_degrade")
    if allow_degrade is not None and not isinstance(allow_degrade, bool):
        raise BadDegradeError(f"allow_degrade must be true or false, got {allow_degrade!r}")
    return Ask(
        rate=asked,
        tier=tier,
        mode=mode,
        need=need,
        degradable=auto or bool(allow_degrade),
    )


def _rate(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRateError(f'rate must be a number or "auto", got {value!r}')
    number = _finite(value)
    if number is None:
        raise BadRateError(f"rate must be a finite number, got {str(value)[:40]}")
    return number


def _finite(value: int | float) -> float | None:
    """The value as a float, or None when it is not finite (or too large for a float)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def numeric(value: Any, where: str) -> np.ndarray:
    """Nested lists of numbers as one regular array."""
    try:
        arr = np.array(value)
    except ValueError:
        raise BadShapeError(
            f"{where} is not a regular array: its nested lists have different lengths"
        ) from None
    if arr.dtype.kind not in "fiu":
        raise BadShapeError(f"{where} must hold only numbers")
    return arr


def check_count(n: int, limit: int) -> None:
    if n == 0:
        raise EmptyInputError("no sequences given")
    if n > limit:
        raise TooManyError(f"{n} sequences in one request; the limit is {limit}")


def check_frames(n: int, limit: int, where: str) -> None:
    if n == 0:
        raise EmptyInputError(f"{where} has no frames")
    if n > limit:
        raise TooLongError(f"{where} has {n} frames; the limit is {limit}")
