"""A request body's JSON with its skeleton coordinates decoded straight into float64 arrays
(pysimdjson's `as_buffer`), never into Python lists of floats: the lean path for a well-formed
body. Any other body is decoded by `service.decoding.decode_json`, with lists, so that its
refusal and its message are the checked path's (`service.decoding.numeric`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import simdjson

from service.decoding import decode_json

# What a regular array of numbers leaves of its JSON text once its numbers and blanks are gone.
_NUMBER_TEXT = b"0123456789+-.eE \t\n\r"


def decode_json_arrays(
    body: bytes, path: tuple[str | int, ...], ndims: tuple[int, ...], each: bool
) -> Any:
    """The body's JSON, as `decode_json` gives it, except that the value at `path` (keys and
    list indices from the top, the last a key) comes as float64 arrays when it is a regular
    array of numbers nested as deep as one of `ndims` (`each`: a list of such arrays, one
    ndarray each; else one ndarray). Their numbers are decoded straight into the arrays by
    simdjson (pysimdjson's `as_buffer`), never into Python floats. Any body where that does not
    hold (a fault, NaN, a key of the path written twice, escapes, a number beyond a float64 or
    an int64) is decoded by `decode_json`, with lists, so that the checks downstream name its
    fault exactly as for any body.

    The shape of each array is proven on the body's text: its key is written once, and the
    text of its value without its numbers and blanks is exactly the brackets and commas of a
    regular array of the shape its first elements give, so no irregular nesting can pass."""
    arrays = _fast_arrays(body, path, ndims, each)
    return decode_json(body) if arrays is None else arrays


def _fast_arrays(
    body: bytes, path: tuple[str | int, ...], ndims: tuple[int, ...], each: bool
) -> Any:
    if b"\\" in body:  # escapes: a quote may not end a string, a key be spelled otherwise
        return None
    try:
        doc = simdjson.Parser().parse(body)
    except (ValueError, RuntimeError):  # malformed, NaN, 1e400, invalid UTF-8
        return None
    value = doc
    for step in path:
        found = (
            step in value and _unique_keys(value)
            if isinstance(step, str) and isinstance(value, simdjson.Object)
            else isinstance(step, int) and isinstance(value, simdjson.Array) and step < len(value)
        )
        if not found:
            return None
        value = value[step]
    if not isinstance(value, simdjson.Array):
        return None
    # The body's text without numbers and blanks: its brackets, commas and colons, its strings
    # (less the characters of numbers) and true, false, null. Without escapes every quote
    # opens or closes a string, and JSON allows no bare word but those three, so the key found
    # once in it is the one written, once, in the body: the value's own key.
    text = body.translate(None, _NUMBER_TEXT)
    key = b'"' + str(path[-1]).encode().translate(None, _NUMBER_TEXT) + b'":'
    at = text.find(key)
    if at < 0 or text.find(key, at + 1) >= 0:
        return None
    parts = list(value) if each else [value]
    expected: list[bytes] = []
    arrays: list[np.ndarray] = []
    for part in parts:
        shape = _leading_shape(part)
        if shape is None or len(shape) not in ndims:
            return None
        try:
            flat = np.frombuffer(part.as_buffer(of_type="d"), dtype=np.float64)
        except (TypeError, ValueError, RuntimeError):  # a non-number, a bigint
            return None
        if flat.size != math.prod(shape):
            return None
        arrays.append(flat.reshape(shape))
        expected.append(_skeleton(shape))
    regular = b"[" + b",".join(expected) + b"]" if each else expected[0]
    if not text.startswith(regular, at + len(key)):
        return None
    return _plain(doc, path, arrays if each else arrays[0])


def _leading_shape(array: Any) -> tuple[int, ...] | None:
    """The lengths of an array's first elements, level by level, down to its first number;
    None at an empty array or a non-number."""
    shape = []
    node = array
    while isinstance(node, simdjson.Array):
        if not len(node):
            return None
        shape.append(len(node))
        node = node[0]
    return tuple(shape) if isinstance(node, int | float) and not isinstance(node, bool) else None


def _skeleton(shape: tuple[int, ...]) -> bytes:
    """The JSON text of a regular array of `shape` without its numbers: its brackets and
    commas."""
    text = b"," * (shape[-1] - 1)
    for n in reversed(shape[:-1]):
        text = b",".join([b"[" + text + b"]"] * n)
    return b"[" + text + b"]"


def _unique_keys(obj: Any) -> bool:
    """Whether no key of a simdjson object is written twice (orjson keeps the last one)."""
    keys = list(obj.keys())
    return len(set(keys)) == len(keys)


def _plain(value: Any, path: tuple[str | int, ...] = (), arrays: Any = None) -> Any:
    """A simdjson value as the Python value orjson gives, with `arrays` at `path` instead;
    the objects on `path` have unique keys."""
    if arrays is not None and not path:
        return arrays
    if path:
        head, rest = path[0], path[1:]
        if isinstance(value, simdjson.Object):
            return {
                k: _plain(value[k], rest, arrays) if k == head else _plain(value[k]) for k in value
            }
        return [_plain(v, rest, arrays) if i == head else _plain(v) for i, v in enumerate(value)]
    if isinstance(value, simdjson.Array):
        return value.as_list()
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    return value
