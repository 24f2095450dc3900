"""One error type for every rejected request: an HTTP status, a message in words, a reason."""

from __future__ import annotations


class ApiError(Exception):
    """Answered as {"error": message} with `status`; `reason` labels mrmp_errors_total."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


def bad_request(message: str, reason: str = "bad_request") -> ApiError:
    return ApiError(400, message, reason)


def invalid(message: str, reason: str = "invalid_input") -> ApiError:
    return ApiError(422, message, reason)
