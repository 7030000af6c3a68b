"""The API's error shape, `{"error": {"code": ..., "message": ...}}`, and the handlers that produce it.

Every failure a client can cause is an `ApiError` with a 4xx status and a stable `code`; the
catch-all handler turns anything else into a JSON 500 and keeps the traceback in the log only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from hindsight.core.suggest import closest
from hindsight.serving import jsonio, metrics

log = logging.getLogger(__name__)

#: Stable codes for the HTTP errors Werkzeug raises before a handler runs.
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An error the client can fix, answered as JSON with `status` and a machine-readable `code`."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        #: Response headers some statuses call for (RFC 7694: a 415 for a content coding names the
        #: codings accepted in Accept-Encoding).
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def suggest(name: str, candidates: Iterable[str]) -> list[str]:
    """Names close to `name`, best first, for "did you mean" hints.

    >>> suggest("fraud_detectoin", ["fraud_detection", "churn"])
    ['fraud_detection']
    >>> suggest("fraud", ["fraud_detection", "churn"])
    ['fraud_detection']
    """
    return closest(name, candidates)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A sentence suggesting close names, or listing what exists when nothing is close."""
    options = sorted(candidates)
    close = suggest(name, options)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    if not options:
        return "none are defined"
    shown = ", ".join(repr(o) for o in options[:10])
    return f"known: {shown}" + (", ..." if len(options) > 10 else "")


def unknown(kind: str, name: str, candidates: Iterable[str], code: str, status: int = 404) -> ApiError:
    """The error for a name that is not in the registry, with close names suggested."""
    options = list(candidates)
    return ApiError(
        status,
        code,
        f"unknown {kind} {name!r}: {did_you_mean(name, options)}",
        {"suggestions": suggest(name, options)},
    )


def body_too_large(limit: int) -> ApiError:
    """The 413 for a request body over `limit` bytes, sized or chunked."""
    return ApiError(413, "payload_too_large", f"request body too large: the limit is {limit} bytes")


def error_response(error: ApiError) -> Response:
    metrics.count_error(error.code)
    response = jsonio.response(error.body(), status=error.status)
    response.headers.update(error.headers)
    return response


def register_error_handlers(app: Flask) -> None:
    """Answer every error as JSON: client errors with their code, anything else as a bare 500."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_CODES.get(status, f"http_{status}")
        message = error.description or error.name
        if status == 413:
            message = body_too_large(app.config["MAX_CONTENT_LENGTH"]).message
        allowed = getattr(error, "valid_methods", None)
        if status == 405 and allowed:
            message = f"method not allowed here; allowed: {', '.join(allowed)}"
        response = error_response(ApiError(status, code, message))
        # Werkzeug's own headers (405's Allow, ...), minus its HTML content type.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        # The traceback goes to the log, never to the client (it can leak paths and internals).
        log.exception("unhandled error while serving a request")
        return error_response(ApiError(500, "internal_error", "internal server error; see the server log"))
