"""Decoding shared by both protocols: the body within its limit, JSON, the serving fields, and
the bounds on sequences and frames; each refusal raised as its own error type.

Bodies are read as bytes, decoded with orjson and checked here by hand: FastAPI's model parsing
costs several times the network itself on these bodies (nested lists of floats). The pydantic
models in `service.schemas` describe the same bodies for the OpenAPI document. The skeleton
coordinates of a well-formed body skip Python's lists altogether (`service.json_arrays`); any
other body takes the checked path here, whose messages name the fault.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from starlette.requests import ClientDisconnect, Request

from service.errors import (
    BadDegradeError,
    BadEncodingError,
    BadModeError,
    BadNeedError,
    BadRateError,
    BadShapeError,
    BadTierError,
    BodyTimeoutError,
    BodyTooLargeError,
    ClientClosedError,
    EmptyInputError,
    MalformedJsonError,
    TooLongError,
    TooManyError,
    UnknownFieldError,
    UnsupportedEncodingError,
    shown,
)
from service.policy import NEEDS, Ask, Need

# The fields that choose the network, in a v1 body and in V2 parameters alike.
ASK_FIELDS = ("rate", "tier", "mode", "allow_degrade", *NEEDS)


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body, decoded from its Content-Encoding (gzip, deflate or identity, or several of
    them applied in turn; another is a 415), refused (413) as soon as its wire or decoded size
    passes `limit` bytes, and (408) when it has not arrived whole within `timeout_s` seconds; a
    client gone before sending it whole is a ClientClosedError (499)."""
    # Several header lines are one list (RFC 9110, 5.3).
    inflaters = _inflaters(", ".join(request.headers.getlist("content-encoding")) or None)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLargeError(f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        of = f" of {declared}" if declared is not None else ""
        raise BodyTimeoutError(
            f"request body did not arrive within {timeout_s:g} s (MRMP_BODY_TIMEOUT_S): "
            f"{size}{of} bytes received"
        ) from None
    except ClientDisconnect:
        raise ClientClosedError(
            f"client closed the connection after {size} bytes of the body"
        ) from None
    body = b"".join(chunks)
    for inflater in reversed(inflaters):  # the last coding applied is undone first
        body = inflater.decode(body, limit)
    return body


@dataclass(frozen=True)
class _Inflater:
    """One Content-Encoding's decoder: zlib's, with its window bits."""

    name: str
    wbits: int

    def decode(self, body: bytes, limit: int) -> bytes:
        """The decoded body, inflated in steps so that a bomb is refused (413) at `limit` bytes
        of output, never inflated whole; gzip data may hold up to MAX_GZIP_MEMBERS members,
        decoded one after the other (RFC 1952, 2.2), as gzip itself does. The input is fed
        in chunks of INPUT_CHUNK bytes, so that what zlib copies of it per step is bounded."""
        view = memoryview(body)
        parts: list[bytes] = []
        size = at = members = 0
        while True:
            members += 1
            if members > MAX_GZIP_MEMBERS:
                raise BadEncodingError(
                    f"request body holds more than {MAX_GZIP_MEMBERS} gzip members "
                    f"(Content-Encoding)"
                )
            wbits = self.wbits
            if self.name == "deflate" and not _zlib_header(view[at : at + 2]):
                wbits = -zlib.MAX_WBITS  # raw deflate, as some clients send it, not zlib-wrapped
            inflater = zlib.decompressobj(wbits)
            try:
                while not inflater.eof and at < len(view):
                    pending: bytes | memoryview = view[at : at + INPUT_CHUNK]
                    at += len(pending)
                    while pending and not inflater.eof:
                        part = inflater.decompress(pending, limit - size + 1)
                        size += len(part)
                        if size > limit:
                            raise BodyTooLargeError(
                                f"request body decompressed ({self.name}) exceeds the limit "
                                f"of {limit} bytes"
                            )
                        parts.append(part)
                        pending = inflater.unconsumed_tail
            except zlib.error as e:
                raise BadEncodingError(
                    f"request body is not valid {self.name} data (Content-Encoding): {e}"
                ) from None
            if not inflater.eof:
                raise BadEncodingError(
                    f"request body is truncated {self.name} data (Content-Encoding): the "
                    f"compressed stream ends early"
                )
            at -= len(inflater.unused_data)  # what the chunk held past this member's end
            if self.name != "gzip" or view[at : at + 2] != _GZIP_MAGIC:
                break
        if at < len(view):
            raise BadEncodingError(
                f"request body has {len(view) - at} bytes after the end of its {self.name} "
                f"data (Content-Encoding)"
            )
        return b"".join(parts)


# The first bytes of a gzip member (RFC 1952, 2.3.1).
_GZIP_MAGIC = b"\x1f\x8b"
# The most gzip members one body may hold: each costs a decoder.
MAX_GZIP_MEMBERS = 64
# The input zlib is given per step.
INPUT_CHUNK = 64 * 1024


def _zlib_header(body: bytes | memoryview) -> bool:
    """Whether a body starts with a zlib header (RFC 1950: method 8, check bits)."""
    return len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0


_ENCODINGS = {
    "gzip": _Inflater("gzip", 16 + zlib.MAX_WBITS),
    "x-gzip": _Inflater("gzip", 16 + zlib.MAX_WBITS),
    "deflate": _Inflater("deflate", zlib.MAX_WBITS),
}


# The most codings one body may list (gzip over deflate is two).
MAX_CODINGS = 4


def _inflaters(header: str | None) -> list[_Inflater]:
    """The decoders of a Content-Encoding header, in the order the codings were applied (RFC
    9110, 8.4; none: identity); 415 for a coding other than gzip and deflate."""
    if header is None:
        return []
    listed = (c.strip().lower() for c in header.split(","))
    codings = [c for c in listed if c not in ("", "identity")]  # empty list elements are allowed
    if len(codings) > MAX_CODINGS:  # each pass may inflate up to the limit: bound the work
        raise UnsupportedEncodingError(
            f"Content-Encoding {shown(header.strip(), 80)} lists {len(codings)} codings; at most "
            f"{MAX_CODINGS} are undone"
        )
    unknown = [c for c in codings if c not in _ENCODINGS]
    if unknown:
        raise UnsupportedEncodingError(
            f"Content-Encoding {shown(header.strip(), 80)} is not supported: "
            f"{shown(unknown)} is none of gzip, deflate or identity"
        )
    return [_ENCODINGS[c] for c in codings]


def decode_json(body: bytes) -> Any:
    if not body:
        raise MalformedJsonError("request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        # orjson refuses NaN, Infinity and numbers beyond a float; the standard parser reads
        # them so that the checks downstream name the bad value instead of calling the JSON
        # malformed. It also reads a lone surrogate (an escape of half a UTF-16 pair), which
        # is no character and cannot be answered back: that stays orjson's refusal.
        try:
            data = json.loads(body, parse_int=_integer)
        except (ValueError, UnicodeDecodeError, RecursionError):
            data = None
        if data is None or (b"\\u" in body and _has_lone_surrogate(data)):
            raise MalformedJsonError(f"malformed JSON: {e}") from None
        return data


class _LongInteger(int):
    """An integer written with more digits than Python converts (`sys.get_int_max_str_digits`,
    a guard against quadratic conversion): far beyond any float, which is all that the checks
    downstream need of it, and shown as written."""

    text: str

    def __new__(cls, text: str) -> _LongInteger:
        number = super().__new__(cls, -(10**400) if text.startswith("-") else 10**400)
        number.text = text
        return number

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def _integer(text: str) -> int:
    limit = sys.get_int_max_str_digits()
    return _LongInteger(text) if limit and len(text) > limit else int(text)


def _has_lone_surrogate(data: Any) -> bool:
    """Whether a string anywhere in decoded JSON (a key or a value) holds a lone surrogate."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and not node.isascii():
            try:
                node.encode()
            except UnicodeEncodeError:
                return True
    return False


def json_object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadShapeError(f"{what} must be a JSON object, got {shown(data)}")
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
            raise BadNeedError(f"{name} must be a number, got {shown(value)}")
        number = _finite(value)
        if number is None or number < 0:
            raise BadNeedError(f"{name} must be a finite number >= 0, got {shown(value)}")
        if need is not None:
            raise BadNeedError("give max_latency_ms or min_accuracy, not both")
        need = Need(name, number)
    rate = fields.get("rate")
    auto = rate == "auto"
    asked = None if auto else _rate(rate)
    tier, mode = fields.get("tier"), fields.get("mode")
    if tier is not None and not isinstance(tier, str):
        raise BadTierError(f"tier must be a string, got {shown(tier)}")
    if mode is not None and not isinstance(mode, str):
        raise BadModeError(f"mode must be a string, got {shown(mode)}")
    allow_degrade = fields.get("allow_degrade")
    if allow_degrade is not None and not isinstance(allow_degrade, bool):
        raise BadDegradeError(f"allow_degrade must be true or false, got {shown(allow_degrade)}")
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
        raise BadRateError(f'rate must be a number or "auto", got {shown(value)}')
    number = _finite(value)
    if number is None:
        raise BadRateError(f"rate must be a finite number, got {shown(value)}")
    return number


def _finite(value: int | float) -> float | None:
    """The value as a float, or None when it is not finite (or too large for a float)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


# The levels of a sequence's nested lists, outermost first.
FRAME_LEVELS = ("frame", "joint", "axis")


def numeric(value: Any, where: str, levels: Sequence[str] = FRAME_LEVELS) -> np.ndarray:
    """Nested lists of numbers as one regular array with one dimension per level (an array
    `decode_json_arrays` decoded with as many dimensions is returned as it is); a refusal
    names `where`, the position of the first fault (e.g. frame 3, joint 7, axis z) and the
    rule it breaks."""
    if isinstance(value, np.ndarray) and value.ndim == len(levels):
        return value
    # Lists come only from bodies the array decoder declined (json_arrays): each number is
    # checked before numpy converts, which would read true and false as 1 and 0.
    fault = _first_fault(value, where, levels)
    if fault is not None:
        raise BadShapeError(fault)
    try:
        arr = np.array(value, dtype=np.float64)  # integers beyond int64 within a float's range
    except (ValueError, OverflowError, RecursionError):
        arr = None
    if arr is None or arr.ndim != len(levels):
        raise BadShapeError(f"{where} is not a regular array of numbers")
    return arr


def _plural(level: str) -> str:
    return "axes" if level == "axis" else f"{level}s"


def position(where: str, levels: Sequence[str], index: Sequence[int]) -> str:
    """`where` and an index into its nested lists in words: 'sequence 0, frame 3, joint 7,
    axis z'."""
    words = [where]
    for level, i in zip(levels, index, strict=False):
        words.append(f"axis {'xyz'[i]}" if level == "axis" and i < 3 else f"{level} {i}")
    return ", ".join(words)


def _first_fault(value: Any, where: str, levels: Sequence[str]) -> str | None:
    """Why nested lists are not a regular array of numbers with one dimension per level,
    at the first position where they are not (walked in order, a list of plain numbers checked
    at once); None when they are."""
    lengths: list[int | None] = [None] * len(levels)
    form = f"{where} must be {' x '.join(_plural(level) for level in levels)}"
    stack: list[tuple[Any, tuple[int, ...]]] = [(value, ())]
    while stack:
        node, index = stack.pop()
        depth = len(index)
        # The position and the node in words are made only for a fault.
        if depth == len(levels):
            if isinstance(node, list):
                extra = 0
                while isinstance(node, list) and node:
                    node, extra = node[0], extra + 1
                return (
                    f"{position(where, levels, index)}: nested too deep: a list {extra} "
                    f"level(s) deep where a number belongs ({form}, {len(levels)} levels)"
                )
            if isinstance(node, bool) or not isinstance(node, int | float):
                return (
                    f"{position(where, levels, index)}: {shown(node)} is not a number "
                    f"({where} must hold only numbers)"
                )
            if isinstance(node, int) and abs(node) > sys.float_info.max:
                return (
                    f"{position(where, levels, index)}: {shown(node)} is too large for a coordinate"
                )
            continue
        if not isinstance(node, list):
            return (
                f"{position(where, levels, index)}: nested too shallow: {shown(node)} where a "
                f"list of {_plural(levels[depth])} belongs ({form}, {len(levels)} levels)"
            )
        if not node:
            return (
                f"{position(where, levels, index)}: an empty list where "
                f"{_plural(levels[depth])} belong ({form})"
            )
        first = lengths[depth]
        if first is None:
            lengths[depth] = len(node)
        elif len(node) != first:
            return (
                f"{position(where, levels, index)}: nested lists have different lengths: "
                f"{len(node)} {_plural(levels[depth])} here, {first} in the first"
            )
        if depth == len(levels) - 1 and all(map(_plain_number, node)):
            continue  # a list of numbers as they should be: nothing to walk into
        stack.extend((child, (*index, i)) for i, child in reversed(list(enumerate(node))))
    return None


def _plain_number(value: Any) -> bool:
    """A float, or an int (not a bool) within a float's range: what a coordinate may be."""
    kind = type(value)
    return kind is float or (kind is int and abs(value) <= sys.float_info.max)


def check_count(n: int, limit: int) -> None:
    if n == 0:
        raise EmptyInputError("no sequences given")
    if n > limit:
        raise TooManyError(f"{shown(n)} sequences in one request; the limit is {limit}")


def check_frames(n: int, limit: int, where: str) -> None:
    if n == 0:
        raise EmptyInputError(f"{where} has no frames")
    if n > limit:
        raise TooLongError(f"{where} has {shown(n)} frames; the limit is {limit}")
