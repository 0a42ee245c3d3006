"""The one place errors become responses: a JSON envelope under /api, a friendly page elsewhere."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from grader.errors import GraderError, RateLimited
from grader.web.templating import human_bytes

log = logging.getLogger(__name__)


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _respond(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Response:
    if _wants_json():
        response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    else:
        response = Response(
            render_template("error.html", status=status, code=code, message=message, details=details or {}),
            mimetype="text/html",
        )
    response.status_code = status
    return response


def _challenge(response: Response) -> Response:
    """RFC 6750: an API 401 says how to authenticate, and whether the token sent was the fault."""
    if response.status_code != 401 or not _wants_json():
        return response
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    challenge = 'Bearer realm="grader"'
    if scheme.lower() == "bearer" and credentials.strip():
        challenge += ', error="invalid_token", error_description="unknown or revoked token"'
    elif header:
        challenge += ', error="invalid_request", error_description="send \'Authorization: Bearer <token>\'"'
    response.headers["WWW-Authenticate"] = challenge
    return response


def error_response(exc: GraderError) -> Response:
    """The response to one of our errors; for a blueprint's own handler that words an error its way."""
    response = _challenge(_respond(exc.http_status, exc.code, exc.message, exc.details))
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    elif "retry_after" in exc.details:
        response.headers["Retry-After"] = str(exc.details["retry_after"])
    return response


def register(app: Flask) -> None:
    app.register_error_handler(GraderError, error_response)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Response:
        # The request's own limit: the portfolio upload routes set a larger one than the app's.
        limit = request.max_content_length
        return _respond(
            413,
            "payload_too_large",
            f"the request is larger than the limit of {human_bytes(limit)}"
            if limit
            else "the request is too large",
            {"field": "body", "limit_bytes": limit},
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        return _challenge(_respond(status, code, exc.description or exc.name or "error"))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(500, "internal_error", "something went wrong on our side; it has been logged")
