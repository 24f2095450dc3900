"""JSON answers, and the error bodies every route documents."""

from __future__ import annotations

import orjson
from fastapi import Response

from service.schemas import ErrorBody

# The refusals a route may answer, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    s: {"model": ErrorBody} for s in (400, 413, 422, 503)
}


def json_response(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")
