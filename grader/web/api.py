"""JSON API at /api/v1 for learners' scripts and integrations; authenticated by Bearer token."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from grader.errors import InvalidInput
from grader.services import progress, queries, submissions
from grader.services.catalog import current_version
from grader.web.auth import api_user, csrf
from grader.web.context import db, web

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Token-authenticated: no ambient cookie authority, so cross-site request forgery does not apply.
csrf.exempt(bp)


def _json_body() -> dict[str, Any]:
    if not request.is_json:
        raise InvalidInput("send a JSON body with Content-Type: application/json", details={"field": "body"})
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", details={"field": "body"})
    return data


def _string_field(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 200:
        raise InvalidInput(f"'{name}' must be a non-empty string", details={"field": name})
    return value


@bp.get("/me")
def me() -> Response:
    user = api_user()
    return jsonify({"id": user.id, "email": user.email, "name": user.name, "role": user.role})


@bp.get("/assessments/<slug>")
def assessment(slug: str) -> Response:
    api_user()
    version = current_version(db(), slug)
    definition = submissions.parse_definition(version)
    return jsonify(
        {
            "slug": definition.slug,
            "kind": definition.kind,
            "title": definition.title,
            "description": definition.description,
            "version": version.version,
            "attempts": definition.attempts.model_dump(),
        }
    )


@bp.post("/assessments/<slug>/attempts")
def start_attempt(slug: str) -> tuple[Response, int]:
    user = api_user()
    view = submissions.start_quiz_attempt(db(), web().settings, user, slug)
    return jsonify(view), 201


@bp.post("/submissions")
def create_submission() -> tuple[Response, int, dict[str, str]]:
    user = api_user()
    data = _json_body()
    unknown = set(data) - {"assessment", "attempt", "answers"}
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(f"unknown field {field!r}", details={"field": field})
    slug = _string_field(data, "assessment")
    assert slug is not None
    request_ = submissions.SubmissionRequest(
        assessment=slug,
        answers=data.get("answers"),
        attempt_id=_string_field(data, "attempt", required=False),
        idempotency_key=request.headers.get("Idempotency-Key"),
    )
    accepted = submissions.submit(db(), web().queue, web().settings, user, request_)
    status_url = url_for("api.get_submission", submission_id=accepted.submission_id)
    body = {
        "id": accepted.submission_id,
        "status_url": status_url,
        "receipt": {"sha256": accepted.receipt_sha256},
        "replayed": not accepted.created,
    }
    return jsonify(body), 202, {"Location": status_url}


@bp.get("/submissions/<submission_id>")
def get_submission(submission_id: str) -> Response:
    user = api_user()
    return jsonify(queries.submission_view(db(), user, submission_id))


@bp.get("/programs/<slug>/progress")
def program_progress(slug: str) -> Response:
    user = api_user()
    return jsonify(progress.program_progress(db(), user, slug).to_dict())
