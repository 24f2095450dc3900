"""Every rejected request as its own type: the HTTP status and the `reason` label of
mrmp_errors_total belong to the class, the message (in words, for the client) to the instance.

Errors are raised where their cause is known; the app's one handler answers
{"error": message} with the class's status and counts the class's reason.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

# An answer sent before the body was read whole: the rest of the body would be read as the
# next request, so the connection closes.
_CLOSE = MappingProxyType({"Connection": "close"})


def shown(value: Any, width: int = 40) -> str:
    """A decoded JSON value as a body spells it (null, true, "text", [1, 2], NaN), cut to
    `width` characters: how a refusal quotes what was sent. Written without recursion and
    only as far as the width, so any nesting and any size cost the same."""
    out: list[str] = []
    size = 0
    stack: list[Iterator[Any]] = [iter([value])]
    while stack and size <= width:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list | tuple):
            stack.append(_members("[", item, "]", width))
        elif isinstance(item, dict):
            stack.append(_members("{", item.items(), "}", width))
        else:
            text = item if isinstance(item, _Text) else _scalar(item, width)
            out.append(text)
            size += len(text)
    text = "".join(out)
    return text if len(text) <= width else text[: width - 3] + "..."


class _Text(str):
    """Punctuation of a list or object being shown, written as it is."""


_END = object()


def _members(opening: str, members: Any, closing: str, width: int) -> Iterator[Any]:
    yield _Text(opening)
    for i, member in enumerate(members):
        if i:
            yield _Text(", ")
        if isinstance(member, tuple) and opening == "{":
            key, member = member
            yield _Text(_scalar(key, width) + ": ")
        yield member
    yield _Text(closing)


def _scalar(value: Any, width: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        quoted = json.dumps(value[:width], ensure_ascii=False)
        return quoted if len(value) <= width else quoted[:-1]
    return str(value)[: width + 1]


class ApiError(Exception):
    """A request the service refuses: `status` and `reason` per class, `message` per case."""

    status: int = 422
    reason: str = "invalid_input"
    headers: Mapping[str, str] = MappingProxyType({})  # sent with the answer

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- 400: the body cannot be read ---------------------------------------------------------------


class MalformedJsonError(ApiError):
    status, reason = 400, "malformed_json"


class BadHeaderLengthError(ApiError):
    """Inference-Header-Content-Length that does not split the body (counted as malformed)."""

    status, reason = 400, "malformed_json"


class MissingHeaderLengthError(ApiError):
    """A binary (application/octet-stream) V2 body without Inference-Header-Content-Length."""

    status, reason = 400, "malformed_json"


class BadEncodingError(ApiError):
    """A gzip or deflate body that does not decompress (corrupt, truncated, trailing data)."""

    status, reason = 400, "bad_encoding"


# -- 408, 499: the body did not arrive ----------------------------------------------------------


class BodyTimeoutError(ApiError):
    """The body did not arrive completely within body_timeout_s."""

    status, reason = 408, "body_timeout"
    headers = _CLOSE


class ClientClosedError(ApiError):
    """The client went away before its body was sent; 499 as nginx counts it (never sent)."""

    status, reason = 499, "client_closed"


# -- 404, 405, 413, 415 -------------------------------------------------------------------------


class UnknownModelError(ApiError):
    status, reason = 404, "no_model"


class UnknownEndpointError(ApiError):
    status, reason = 404, "not_found"


class MethodNotAllowedError(ApiError):
    status, reason = 405, "method_not_allowed"


class BodyTooLargeError(ApiError):
    """Over max_body_bytes, counted after decompression for a compressed body."""

    status, reason = 413, "too_large"
    headers = _CLOSE


class UnsupportedEncodingError(ApiError):
    """A Content-Encoding other than gzip, deflate or identity."""

    status, reason = 415, "unsupported_encoding"


# -- 422: the body's structure ------------------------------------------------------------------


class InvalidRequestError(ApiError):
    """A body FastAPI's own validation refused (routes that declare a pydantic body)."""

    reason = "invalid_input"


class BadShapeError(ApiError):
    """Not the nesting, shape or byte count a sequence or tensor must have."""

    reason = "bad_shape"


class NonFiniteError(ApiError):
    reason = "non_finite"


class NoSkeletonError(ApiError):
    """A sequence in which no joint is observed: every joint of every frame at (0, 0, 0)."""

    reason = "no_skeleton"


class NoExtentError(ApiError):
    """A sequence whose observed joints are all at one point: no skeleton to normalize."""

    reason = "no_extent"


class UnderflowError(ApiError):
    """Coordinates whose spread is too small to normalize (its square underflows)."""

    reason = "underflow"


class TooShortError(ApiError):
    """Fewer frames than min_frames, when the settings refuse short sequences."""

    reason = "too_short"


class UnknownFieldError(ApiError):
    reason = "unknown_field"


class EmptyInputError(ApiError):
    """No sequences, or a sequence without frames."""

    reason = "empty"


class TooLongError(ApiError):
    reason = "too_long"


class TooManyError(ApiError):
    reason = "too_many"


class BadTopKError(ApiError):
    reason = "bad_top_k"


class BadIdError(ApiError):
    reason = "bad_id"


class UnknownInputError(ApiError):
    reason = "bad_input_name"


class UnsupportedDatatypeError(ApiError):
    reason = "bad_datatype"


class UnknownParameterError(ApiError):
    """A V2 request parameter that is neither a serving field nor one the protocol reserves."""

    reason = "unknown_field"


class BadParameterError(ApiError):
    """V2 parameters that are not an object, or a reserved parameter of the wrong type."""

    reason = "bad_parameter"


class BadOutputError(ApiError):
    """Outputs that are not a list of the model's output names."""

    reason = "bad_output"


# -- 422: the serving choice --------------------------------------------------------------------


class BadRateError(ApiError):
    """A rate that is not a finite number (nor "auto")."""

    reason = "bad_rate"


class RateOutOfRangeError(ApiError):
    reason = "bad_rate"


class ConflictingChoicesError(ApiError):
    """More than one of rate, tier and a need."""

    reason = "bad_rate"


class BadTierError(ApiError):
    """A tier that is not a string."""

    reason = "bad_tier"


class UnknownTierError(ApiError):
    reason = "bad_tier"


class BadModeError(ApiError):
    """A mode that is not a string."""

    reason = "bad_mode"


class UnknownModeError(ApiError):
    reason = "bad_mode"


class ModeConflictsWithNeedError(ApiError):
    """A need chooses among prior-mode rates; another mode cannot be asked with it."""

    reason = "bad_mode"


class BadNeedError(ApiError):
    """max_latency_ms or min_accuracy that is not a number >= 0, or both given."""

    reason = "bad_need"


class UnmetNeedError(ApiError):
    """No rate of the table meets the need."""

    reason = "unmet_need"


class BadDegradeError(ApiError):
    reason = "bad_degrade"


# -- other statuses -----------------------------------------------------------------------------


class HttpError(ApiError):
    """Any other HTTP error the framework raises; its status is the framework's."""

    reason = "http"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class NotReadyError(ApiError):
    """Inference asked before the tiers are prepared and timed: answered with Retry-After."""

    status, reason = 503, "not_ready"
    headers = MappingProxyType({"Retry-After": "1"})


class InternalError(ApiError):
    """A bug: answered 500 and logged with its traceback."""

    status, reason = 500, "internal"
