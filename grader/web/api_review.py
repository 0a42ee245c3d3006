"""JSON API for reviewers (/api/v1/review...): the queue, claims, reviews, comments, regrade requests.

The same services as the reviewer pages, behind Bearer tokens: every route takes the token's user,
refuses learners with 403, and answers errors in the one envelope with `details.field` naming the
culprit. Blind review applies here as on the pages: the learner's name, email and paths that
contain them are never in a blind reviewer's response.

Routes (who: a reviewer of the submission's program, or an admin, unless said otherwise):

    GET  /review/queue                          the queue, with the page's filters as query parameters
    POST /review/next                           claim the oldest free task; {"task": null} when none
    POST /review/tasks/<id>/claim               claim (or renew one's own claim); 409 names the holder
    POST /review/tasks/<id>/release             give one's claim back
    POST /review/tasks/<id>/assign              staff of the program: {"reviewer": email}
    GET  /review/tasks/<id>                     the holder: bundle (a portfolio's slots too), rubric, draft,
                                                what the task shows
    GET  /review/tasks/<id>/files?path=         the holder: one file's text
    PUT  /review/tasks/<id>/draft               the holder: save a draft (criteria may stay open)
    POST /review/tasks/<id>/review              the holder: submit (every manual criterion scored)
    POST /review/tasks/<id>/regrade-answer      the holder of a regrade task: {"reply", ...review}
    POST /review/reviews/<id>/versions          the author or the program's staff: {...review, "reason"}
    GET  /review/comment-bank/<rubric>          ?q=&criterion=
    POST /review/comment-bank/<rubric>          {"text", "criterion"?}
    PUT  /review/comment-bank/entries/<id>      {"text"}
    POST /review/comment-bank/entries/<id>/use  count one use; its text
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from grader.errors import InvalidInput
from grader.models import RegradeRequest, ReviewTask, Role, User, utcnow
from grader.models import Review as ReviewRow
from grader.services import audit, review_queue, reviews, viewer
from grader.services.reviews import ReviewInput
from grader.storage import file_store
from grader.web.auth import api_user, csrf, require_role
from grader.web.context import db, web
from rubrics.model import Rubric as RubricModel

bp = Blueprint("api_review", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # token-authenticated, like the rest of the API


def _reviewer() -> User:
    user = api_user()
    require_role(user, Role.REVIEWER)
    return user


def _body() -> dict[str, Any]:
    if not request.is_json:
        raise InvalidInput("send a JSON body with Content-Type: application/json", details={"field": "body"})
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", details={"field": "body"})
    return data


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# ---------------------------------------------------------------- shapes


def _item(item: review_queue.QueueItem, now: datetime) -> dict[str, Any]:
    return {
        "task": item.task_id,
        "submission": item.submission_id,
        "assessment": item.assessment,
        "assessment_title": item.assessment_title,
        "slot": item.slot,
        "attempt": item.attempt_number,
        "learner": item.learner,
        "waiting_since": _when(item.waiting_since),
        "waiting_seconds": int(item.waiting(now).total_seconds()),
        "holder": item.holder,
        "claim_expires": _when(item.claim_expires),
        "assigned": item.assigned,
        "claimable": item.claimable,
        "not_claimable_because": item.not_claimable_because,
    }


def _task(task: ReviewTask) -> dict[str, Any]:
    holder = task.reviewer_id if task.status == "claimed" else None
    return {
        "id": task.id,
        "submission": task.submission_id,
        "slot": task.slot,
        "status": task.status,
        "reviewer": holder,
        "claimed_at": _when(task.claimed_at),
        "claim_expires": _when(task.expires_at) if holder is not None else None,
        "assigned": holder is not None and task.expires_at is None,
        "regrade_request": task.regrade_request_id,
    }


def _rubric(rubric: RubricModel) -> dict[str, Any]:
    return {
        "id": rubric.id,
        "title": rubric.title,
        "version": rubric.version,
        "pass_mark": rubric.pass_mark,
        "max_score": rubric.max_score,
        "criteria": [
            {
                "id": c.id,
                "title": c.title,
                "description": c.description,
                "manual": c.auto is None,
                "scoring": c.scoring,
                "weight": c.weight,
                "max_points": c.top_points,
                "levels": [lv.model_dump() for lv in c.levels],
                "items": [item.model_dump() for item in c.items],
                "mode": c.mode if c.items else None,
                "minimum_level": c.minimum_level,
                "minimum_points": c.minimum_points,
            }
            for c in rubric.criteria
        ],
    }


def _input(given: ReviewInput, bundle: viewer.Bundle) -> dict[str, Any]:
    return {
        "criteria": [
            {
                "criterion": r.criterion_id,
                "level": r.level,
                "points": r.points,
                "items": list(r.items),
                "comment": r.comment,
            }
            for r in given.reviews
        ],
        "comment": given.comment,
        "inline_comments": [
            {"path": viewer.shown_path(bundle, c.path), "line": c.line, "body": c.body} for c in given.inline
        ],
        "adjustment": given.adjustment,
        "adjustment_reason": given.adjustment_reason,
    }


def _portfolio_file(file: viewer.PortfolioFile, content: viewer.PortfolioContent | None) -> dict[str, Any]:
    listing = content.listing if content is not None else None
    return {
        "key": file.key,
        "name": file.shown_name,
        "sha256": file.sha256,
        "size": file.size,
        "type": file.type,
        "width": file.width,
        "height": file.height,
        "page_count": file.page_count,
        "pages_rendered": len(file.pages),
        "problem": file.problem,
        "document": dict(file.details),
        "text": content.text if content is not None else None,
        "listing": None
        if listing is None
        else {
            "entries": [{"name": m.name, "size": m.size, "folder": m.folder} for m in listing.members],
            "total": listing.total,
            "problem": listing.problem,
        },
    }


def _slots(bundle: viewer.Bundle, contents: dict[str, viewer.PortfolioContent]) -> list[dict[str, Any]]:
    """A portfolio's slots as the task page shows them, redacted the same way under blind review."""
    return [
        {
            "id": slot.id,
            "kind": slot.kind,
            "title": slot.title,
            "description": slot.description,
            "prompt": slot.prompt,
            "required": slot.required,
            "criteria": list(slot.criteria),
            "files": [_portfolio_file(f, contents.get(f.key)) for f in slot.files],
            "links": [
                {"url": link.url, "host": link.host, "private": link.private, "redacted": link.blind}
                for link in slot.links
            ],
            "statements": [{"text": st.text, "words": st.words} for st in slot.statements],
            "checks": [
                {"id": c.get("id"), "passed": bool(c.get("passed")), "explanation": c.get("explanation", "")}
                for c in slot.checks
            ],
        }
        for slot in bundle.slots
    ]


def _bundle(
    bundle: viewer.Bundle, contents: dict[str, viewer.PortfolioContent] | None = None
) -> dict[str, Any]:
    return {
        "submission": bundle.submission_id,
        "kind": bundle.kind,
        "assessment": bundle.assessment,
        "assessment_title": bundle.assessment_title,
        "attempt": bundle.attempt_number,
        "learner": bundle.learner,
        "blind": bundle.blind,
        "commit": bundle.commit,
        "files": [
            {
                "path": f.shown_path,
                "size": f.size,
                "text": f.text,
                "kept": f.sha256 is not None,
                "shown": f.renderable,
            }
            for f in bundle.files
        ],
        "omitted": bundle.omitted,
        "tests": list(bundle.tests),
        "criteria": list(bundle.criteria),
        "answers": [
            {"question": a.question_id, "prompt": a.prompt, "answer": a.answer} for a in bundle.answers
        ],
        "notes": list(bundle.notes),
        "earlier_attempts": [
            {
                "submission": a.submission_id,
                "attempt": a.attempt_number,
                "created_at": _when(a.created_at),
                "status": a.status,
                "score": a.score,
                "max_score": a.max_score,
                "passed": a.passed,
            }
            for a in bundle.history
        ],
        "slots": _slots(bundle, contents or {}),
    }


def _request(row: RegradeRequest | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "id": row.id,
        "criterion": row.criterion_id,
        "reason": row.reason,
        "created_at": _when(row.created_at),
        "status": row.status,
        "reply": row.reply or None,
    }


def _review(row: ReviewRow, bundle: viewer.Bundle) -> dict[str, Any]:
    return {
        "id": row.id,
        "slot": row.slot,
        "state": row.state,
        "version": row.version,
        "updated_at": _when(row.updated_at),
        **_input(reviews.input_of(row), bundle),
    }


def _entry(entry: reviews.BankEntry) -> dict[str, Any]:
    return {"id": entry.id, "criterion": entry.criterion_id, "text": entry.text, "uses": entry.uses}


# ---------------------------------------------------------------- the queue and claims


@bp.get("/review/queue")
def queue() -> Response:
    user = _reviewer()
    now = utcnow()
    filters = review_queue.parse_filters({k: v for k, v in request.args.items()})
    view = review_queue.queue(db(), user, filters, now=now)
    return jsonify(
        {
            "items": [_item(item, now) for item in view.items],
            "counts": [
                {"assessment": slug, "title": title, "waiting": count} for slug, title, count in view.counts
            ],
        }
    )


@bp.post("/review/next")
def next_task() -> Response:
    user = _reviewer()
    data = request.get_json(silent=True) if request.is_json else None
    filters = review_queue.parse_filters(
        {k: str(v) for k, v in data.items()} if isinstance(data, dict) else dict(request.args.items())
    )
    task = review_queue.claim_next(db(), user, filters)
    if task is None:
        return jsonify({"task": None, "message": "no submission is waiting for a review you may take"})
    return jsonify({"task": _task(task)})


@bp.post("/review/tasks/<int:task_id>/claim")
def claim(task_id: int) -> Response:
    return jsonify({"task": _task(review_queue.claim(db(), _reviewer(), task_id))})


@bp.post("/review/tasks/<int:task_id>/release")
def release(task_id: int) -> Response:
    return jsonify({"task": _task(review_queue.release(db(), _reviewer(), task_id))})


@bp.post("/review/tasks/<int:task_id>/assign")
def assign(task_id: int) -> Response:
    user = _reviewer()
    data = _body()
    email = data.get("reviewer")
    if not isinstance(email, str) or not email.strip() or len(email) > 254:
        raise InvalidInput(
            "'reviewer' must be the email address of a reviewer", details={"field": "reviewer"}
        )
    chosen = review_queue.reviewer_by_email(db(), email)
    task = review_queue.assign(db(), user, task_id, chosen, actor=audit.user_actor(user))
    return jsonify({"task": _task(task)})


# ---------------------------------------------------------------- the task and its evidence


@bp.get("/review/tasks/<int:task_id>")
def task(task_id: int) -> Response:
    user = _reviewer()
    held = review_queue.require_holder(db(), user, task_id)
    context = reviews.task_context(db(), user, held)
    bundle = viewer.bundle(db(), user, held.submission_id)
    store = file_store(web().settings)
    contents = viewer.portfolio_contents(db(), store, bundle) if bundle.slots else {}
    rubric = reviews.rubric_of(db(), held.result)
    try:
        preview = reviews.preview(db(), held.result, context.prefill).to_dict()
    except InvalidInput:
        preview = None
    return jsonify(
        {
            "task": _task(held),
            "bundle": _bundle(bundle, contents),
            "rubric": _rubric(rubric),
            "draft": _review(context.draft, bundle) if context.draft is not None else None,
            "prefill": _input(context.prefill, bundle),
            "preview": preview,
            "reviews": [
                {
                    "id": shown.id,
                    "slot": shown.slot,
                    "version": shown.version,
                    "reviewer": shown.reviewer,
                    "submitted_at": _when(shown.submitted_at),
                    "manual_points": shown.manual_points,
                    "manual_max": shown.manual_max,
                    **_input(shown.input, bundle),
                }
                for shown in context.shown
            ],
            "regrade_request": _request(context.request),
            "comment_bank": reviews.rubric_slug_of(db(), held.result),
        }
    )


@bp.get("/review/tasks/<int:task_id>/files")
def task_file(task_id: int) -> Response:
    user = _reviewer()
    held = review_queue.require_holder(db(), user, task_id)
    path = request.args.get("path", "")
    if not path:
        raise InvalidInput("say which file: ?path=", details={"field": "path"})
    shown = viewer.read_file(db(), file_store(web().settings), user, held.submission_id, path)
    return jsonify(
        {
            "path": shown.file.shown_path,
            "size": shown.file.size,
            "text": shown.file.text,
            "content": shown.content,
            "shown": shown.content is not None,
        }
    )


def _given(user: User, task: ReviewTask, data: dict[str, Any], *, draft: bool) -> ReviewInput:
    """The review in the body, with inline comments' paths as the reviewer sees them mapped back."""
    given = reviews.parse_review_input(data, draft=draft)
    bundle = viewer.bundle(db(), user, task.submission_id)
    inline = []
    for index, comment in enumerate(given.inline):
        try:
            graded = viewer.graded_path(bundle, comment.path)
        except InvalidInput:
            raise InvalidInput(
                f"inline_comments[{index}].path is not a file of this submission",
                details={"field": f"inline_comments[{index}].path"},
            ) from None
        inline.append(reviews.InlineComment(graded, comment.line, comment.body))
    return ReviewInput(
        reviews=given.reviews,
        comment=given.comment,
        inline=tuple(inline),
        adjustment=given.adjustment,
        adjustment_reason=given.adjustment_reason,
    )


@bp.put("/review/tasks/<int:task_id>/draft")
def save_draft(task_id: int) -> Response:
    user = _reviewer()
    held = review_queue.require_holder(db(), user, task_id)
    given = _given(user, held, _body(), draft=True)
    row = reviews.save_draft(db(), user, held.id, given)
    bundle = viewer.bundle(db(), user, held.submission_id)
    return jsonify(
        {"draft": _review(row, bundle), "preview": reviews.preview(db(), held.result, given).to_dict()}
    )


@bp.post("/review/tasks/<int:task_id>/review")
def submit(task_id: int) -> tuple[Response, int]:
    user = _reviewer()
    held = review_queue.require_holder(db(), user, task_id)
    given = _given(user, held, _body(), draft=False)
    outcome = reviews.submit(db(), user, held.id, given)
    return jsonify(outcome.to_dict()), 201


@bp.post("/review/tasks/<int:task_id>/regrade-answer")
def regrade_answer(task_id: int) -> Response:
    user = _reviewer()
    held = review_queue.require_holder(db(), user, task_id)
    data = _body()
    reply = data.pop("reply", None)
    if not isinstance(reply, str) or not reply.strip():
        raise InvalidInput("'reply' must be your answer to the learner, as text", details={"field": "reply"})
    given = _given(user, held, data, draft=False) if data.get("criteria") else None
    answered = reviews.answer_regrade(db(), user, held.id, reply, given)
    return jsonify(
        {
            "regrade_request": _request(answered),
            "changed": answered.changed,
        }
    )


@bp.post("/review/reviews/<int:review_id>/versions")
def new_version(review_id: int) -> tuple[Response, int]:
    user = _reviewer()
    row = reviews.editable_review(db(), user, review_id)
    data = _body()
    reason = data.pop("reason", None)
    if not isinstance(reason, str):
        raise InvalidInput("'reason' must say why the review changes", details={"field": "reason"})
    _, submission, _ = reviews.review_context(db(), row)
    bundle = viewer.bundle(db(), user, submission.id)
    given = reviews.parse_review_input(data)
    inline = []
    for index, comment in enumerate(given.inline):
        try:
            inline.append(
                reviews.InlineComment(viewer.graded_path(bundle, comment.path), comment.line, comment.body)
            )
        except InvalidInput:
            raise InvalidInput(
                f"inline_comments[{index}].path is not a file of this submission",
                details={"field": f"inline_comments[{index}].path"},
            ) from None
    given = ReviewInput(
        given.reviews, given.comment, tuple(inline), given.adjustment, given.adjustment_reason
    )
    outcome = reviews.edit(db(), user, row.id, given, reason=reason)
    return jsonify({**outcome.to_dict(), "version": row.version + 1, "supersedes": row.id}), 201


# ---------------------------------------------------------------- the comment bank


def _criterion_field(data: dict[str, Any]) -> str | None:
    criterion = data.get("criterion")
    if criterion is None or criterion == "":
        return None
    if not isinstance(criterion, str) or len(criterion) > 100:
        raise InvalidInput("'criterion' must be the id of a manual criterion", details={"field": "criterion"})
    return criterion


@bp.get("/review/comment-bank/<rubric_slug>")
def comment_bank(rubric_slug: str) -> Response:
    user = _reviewer()
    reviews.require_bank_access(db(), user, rubric_slug)
    criterion = request.args.get("criterion") or None
    entries = reviews.comment_bank(
        db(), rubric_slug, search=request.args.get("q", ""), criterion_id=criterion
    )
    return jsonify({"rubric": rubric_slug, "entries": [_entry(e) for e in entries]})


@bp.post("/review/comment-bank/<rubric_slug>")
def add_to_bank(rubric_slug: str) -> tuple[Response, int]:
    user = _reviewer()
    data = _body()
    text = data.get("text")
    if not isinstance(text, str):
        raise InvalidInput("'text' must be the comment, as text", details={"field": "text"})
    entry = reviews.add_to_bank(db(), user, rubric_slug, text, _criterion_field(data))
    return jsonify(_entry(reviews.BankEntry(entry.id, entry.criterion_id, entry.text, entry.uses))), 201


@bp.put("/review/comment-bank/entries/<int:entry_id>")
def edit_bank_entry(entry_id: int) -> Response:
    user = _reviewer()
    data = _body()
    text = data.get("text")
    if not isinstance(text, str):
        raise InvalidInput("'text' must be the comment, as text", details={"field": "text"})
    entry = reviews.edit_bank_entry(db(), user, entry_id, text)
    return jsonify(_entry(reviews.BankEntry(entry.id, entry.criterion_id, entry.text, entry.uses)))


@bp.post("/review/comment-bank/entries/<int:entry_id>/use")
def use_bank_entry(entry_id: int) -> Response:
    user = _reviewer()
    reviews.use_bank_entry(db(), entry_id, user)
    entry = reviews.bank_entry(db(), user, entry_id)
    return jsonify(_entry(reviews.BankEntry(entry.id, entry.criterion_id, entry.text, entry.uses)))
