"""JSON API at /api/v1 for learners' scripts and integrations; authenticated by Bearer token."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from grader.errors import InvalidInput, PayloadTooLarge
from grader.kinds.base import SubmissionRequest
from grader.models import User
from grader.services import access, audit, deadlines, publication, queries, reviews, submissions
from grader.services.audit import user_actor
from grader.services.catalog import current_version, parse_definition
from grader.web import api_portfolio
from grader.web.auth import api_user, csrf
from grader.web.context import db, web
from grader.web.templating import human_bytes

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
    definition = parse_definition(version)
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
    """A quiz (JSON answers), a repository by git URL (JSON) or by archive (multipart form data), or a
    whole portfolio (multipart form data: `grader.web.api_portfolio`)."""
    user = api_user()
    multipart = request.mimetype == "multipart/form-data"
    if multipart and api_portfolio.is_portfolio_hand_in():
        return api_portfolio.hand_in_in_one_go(user)
    request_ = _archive_request() if multipart else _json_request()
    accepted = submissions.submit(db(), web().queue, web().settings, user, request_)
    status_url = url_for("api.get_submission", submission_id=accepted.submission_id)
    body: dict[str, Any] = {
        "id": accepted.submission_id,
        "status_url": status_url,
        "receipt": {"sha256": accepted.receipt_sha256, "commit": accepted.commit},
        "replayed": not accepted.created,
    }
    headers = {"Location": status_url}
    if accepted.graded is not None:
        # GRADER_QUIZ_GRADING=inline: graded in this request; the result comes with the answer.
        body["submission"] = queries.submission_view(
            db(), user, accepted.submission_id, just_graded=accepted.graded
        )
        return jsonify(body), 201, headers
    wait = preferred_wait(request.headers.get("Prefer"))
    if wait is not None:
        # `Prefer: wait=S` (RFC 7240): the status URL's long poll within this request, one round trip.
        headers["Preference-Applied"] = f"wait={wait:g}"
        queries.await_result(db(), user, accepted.submission_id, wait, signal=web().signal)
        view = queries.submission_view(db(), user, accepted.submission_id)
        if view["result"] is not None:
            return jsonify({**body, "submission": view}), 201, headers
    return jsonify(body), 202, headers


def preferred_wait(prefer: str | None) -> float | None:
    """The seconds a `Prefer` header's `wait` preference asks for, capped at the status URL's 30; None
    when it asks for none. As RFC 7240 has it, a preference that cannot be honoured (a malformed
    value) is ignored, not refused."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.split(";")[0].partition("=")
        if name.strip().lower() != "wait":
            continue
        try:
            seconds = float(value.strip().strip('"'))
        except ValueError:
            return None
        if not math.isfinite(seconds) or seconds <= 0:
            return None
        return min(seconds, queries.MAX_WAIT_SECONDS)
    return None


def _json_request() -> SubmissionRequest:
    data = _json_body()
    unknown = set(data) - {"assessment", "attempt", "answers", "git_url", "ref"}
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(f"unknown field {field!r}", details={"field": field})
    slug = _string_field(data, "assessment")
    assert slug is not None
    return SubmissionRequest(
        assessment=slug,
        answers=data.get("answers"),
        attempt_id=_string_field(data, "attempt", required=False),
        git_url=data.get("git_url"),
        ref=data.get("ref"),
        idempotency_key=request.headers.get("Idempotency-Key"),
    )


def _archive_request() -> SubmissionRequest:
    unknown = (set(request.form) | set(request.files)) - {"assessment", "archive"}
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(f"unknown field {field!r}", details={"field": field})
    slug = request.form.get("assessment", "")
    if not slug or len(slug) > 200:
        raise InvalidInput("'assessment' must be a non-empty string", details={"field": "assessment"})
    upload = request.files.get("archive")
    if upload is None or not upload.filename:
        raise InvalidInput("attach the archive as the 'archive' file field", details={"field": "archive"})
    limit = web().settings.max_archive_bytes
    # Read at most one byte past the cap: a larger upload is refused without being held in memory.
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(
            f"the archive is larger than the limit of {human_bytes(limit)}",
            details={"field": "archive", "limit_bytes": limit},
        )
    return SubmissionRequest(
        assessment=slug,
        archive=data,
        archive_name=upload.filename,
        idempotency_key=request.headers.get("Idempotency-Key"),
    )


@bp.post("/submissions/<submission_id>/reviews")
def review_submission(submission_id: str) -> Response:
    """A reviewer's scores for the manual criteria of a submission's rubric."""
    user = api_user()
    data = _json_body()
    comment = data.get("comment", "")
    if not isinstance(comment, str):
        raise InvalidInput("comment must be text", details={"field": "comment"})
    outcome = reviews.record_review(
        db(), user, submission_id, reviews.parse_reviews(data.get("criteria")), comment
    )
    return jsonify(outcome)


@bp.get("/submissions/<submission_id>")
def get_submission(submission_id: str) -> Response:
    """The submission and its result; with `?wait=S`, held open up to S seconds until it is graded."""
    user = api_user()
    wait = queries.parse_wait(request.args.get("wait"))
    if wait:
        queries.await_result(db(), user, submission_id, wait, signal=web().signal)
    return jsonify(queries.submission_view(db(), user, submission_id))


@bp.get("/submissions/<submission_id>/regrade-requests")
def list_regrade_requests(submission_id: str) -> Response:
    """A submission's regrade requests, oldest first, with their status and the reviewer's reply."""
    user = api_user()
    requests = queries.learner_regrade_requests(db(), user, submission_id)
    return jsonify({"regrade_requests": [r.to_dict() for r in requests]})


@bp.post("/submissions/<submission_id>/regrade-requests")
def create_regrade_request(submission_id: str) -> tuple[Response, int, dict[str, str]]:
    """The learner asks for one criterion a reviewer scored to be looked at again:
    `{"criterion": id, "reason": text}`; another reviewer answers."""
    user = api_user()
    data = _json_body()
    unknown = set(data) - {"criterion", "reason"}
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(f"unknown field {field!r}", details={"field": field})
    if not isinstance(data.get("criterion"), str) or not data["criterion"]:
        raise InvalidInput("'criterion' must be the id of a criterion", details={"field": "criterion"})
    if not isinstance(data.get("reason"), str):
        raise InvalidInput("'reason' must be text", details={"field": "reason"})
    created = queries.ask_regrade(db(), user, submission_id, data["criterion"], data["reason"])
    location = url_for("api.list_regrade_requests", submission_id=submission_id)
    return jsonify(created.to_dict()), 201, {"Location": location}


@bp.get("/programs/<slug>/progress")
def program_progress(slug: str) -> Response:
    user = api_user()
    body = queries.learner_progress(db(), user, slug).to_dict()
    credential = body.get("credential")
    if credential is not None:
        # Where anyone can see and verify it (JSON-LD with Accept: application/ld+json).
        identifier = credential.get("credential_id")
        base = web().settings.public_url.rstrip("/")
        credential["url"] = f"{base}/credentials/{identifier}" if identifier else None
    return jsonify(body)


# ---------------------------------------------------------------- staff: audit log, deadlines, publication


def _staff_of_assessment(slug: str) -> User:
    """The caller, if they run a program with this assessment (admins run all): anyone who runs no
    program is refused before the slug is looked up, staff of other programs once it is."""
    user = api_user()
    access.staff_scope(db(), user)
    access.require_staff_of_assessment(db(), user, current_version(db(), slug).assessment_id, slug)
    return user


@bp.get("/audit")
def audit_log() -> Response:
    """Changes to scores, passes, reviews, awards and deadlines, newest first: staff see the events of
    the assessments of the programs they run, admins every event."""
    user = api_user()
    programs = access.staff_scope(db(), user)
    unknown = set(request.args) - {"submission", "learner", "assessment", "limit"}
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(f"unknown parameter {field!r}", details={"field": field})
    raw_limit = request.args.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= audit.MAX_EVENTS:
        raise InvalidInput(
            f"limit must be a whole number from 1 to {audit.MAX_EVENTS}", details={"field": "limit"}
        )
    entries = audit.events(
        db(),
        submission_id=request.args.get("submission"),
        learner_email=request.args.get("learner"),
        assessment_slug=request.args.get("assessment"),
        assessment_ids=access.assessments_of(db(), programs),
        limit=int(raw_limit),
    )
    return jsonify({"events": [entry.to_dict() for entry in entries]})


@bp.post("/assessments/<slug>/extensions")
def grant_extension(slug: str) -> tuple[Response, int]:
    """Give one learner a later due date: `{"learner": email, "due": ISO 8601, "reason": text}`."""
    user = _staff_of_assessment(slug)
    data = _json_body()
    unknown = set(data) - {"learner", "due", "reason"}
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(f"unknown field {field!r}", details={"field": field})
    learner = _string_field(data, "learner")
    due_text = _string_field(data, "due")
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 2000:
        raise InvalidInput("reason must be text of at most 2000 characters", details={"field": "reason"})
    assert learner is not None and due_text is not None
    try:
        due = datetime.fromisoformat(due_text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            "due must be an ISO 8601 date and time with a time zone", details={"field": "due"}
        ) from None
    extension = deadlines.grant_extension(
        db(), actor=user_actor(user), learner_email=learner, assessment_slug=slug, due=due, reason=reason
    )
    return jsonify({"learner": learner, "assessment": slug, "due": extension.due_at.isoformat()}), 201


@bp.post("/assessments/<slug>/publish")
def publish_results(slug: str) -> Response:
    """Open the tests visible `after_published` to learners, from now on."""
    user = _staff_of_assessment(slug)
    published = publication.publish(db(), slug, actor=user_actor(user))
    return jsonify({"assessment": slug, "published_at": published.isoformat()})
