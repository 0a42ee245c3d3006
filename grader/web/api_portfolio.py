"""The portfolio API at /api/v1: a learner's draft read, filled artifact by artifact and handed in, or a
whole portfolio handed in with one multipart `POST /submissions`.

Routes (Bearer token; the learner must be enrolled, as for any hand-in):

    GET    /assessments/<slug>/portfolio                   the slots and the learner's open draft
    POST   /assessments/<slug>/portfolio/files             multipart `slot` + `file`: 201 with the item
    DELETE /assessments/<slug>/portfolio/items/<id>        204
    PUT    /assessments/<slug>/portfolio/links/<slot>      {"url"}: 200 with the item, 204 when emptied
    PUT    /assessments/<slug>/portfolio/statements/<slot> {"text"}: the same
    POST   /assessments/<slug>/portfolio/submit            {"draft"?}: 202 and the receipt; again: 200

Each file is read through its slot's `SizeGuard`; a `/portfolio/files` request may carry the portfolio's
largest file and the form around it (`grader.web.portfolio.request_limit`, set before the body is read,
for a learner who may hand it in), every other request `GRADER_MAX_REQUEST_BYTES`, a whole portfolio in
one `POST /submissions` included. Errors are the API's one envelope (`grader.web.errors`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from grader.catalog.schema import Artifact, LinkSpec, PortfolioAssessment, Statement
from grader.errors import Conflict, GraderError, InvalidInput, PayloadTooLarge
from grader.intake.artifacts import human_size
from grader.kinds.base import SubmissionRequest
from grader.models import User
from grader.services import portfolios, queries, submissions
from grader.services.catalog import current_version, parse_definition
from grader.services.submissions import Accepted
from grader.storage import file_store
from grader.web import portfolio as pages
from grader.web.auth import api_user, csrf
from grader.web.context import db, web
from grader.web.errors import error_response

bp = Blueprint("api_portfolio", __name__, url_prefix="/api/v1")
# Token-authenticated: no ambient cookie authority, so cross-site request forgery does not apply.
csrf.exempt(bp)

ONE_GO_PREFIXES = ("files.", "links.", "statements.")


def _learner(slug: str) -> tuple[User, PortfolioAssessment]:
    user = api_user()
    return user, pages.portfolio_for(user, slug)


def _json_object(*allowed: str) -> dict[str, Any]:
    if not request.is_json:
        raise InvalidInput("send a JSON body with Content-Type: application/json", details={"field": "body"})
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", details={"field": "body"})
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", details={"field": unknown[0]})
    return data


def _text_field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise InvalidInput(f"'{name}' must be text (empty takes it out)", details={"field": name})
    return value


@bp.url_value_preprocessor
def _room_for_the_upload(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # Before the view reads the body: the file route may carry the portfolio's largest file.
    if endpoint != "api_portfolio.add_file":
        return
    try:
        user = api_user()
    except GraderError:
        return  # the view refuses the request in its own words, under the default limit
    pages.widen_request_limit(user, str((values or {}).get("slug", "")))


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> Response:
    """A file upload announced as larger than any slot of the portfolio takes: refused unread, naming the
    slot that takes the largest files."""
    limit = request.max_content_length or 0
    details: dict[str, Any] = {"field": "body", "limit_bytes": limit}
    message = f"the request is larger than the limit of {human_size(limit)}"
    try:
        portfolio = pages.portfolio_for(api_user(), str((request.view_args or {}).get("slug", "")))
    except GraderError:
        portfolio = None
    largest = max(portfolio.artifacts, key=lambda slot: slot.max_bytes, default=None) if portfolio else None
    if request.endpoint == "api_portfolio.add_file" and portfolio is not None and largest is not None:
        message += (
            f": no part of {portfolio.title} takes a file that large; the largest, {largest.title}, "
            f"takes files of up to {human_size(largest.max_bytes)}"
        )
        details["slot"] = largest.id
    return error_response(PayloadTooLarge(message, details=details))


def _slot_json(slot: Any, portfolio: PortfolioAssessment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": slot.id,
        "kind": pages.slot_kind(slot),
        "title": slot.title,
        "description": slot.description,
        "required": slot.required,
        "criteria": list(slot.criteria),
    }
    if isinstance(slot, Artifact):
        out |= {
            "types": [t.value for t in slot.types],
            "max_bytes": slot.max_bytes,
            "accepted_bytes": pages.file_limit(slot, portfolio),
            "max_files": slot.max_files,
        }
    elif isinstance(slot, LinkSpec):
        out |= {"schemes": list(slot.schemes), "hosts": list(slot.hosts)}
    elif isinstance(slot, Statement):
        out |= {"prompt": slot.prompt, "min_words": slot.min_words, "max_words": slot.max_words}
    return out


@bp.get("/assessments/<slug>/portfolio")
def get_portfolio(slug: str) -> Response:
    user, portfolio = _learner(slug)
    view = portfolios.draft_view(db(), user, slug)
    return jsonify(
        {
            "assessment": slug,
            "title": portfolio.title,
            "request_limit_bytes": pages.request_limit(portfolio),
            "slots": [_slot_json(slot, portfolio) for slot in portfolio.slots],
            "draft": {
                "id": view.draft_id,
                "updated_at": view.updated_at.isoformat() if view.updated_at else None,
                "missing": [slot_view.slot.id for slot_view in view.missing],
                "items": [pages.item_json(item) for slot_view in view.slots for item in slot_view.items],
            },
        }
    )


@bp.post("/assessments/<slug>/portfolio/files")
def add_file(slug: str) -> tuple[Response, int]:
    """One file into its slot: multipart form data with `slot` and one `file` part."""
    user, portfolio = _learner(slug)
    if request.mimetype != "multipart/form-data":
        raise InvalidInput(
            "send multipart/form-data with the slot's id as 'slot' and the file as 'file'",
            details={"field": "body"},
        )
    unknown = sorted((set(request.form) | set(request.files)) - {"slot", "file"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", details={"field": unknown[0]})
    slot_id = request.form.get("slot", "")
    if not slot_id:
        raise InvalidInput("name the slot the file is for as 'slot'", details={"field": "slot"})
    slot = pages.file_slot(portfolio, slot_id)
    uploads = pages.chosen_files(request.files.getlist("file"))
    if len(uploads) != 1:
        raise InvalidInput(
            "attach exactly one file as 'file' (one request per file)"
            if uploads
            else "attach the file as the 'file' file part",
            details={"field": "file"},
        )
    data = pages.read_file(uploads[0], slot)
    item = portfolios.add_file(
        db(), file_store(web().settings), user, slug, slot.id, uploads[0].filename or "", data
    )
    return jsonify(pages.item_json(item)), 201


@bp.delete("/assessments/<slug>/portfolio/items/<int:item_id>")
def remove_item(slug: str, item_id: int) -> tuple[str, int]:
    user, _ = _learner(slug)
    portfolios.remove_item(db(), user, slug, item_id)
    return "", 204


@bp.put("/assessments/<slug>/portfolio/links/<slot_id>")
def put_link(slug: str, slot_id: str) -> Response | tuple[str, int]:
    """`{"url": "https://…"}`; the address is kept as text and never fetched. Empty takes it out."""
    user, _ = _learner(slug)
    item = portfolios.set_link(db(), user, slug, slot_id, _text_field(_json_object("url"), "url"))
    return jsonify(pages.item_json(item)) if item is not None else ("", 204)


@bp.put("/assessments/<slug>/portfolio/statements/<slot_id>")
def put_statement(slug: str, slot_id: str) -> Response | tuple[str, int]:
    """`{"text": "…"}`, judged against the slot's word limits at once. Empty takes it out."""
    user, _ = _learner(slug)
    item = portfolios.set_statement(db(), user, slug, slot_id, _text_field(_json_object("text"), "text"))
    return jsonify(pages.item_json(item)) if item is not None else ("", 204)


def _accepted_body(user: User, accepted: Accepted) -> tuple[dict[str, Any], dict[str, str]]:
    submission = queries.get_submission_for(db(), user, accepted.submission_id)
    status_url = url_for("api.get_submission", submission_id=accepted.submission_id)
    body = {
        "id": accepted.submission_id,
        "status_url": status_url,
        "receipt": {
            "sha256": submission.receipt_sha256,
            "commit": None,
            **pages.receipt_of(submission).to_dict(),
        },
        "replayed": not accepted.created,
    }
    return body, {"Location": status_url}


@bp.post("/assessments/<slug>/portfolio/submit")
def submit(slug: str) -> tuple[Response, int, dict[str, str]]:
    """Hand the draft in: `{"draft": id}` names it, else the open draft. A draft already handed in (a
    retry, a second call) answers 200 with its submission; a new hand-in 202."""
    user, _ = _learner(slug)
    draft_id: str | None = None
    if request.content_length or request.is_json:
        data = _json_object("draft")
        if "draft" in data:
            draft_id = _text_field(data, "draft")[:64] or None
    current = portfolios.open_draft(db(), user, slug, create=False)
    earlier = portfolios.handed_in(db(), user, slug, draft_id)
    if earlier is not None and (draft_id is not None or current is None):
        body, headers = _accepted_body(user, Accepted(earlier, "", created=False))
        return jsonify(body), 200, headers
    if draft_id is None:
        draft = current or portfolios.open_draft(db(), user, slug)
        assert draft is not None
        draft_id = draft.id
    accepted = submissions.submit(
        db(),
        web().queue,
        web().settings,
        user,
        SubmissionRequest(
            assessment=slug, draft_id=draft_id, idempotency_key=request.headers.get("Idempotency-Key")
        ),
    )
    body, headers = _accepted_body(user, accepted)
    return jsonify(body), 202 if accepted.created else 200, headers


# ---------------------------------------------------------------- one multipart POST /submissions


def is_portfolio_hand_in() -> bool:
    """Whether a multipart `POST /submissions` hands in a portfolio (its `assessment` is one)."""
    slug = request.form.get("assessment", "")
    if not slug or len(slug) > 200:
        return False
    try:
        return parse_definition(current_version(db(), slug)).kind == "portfolio"
    except GraderError:
        return False  # an unknown assessment is refused by the general path, in its words


def hand_in_in_one_go(user: User) -> tuple[Response, int, dict[str, str]]:
    """`assessment`, `files.<slot>` (repeated for several files), `links.<slot>` and `statements.<slot>`:
    a fresh draft filled and handed in at once, or, on any refusal, nothing recorded at all."""
    slug = request.form["assessment"]
    portfolio = pages.portfolio_for(user, slug)
    by_field = {f"{pages.slot_kind(slot)}s.{slot.id}": slot for slot in portfolio.slots}
    for name in sorted(set(request.form) | set(request.files)):
        if name == "assessment":
            continue
        if name not in by_field:
            raise InvalidInput(
                f"unknown field {name!r}: {portfolio.title} takes "
                + ", ".join(sorted(by_field))
                + " (files as file parts)",
                details={"field": name},
            )
        if name.startswith("files.") and name in request.form:
            raise InvalidInput(f"send {name!r} as a file part, not as text", details={"field": name})
    try:
        current = portfolios.open_draft(db(), user, slug, create=False)
        if current is not None and current.items:
            raise Conflict(
                f"you have a draft of {portfolio.title} in progress: hand it in with "
                f"POST /assessments/{slug}/portfolio/submit, or remove its items first",
                details={"field": "draft"},
            )
        draft = current or portfolios.open_draft(db(), user, slug)
        assert draft is not None
        store = file_store(web().settings)
        for slot in portfolio.slots:
            if isinstance(slot, Artifact):
                uploads = pages.chosen_files(request.files.getlist(f"files.{slot.id}"))
                pages.check_room(slot, 0, len(uploads))
                for upload in uploads:
                    data = pages.read_file(upload, slot)
                    portfolios.add_file(db(), store, user, slug, slot.id, upload.filename or "", data)
            elif isinstance(slot, LinkSpec):
                portfolios.set_link(db(), user, slug, slot.id, request.form.get(f"links.{slot.id}", ""))
            else:
                text = request.form.get(f"statements.{slot.id}", "")
                portfolios.set_statement(db(), user, slug, slot.id, text)
        accepted = submissions.submit(
            db(),
            web().queue,
            web().settings,
            user,
            SubmissionRequest(
                assessment=slug, draft_id=draft.id, idempotency_key=request.headers.get("Idempotency-Key")
            ),
        )
    except GraderError:
        # A refused request would still commit the part of the draft it filled: in one go is all or none.
        db().rollback()
        raise
    if not accepted.created:
        db().rollback()  # an Idempotency-Key replay: the first hand-in stands, this draft is undone
    body, headers = _accepted_body(user, accepted)
    return jsonify(body), 202, headers
