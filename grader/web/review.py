"""Reviewer pages (/review): the queue, the evidence viewer and the rubric form.

Thin on purpose: every decision is a service's (`review_queue` for claims, `reviews` for scoring,
`viewer` for the evidence bundle). This module turns forms into the services' inputs, names a bad
field in words, and turns the services' answers into pages. A refused form is shown again with
everything that was typed, under the refusal's own status code (400, 403, 404, 409); a form whose
claim was lost meanwhile shows what was typed on the 409 page, so nothing is lost either way.

A portfolio's task page shows each declared slot beside the criteria it serves: images and PDF pages
as PNG renditions this service encoded (served by `picture` as images only, sandboxed, never
sniffed), text escaped, Markdown rendered and sanitised, ZIP archives as their list of entries,
links as text with their host, statements beside their prompt. The learner's own bytes are only
ever an attachment (`download`).

The rubric form is one `<form id="rubric">`; controls elsewhere on the page (the inline comment box
beside the code, the comment bank) join it through the `form` attribute, so every button saves the
whole review. JavaScript (static/review.js) only adds keys, the live score preview and a few
shortcuts; every action works without it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from grader.errors import Conflict, GraderError, InvalidInput, NotFound, PermissionDenied
from grader.models import Review as ReviewRow
from grader.models import ReviewSlot, ReviewTask, Role, User
from grader.services import audit, renditions, review_queue, reviews, viewer
from grader.services.reviews import InlineComment, ReviewInput
from grader.storage import file_store
from grader.web.auth import login_required_page, page_user, require_role
from grader.web.code import highlight_lines
from grader.web.context import db, web
from rubrics import Review
from rubrics.model import Criterion
from rubrics.model import Rubric as RubricModel

bp = Blueprint("review", __name__, url_prefix="/review")

SLOT_LABELS = {
    ReviewSlot.FIRST: "Review",
    ReviewSlot.SECOND: "Second review (independent)",
    ReviewSlot.ADJUDICATION: "Adjudication",
    ReviewSlot.REGRADE: "Regrade request",
}

# Every key of review.js, as the page lists them for everyone (with JavaScript on, "?" shows them).
KEYS = (
    ("1 to 9", "pick the level (or tick the item) with that number in the current criterion"),
    ("j / k", "go to the next / previous criterion"),
    ("c", "write the current criterion's comment"),
    ("n", "open the next file (your draft is saved first)"),
    ("s", "submit and open the next submission (asks first)"),
    ("?", "show or hide this list"),
    ("Esc", "leave a text box, so that the keys work again"),
)


def _reviewer() -> User:
    user = page_user()
    require_role(user, Role.REVIEWER)
    return user


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return render_template(template, slot_labels=SLOT_LABELS, **context), status


# ---------------------------------------------------------------- the queue


_LOCAL_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


def _filters(args: dict[str, str]) -> review_queue.QueueFilter:
    """The queue's filters from a form; a browser's date-and-time field has no zone: it is UTC here."""
    values = {k: v.strip() for k, v in args.items() if isinstance(v, str)}
    moment = values.get("waiting_since", "")
    if _LOCAL_MOMENT.match(moment):
        values["waiting_since"] = moment + "+00:00"
    try:
        return review_queue.parse_filters(values)
    except InvalidInput as exc:
        raise InvalidInput(
            "Waiting since must be a date and time, such as 2026-03-01 09:00"
            if exc.details.get("field") == "waiting_since"
            else "The review must be one of the kinds listed",
            details=exc.details,
        ) from None


FILTER_NAMES = ("program", "assessment", "waiting_since", "mine", "unassigned", "slot")


@bp.get("")
@login_required_page
def queue() -> tuple[str, int]:
    user = _reviewer()
    args = {name: request.args.get(name, "") for name in FILTER_NAMES}
    error: GraderError | None = None
    try:
        view = review_queue.queue(db(), user, _filters(args))
    except (InvalidInput, NotFound) as exc:
        error = exc
        view = review_queue.QueueView((), ())
    assignable = {
        aid for aid in {i.assessment_id for i in view.items} if review_queue.may_assign(db(), user, aid)
    }
    return _page(
        "review/queue.html",
        error.http_status if error else 200,
        view=view,
        args=args,
        error=error,
        programs=review_queue.reviewer_programs(db(), user),
        assessments=review_queue.reviewer_assessments(db(), user),
        assignable=assignable,
        reviewers=review_queue.reviewers_of(db(), assignable),
        recent=reviews.recent_reviews(db(), user),
        me=user,
    )


def _queue_url(args: dict[str, str] | None = None) -> str:
    kept: dict[str, Any] = {k: v for k, v in (args or {}).items() if k in FILTER_NAMES and v}
    return url_for("review.queue", **kept)


@bp.post("/next")
@login_required_page
def next_task() -> Response:
    """Claim the oldest submission nobody holds (within the queue's filters) and open it."""
    user = _reviewer()
    args = {name: request.form.get(name, "") for name in FILTER_NAMES}
    task = review_queue.claim_next(db(), user, _filters(args))
    if task is None:
        flash("No submission is waiting for a review you may take right now.", "info")
        return redirect(_queue_url(args))
    return redirect(url_for("review.task", task_id=task.id))


def _conflict(exc: Conflict, task_id: int | None = None, kept: str = "") -> tuple[str, int]:
    return _page("review/conflict.html", 409, error=exc, task_id=task_id, kept=kept)


@bp.post("/tasks/<int:task_id>/claim")
@login_required_page
def claim(task_id: int) -> Response | tuple[str, int]:
    user = _reviewer()
    try:
        review_queue.claim(db(), user, task_id)
    except Conflict as exc:
        return _conflict(exc, task_id)
    return redirect(url_for("review.task", task_id=task_id))


@bp.post("/tasks/<int:task_id>/release")
@login_required_page
def release(task_id: int) -> Response | tuple[str, int]:
    user = _reviewer()
    try:
        review_queue.release(db(), user, task_id)
    except Conflict as exc:
        return _conflict(exc, task_id)
    flash("Released: the submission is back in the queue for anyone. Your draft is kept.", "info")
    return redirect(url_for("review.queue"))


@bp.post("/tasks/<int:task_id>/assign")
@login_required_page
def assign(task_id: int) -> Response | tuple[str, int]:
    user = _reviewer()
    raw = request.form.get("reviewer", "").strip()
    if not raw.isdigit():
        raise InvalidInput("Choose the reviewer to assign", details={"field": "reviewer"})
    chosen = review_queue.reviewer_by_id(db(), int(raw))
    try:
        review_queue.assign(db(), user, task_id, chosen, actor=audit.user_actor(user))
    except Conflict as exc:
        return _conflict(exc, task_id)
    flash(f"Assigned to {chosen.name}: they hold it until they submit or release it.", "good")
    return redirect(url_for("review.queue"))


# ---------------------------------------------------------------- the form's state


@dataclass
class CriterionState:
    level: str = ""
    items: list[str] = field(default_factory=list)
    points: str = ""
    comment: str = ""


@dataclass
class InlineState:
    path: str  # as this reviewer sees it (redacted under blind review)
    line: str
    body: str
    remove: bool = False


@dataclass
class FormState:
    """What the rubric form shows: the saved draft, or exactly what was typed into a refused form."""

    criteria: dict[str, CriterionState] = field(default_factory=dict)
    comment: str = ""
    adjustment: str = ""
    adjustment_reason: str = ""
    inline: list[InlineState] = field(default_factory=list)
    new_path: str = ""
    new_line: str = ""
    new_body: str = ""
    reply: str = ""
    reason: str = ""
    bank_text: str = ""
    bank_criterion: str = ""
    bank_target: str = ""

    def criterion(self, criterion_id: str) -> CriterionState:
        return self.criteria.setdefault(criterion_id, CriterionState())

    def typed(self) -> str:
        """Everything written in words, for the page that cannot take the form any more."""
        parts = [f"{cid}: {c.comment}" for cid, c in self.criteria.items() if c.comment.strip()]
        parts += [f"{i.path}:{i.line}: {i.body}" for i in self.inline if i.body.strip()]
        parts += [
            text
            for text in (self.comment, self.new_body, self.adjustment_reason, self.reply, self.reason)
            if text.strip()
        ]
        return "\n\n".join(parts)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}"


def state_from_input(given: ReviewInput, view: viewer.Bundle | None) -> FormState:
    state = FormState(
        comment=given.comment,
        adjustment=_fmt(given.adjustment) if given.adjustment else "",
        adjustment_reason=given.adjustment_reason,
    )
    for review in given.reviews:
        state.criteria[review.criterion_id] = CriterionState(
            level=review.level or "",
            items=list(review.items),
            points=_fmt(review.points),
            comment=review.comment,
        )
    for comment in given.inline:
        shown = viewer.shown_path(view, comment.path) if view is not None else comment.path
        state.inline.append(InlineState(shown, str(comment.line), comment.body))
    return state


def state_from_form(form: MultiDict[str, str], rubric: RubricModel) -> FormState:
    state = FormState(
        comment=form.get("comment", ""),
        adjustment=form.get("adjustment", "").strip(),
        adjustment_reason=form.get("adjustment_reason", ""),
        new_path=form.get("new_inline_path", ""),
        new_line=form.get("new_inline_line", "").strip(),
        new_body=form.get("new_inline_body", ""),
        reply=form.get("reply", ""),
        reason=form.get("reason", ""),
        bank_text=form.get("bank_text", ""),
        bank_criterion=form.get("bank_criterion", ""),
        bank_target=form.get("bank_target", ""),
    )
    for criterion in _manual(rubric):
        prefix = f"c-{criterion.id}-"
        state.criteria[criterion.id] = CriterionState(
            level=form.get(prefix + "level", ""),
            items=form.getlist(prefix + "item"),
            points=form.get(prefix + "points", "").strip(),
            comment=form.get(prefix + "comment", ""),
        )
    index = 0
    while f"inline-{index}-path" in form and index < reviews.MAX_INLINE_COMMENTS:
        state.inline.append(
            InlineState(
                path=form.get(f"inline-{index}-path", ""),
                line=form.get(f"inline-{index}-line", "").strip(),
                body=form.get(f"inline-{index}-body", ""),
                remove=bool(form.get(f"inline-{index}-remove")),
            )
        )
        index += 1
    return state


def _manual(rubric: RubricModel) -> list[Criterion]:
    return [c for c in rubric.criteria if c.auto is None]


def _limit(text: str, limit: int, field_name: str, words: str) -> str:
    if len(text) > limit:
        raise InvalidInput(
            f"{words} is too long: at most {limit:,} characters ({len(text):,} now)",
            details={"field": field_name},
        )
    return text


def _line_number(raw: str, field_name: str, words: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidInput(f"{words} must be a line number from 1", details={"field": field_name})
    return int(raw)


def input_from_state(
    state: FormState, rubric: RubricModel, view: viewer.Bundle | None, *, complete: bool
) -> ReviewInput:
    """The services' input from the form, refusing in words; `complete` asks for every criterion."""
    given: list[Review] = []
    open_titles: list[str] = []
    first_open = ""
    for criterion in _manual(rubric):
        value = state.criterion(criterion.id)
        comment = _limit(
            value.comment,
            reviews.MAX_COMMENT,
            f"c-{criterion.id}-comment",
            f"The comment on {criterion.title}",
        )
        level: str | None = None
        points: float | None = None
        items: tuple[str, ...] = ()
        if criterion.scoring == "levels":
            if value.level and criterion.level(value.level) is None:
                raise InvalidInput(
                    f"Choose one of the levels of {criterion.title}",
                    details={"field": f"c-{criterion.id}-level"},
                )
            level = value.level or None
            scored = level is not None
        elif criterion.scoring == "items":
            known = {item.id for item in criterion.items}
            if not set(value.items) <= known:
                raise InvalidInput(
                    f"Tick only the items listed for {criterion.title}",
                    details={"field": f"c-{criterion.id}-item"},
                )
            items = tuple(dict.fromkeys(value.items))
            scored = True  # no item ticked is a score too: none of them applies
        else:
            if value.points:
                try:
                    points = float(value.points.replace(",", "."))
                except ValueError:
                    points = math.nan
                if not math.isfinite(points) or not 0 <= points <= criterion.top_points:
                    raise InvalidInput(
                        f"The points for {criterion.title} must be a number from 0 to "
                        f"{criterion.top_points:g}",
                        details={"field": f"c-{criterion.id}-points"},
                    )
            scored = points is not None
        if not scored:
            open_titles.append(criterion.title)
            first_open = first_open or criterion.id
            if not comment.strip():
                continue
        given.append(Review(criterion.id, level=level, points=points, items=items, comment=comment))
    if complete and open_titles:
        raise InvalidInput(
            f"Score every criterion before you submit: {', '.join(open_titles)} "
            f"{'is' if len(open_titles) == 1 else 'are'} still open",
            details={"field": f"c-{first_open}"},
        )
    adjustment = 0.0
    if state.adjustment:
        try:
            adjustment = float(state.adjustment.replace(",", ".").replace("\u2212", "-"))
        except ValueError:
            adjustment = math.nan
        if not math.isfinite(adjustment):
            raise InvalidInput(
                "The adjustment must be a number of points, such as -2 or 1.5",
                details={"field": "adjustment"},
            )
    reason = _limit(
        state.adjustment_reason.strip(),
        reviews.MAX_REASON,
        "adjustment_reason",
        "The reason for the adjustment",
    )
    if adjustment and not reason:
        raise InvalidInput("Say why the points are adjusted", details={"field": "adjustment_reason"})
    inline: list[InlineComment] = []
    for index, item in enumerate(state.inline):
        if item.remove or not item.body.strip():
            continue
        where = f"The comment on {item.path} line {item.line}"
        body = _limit(item.body.strip(), reviews.MAX_COMMENT, f"inline-{index}-body", where)
        line = _line_number(item.line, f"inline-{index}-line", f"The line of the comment on {item.path}")
        inline.append(InlineComment(_graded(view, item.path, f"inline-{index}-path"), line, body))
    if state.new_body.strip():
        body = _limit(state.new_body.strip(), reviews.MAX_COMMENT, "new_inline_body", "The inline comment")
        line = _line_number(state.new_line, "new_inline_line", "The line of the inline comment")
        inline.append(InlineComment(_graded(view, state.new_path, "new_inline_path"), line, body))
    if len(inline) > reviews.MAX_INLINE_COMMENTS:
        raise InvalidInput(
            f"A review has at most {reviews.MAX_INLINE_COMMENTS} inline comments",
            details={"field": "new_inline_body"},
        )
    return ReviewInput(
        reviews=tuple(given),
        comment=_limit(state.comment, reviews.MAX_COMMENT, "comment", "The overall comment"),
        inline=tuple(inline),
        adjustment=adjustment,
        adjustment_reason=reason,
    )


def _graded(view: viewer.Bundle | None, path: str, field_name: str) -> str:
    if view is None:
        return path
    try:
        return viewer.graded_path(view, path)
    except InvalidInput:
        raise InvalidInput(
            "An inline comment must be on a file of this submission", details={"field": field_name}
        ) from None


_CRITERION_ID = re.compile(r"criterion '([^']+)'")


def in_words(exc: GraderError, rubric: RubricModel | None) -> str:
    """A service's message as a sentence for people: criteria by their titles, a capital first."""
    message = exc.message
    if rubric is not None:
        titles = {c.id: c.title for c in rubric.criteria}
        message = _CRITERION_ID.sub(lambda m: titles.get(m.group(1), m.group(1)), message)
    return message[:1].upper() + message[1:]


# ---------------------------------------------------------------- the task page


def _safe_goto(task_id: int, target: str) -> str | None:
    """Only a place on this task's own page: `goto` comes from the page's script."""
    base = url_for("review.task", task_id=task_id)
    if target.startswith(base) and not re.search(r"[\\\s]|//", target[len(base) :]):
        rest = target[len(base) :]
        if rest == "" or rest[0] in "?#":
            return target
    return None


def _task_url(task_id: int, path: str | None = None, anchor: str = "") -> str:
    url = (
        url_for("review.task", task_id=task_id, file=path)
        if path
        else url_for("review.task", task_id=task_id)
    )
    return url + (f"#{anchor}" if anchor else "")


def _rubric_data(rubric: RubricModel, preview: reviews.Preview | None) -> dict[str, Any]:
    """What review.js needs to compute the preview as the reviewer picks (a JSON block, not script)."""
    return {
        "criteria": [
            {
                "id": c.id,
                "title": c.title,
                "scoring": c.scoring,
                "weight": c.weight,
                "top": c.top_points,
                "floor": c.floor_points,
                "ceiling": c.ceiling_points,
                "mode": c.mode,
                "levels": [{"label": lv.label, "points": lv.points} for lv in c.levels],
                "items": [{"id": item.id, "points": item.points} for item in c.items],
            }
            for c in _manual(rubric)
        ],
        "automatic": preview.automatic if preview else 0.0,
        "manual_max": preview.manual_max if preview else 0.0,
        "max_score": preview.max_score if preview else rubric.max_score,
        "pass_mark": rubric.pass_mark,
    }


def _preview(task: ReviewTask, given: ReviewInput) -> reviews.Preview | None:
    try:
        return reviews.preview(db(), task.result, given)
    except InvalidInput:
        return None


def _render_task(
    user: User,
    task: ReviewTask,
    *,
    state: FormState | None = None,
    error: GraderError | None = None,
    status: int = 200,
    path: str | None = None,
) -> tuple[str, int]:
    store = file_store(web().settings)
    context = reviews.task_context(db(), user, task)
    bundle = viewer.bundle(db(), user, task.submission_id)
    rubric = reviews.rubric_of(db(), task.result)
    saved = context.prefill
    state = state or state_from_input(saved, bundle)
    preview = _preview(task, saved)
    path = path if path is not None else request.args.get("file")
    if not path:
        path = next((f.shown_path for f in bundle.files if f.renderable), None)
    shown_file = None
    lines: tuple[Any, ...] = ()
    language = ""
    if path:
        shown_file = viewer.read_file(db(), store, user, task.submission_id, path, seen=bundle)
        if shown_file.content is not None:
            highlighted = highlight_lines(shown_file.file.shown_path, shown_file.content)
            lines, language = highlighted.lines, highlighted.language
    notes: dict[int, list[tuple[int, InlineState]]] = {}
    if shown_file is not None:
        for index, item in enumerate(state.inline):
            if item.path == shown_file.file.shown_path and item.line.isdigit():
                notes.setdefault(int(item.line), []).append((index, item))
    files = sorted(bundle.files, key=lambda f: f.shown_path)
    following = None
    if shown_file is not None:
        names = [f.shown_path for f in files]
        position = names.index(shown_file.file.shown_path)
        following = names[(position + 1) % len(names)] if len(names) > 1 else None
    previous, diffs = viewer.diff_to_previous(db(), store, user, task.submission_id, seen=bundle)
    # Each manual criterion's evidence: the portfolio slots that declare they serve it.
    evidence_for: dict[str, list[viewer.PortfolioSlot]] = {}
    for slot in bundle.slots:
        for criterion_id in slot.criteria:
            evidence_for.setdefault(criterion_id, []).append(slot)
    slug = reviews.rubric_slug_of(db(), task.result)
    bank_query = request.args.get("bank_q", "")[:200]
    bank = reviews.comment_bank(db(), slug, search=bank_query) if slug else []
    criteria = {c.id: c for c in rubric.criteria}
    return _page(
        "review/task.html",
        status,
        task=task,
        context=context,
        bundle=bundle,
        rubric=rubric,
        manual=_manual(rubric),
        criteria=criteria,
        automatic=[c for c in bundle.criteria if not c.get("manual")],
        state=state,
        saved_state=state_from_input(saved, bundle),
        error=error,
        error_text=in_words(error, rubric) if error else "",
        error_field=str(error.details.get("field", "")) if error else "",
        preview=preview,
        rubric_data=_rubric_data(rubric, preview),
        files=files,
        shown_file=shown_file,
        lines=lines,
        language=language,
        notes=notes,
        following=following,
        previous=previous,
        previous_attempt=next((a for a in bundle.history if a.submission_id == previous), None),
        diffs=diffs,
        rubric_slug=slug,
        bank=bank,
        bank_query=bank_query,
        keys=KEYS,
        shown_path=lambda graded: viewer.shown_path(bundle, graded),
        contents=viewer.portfolio_contents(db(), store, bundle) if bundle.slots else {},
        evidence_for=evidence_for,
        max_pages=renditions.MAX_PDF_PAGES,
    )


@bp.get("/tasks/<int:task_id>")
@login_required_page
def task(task_id: int) -> tuple[str, int]:
    user = _reviewer()
    try:
        held = review_queue.require_holder(db(), user, task_id)
    except Conflict as exc:
        return _conflict(exc, task_id)
    return _render_task(user, held)


def _held_for_post(user: User, task_id: int) -> ReviewTask | tuple[str, int]:
    try:
        return review_queue.require_holder(db(), user, task_id)
    except Conflict as exc:
        return _conflict(exc, task_id, kept=_typed(request.form))


TEXT_FIELDS = ("comment", "adjustment_reason", "new_inline_body", "reply", "reason", "bank_text")


def _typed(form: MultiDict[str, str]) -> str:
    """Every text written into a form the page can no longer take (the claim went meanwhile)."""
    return "\n\n".join(
        value.strip()
        for name, value in form.items(multi=True)
        if (name in TEXT_FIELDS or name.endswith("-comment") or name.endswith("-body")) and value.strip()
    )


def _refused(
    user: User, task: ReviewTask, state: FormState, exc: GraderError, path: str | None
) -> tuple[str, int]:
    # Nothing of a refused form is kept (a bank entry added on the way, a use counted).
    db().rollback()
    if isinstance(exc, Conflict) and exc.details.get("field") == "task":
        return _conflict(exc, task.id, kept=state.typed())
    return _render_task(user, task, state=state, error=exc, status=exc.http_status, path=path)


@bp.post("/tasks/<int:task_id>/draft")
@login_required_page
def save_draft(task_id: int) -> Response | tuple[str, int]:
    """Save the review as a draft; the buttons that insert, add or search the bank save it too."""
    user = _reviewer()
    held = _held_for_post(user, task_id)
    if not isinstance(held, ReviewTask):
        return held
    bundle = viewer.bundle(db(), user, held.submission_id)
    rubric = reviews.rubric_of(db(), held.result)
    state = state_from_form(request.form, rubric)
    current = request.form.get("file") or None
    notice = "Draft saved."
    anchor = "rubric"
    try:
        if request.form.get("insert"):
            notice, anchor = _insert_from_bank(user, state, request.form["insert"], rubric)
        given = input_from_state(state, rubric, bundle, complete=False)
        if request.form.get("bank_add") is not None:
            notice, anchor = _add_to_bank(user, held, state, rubric), "bank"
        reviews.save_draft(db(), user, held.id, given)
    except GraderError as exc:
        return _refused(user, held, state, exc, current)
    flash(notice, "good")
    goto = _safe_goto(held.id, request.form.get("goto", ""))
    if goto:
        return redirect(goto)
    if request.form.get("bank_search") is not None:
        url = url_for(
            "review.task",
            task_id=held.id,
            file=current,
            bank_q=request.form.get("bank_q", "").strip()[:200] or None,
        )
        return redirect(url + "#bank")
    if request.form.get("add_inline") is not None and state.new_line.isdigit():
        anchor = f"L{state.new_line}"
    return redirect(_task_url(held.id, current, anchor))


def _insert_from_bank(user: User, state: FormState, raw: str, rubric: RubricModel) -> tuple[str, str]:
    if not raw.isdigit():
        raise InvalidInput("Choose a comment of the bank to insert", details={"field": "insert"})
    text = reviews.use_bank_entry(db(), int(raw), user)
    target = state.bank_target or ""
    manual = {c.id: c for c in _manual(rubric)}
    if target in manual:
        value = state.criterion(target)
        value.comment = (value.comment.rstrip() + "\n\n" + text).lstrip()
        return f"Inserted into the comment on {manual[target].title}.", f"c-{target}"
    state.comment = (state.comment.rstrip() + "\n\n" + text).lstrip()
    return "Inserted into the overall comment.", "comment"


def _add_to_bank(user: User, task: ReviewTask, state: FormState, rubric: RubricModel) -> str:
    slug = reviews.rubric_slug_of(db(), task.result)
    if slug is None:
        raise NotFound("this submission has no rubric, so no comment bank", details={"field": "bank_text"})
    text = state.bank_text.strip()
    if not text:
        raise InvalidInput("Write the comment to add to the bank", details={"field": "bank_text"})
    _limit(text, reviews.MAX_REASON, "bank_text", "The comment for the bank")
    criterion = state.bank_criterion or None
    reviews.add_to_bank(db(), user, slug, text, criterion)
    state.bank_text = ""
    return "Added to the comment bank."


def _outcome_words(outcome: reviews.ReviewOutcome) -> str:
    if not outcome.settled:
        return "Review submitted. The result waits for another review before it is settled."
    verdict = "passed" if outcome.passed else "not passed"
    score, top = _fmt(round(outcome.score or 0, 2)), _fmt(outcome.max_score)
    return f"Review submitted: {score} of {top} points, {verdict}."


def _then_next(user: User, notice: str) -> Response:
    following = review_queue.claim_next(db(), user)
    if following is None:
        flash(notice + " No other submission is waiting for you.", "good")
        return redirect(url_for("review.queue"))
    flash(notice + " Here is the next one.", "good")
    return redirect(url_for("review.task", task_id=following.id))


@bp.post("/tasks/<int:task_id>/submit")
@login_required_page
def submit(task_id: int) -> Response | tuple[str, int]:
    user = _reviewer()
    held = _held_for_post(user, task_id)
    if not isinstance(held, ReviewTask):
        return held
    bundle = viewer.bundle(db(), user, held.submission_id)
    rubric = reviews.rubric_of(db(), held.result)
    state = state_from_form(request.form, rubric)
    try:
        if held.slot == ReviewSlot.REGRADE:
            raise InvalidInput(
                "A regrade request is answered with a reply: use Send the reply", details={"field": "reply"}
            )
        given = input_from_state(state, rubric, bundle, complete=True)
        outcome = reviews.submit(db(), user, held.id, given)
    except GraderError as exc:
        return _refused(user, held, state, exc, request.form.get("file") or None)
    notice = _outcome_words(outcome)
    if request.form.get("then") == "next":
        return _then_next(user, notice)
    flash(notice, "good")
    return redirect(url_for("review.queue"))


@bp.post("/tasks/<int:task_id>/regrade-answer")
@login_required_page
def regrade_answer(task_id: int) -> Response | tuple[str, int]:
    user = _reviewer()
    held = _held_for_post(user, task_id)
    if not isinstance(held, ReviewTask):
        return held
    bundle = viewer.bundle(db(), user, held.submission_id)
    rubric = reviews.rubric_of(db(), held.result)
    state = state_from_form(request.form, rubric)
    try:
        reply = _limit(state.reply.strip(), reviews.MAX_REASON, "reply", "The reply to the learner")
        if not reply:
            raise InvalidInput("Write the reply to the learner's request", details={"field": "reply"})
        given = input_from_state(state, rubric, bundle, complete=True)
        answered = reviews.answer_regrade(db(), user, held.id, reply, given)
    except GraderError as exc:
        return _refused(user, held, state, exc, request.form.get("file") or None)
    notice = "Reply sent to the learner" + (
        ", and the new scores settle the result." if answered.changed else "; the scores stand as they were."
    )
    if request.form.get("then") == "next":
        return _then_next(user, notice)
    flash(notice, "good")
    return redirect(url_for("review.queue"))


@bp.get("/tasks/<int:task_id>/download")
@login_required_page
def download(task_id: int) -> Response | tuple[str, int]:
    """A learner's file as an attachment: never rendered on our origin, never sniffed as HTML."""
    user = _reviewer()
    try:
        held = review_queue.require_holder(db(), user, task_id)
    except Conflict as exc:
        return _conflict(exc, task_id)
    store = file_store(web().settings)
    portfolio_file = request.args.get("file", "")
    if portfolio_file:
        view = viewer.bundle(db(), user, held.submission_id)
        name, data = viewer.portfolio_download(store, view, portfolio_file)
        return attachment(data, name)
    path = request.args.get("path", "")
    if not path:
        raise InvalidInput("Say which file to download", details={"field": "path"})
    found, data = viewer.raw_file(db(), store, user, held.submission_id, path)
    shown = viewer.shown_path(viewer.bundle(db(), user, held.submission_id), found.path)
    return attachment(data, shown)


@bp.get("/tasks/<int:task_id>/picture")
@login_required_page
def picture(task_id: int) -> Response | tuple[str, int]:
    """A portfolio image or PDF page as the PNG this service encoded, for the task page's <img>.

    Only ever image/png bytes of our own encoder, never the upload; sniffing is off and the sandbox
    policy holds should the picture be opened as a page of its own."""
    user = _reviewer()
    try:
        held = review_queue.require_holder(db(), user, task_id)
    except Conflict as exc:
        return _conflict(exc, task_id)
    key = request.args.get("file", "")
    if not key:
        raise InvalidInput("Say which file of the portfolio to show", details={"field": "file"})
    raw_page = request.args.get("page", "")
    if raw_page and not (raw_page.isdigit() and len(raw_page) <= 4):
        raise InvalidInput("The page must be a page number from 1", details={"field": "page"})
    view = viewer.bundle(db(), user, held.submission_id)
    data = viewer.portfolio_picture(
        file_store(web().settings), view, key, int(raw_page) if raw_page else None
    )
    response = Response(data, mimetype="image/png")
    response.headers["Content-Disposition"] = 'inline; filename="picture.png"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def attachment(data: bytes, path: str) -> Response:
    name = path.rsplit("/", 1)[-1] or "file"
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "file"
    response = Response(data, mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name[:200], safe='')}"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Cache-Control"] = "private, no-store"
    return response


# ---------------------------------------------------------------- editing a submitted review


def _edit_page(
    user: User, row: ReviewRow, state: FormState | None, error: GraderError | None, status: int
) -> tuple[str, int]:
    result, submission, rubric = reviews.review_context(db(), row)
    bundle = viewer.bundle(db(), user, submission.id)
    saved = reviews.input_of(row)
    return _page(
        "review/edit.html",
        status,
        row=row,
        bundle=bundle,
        rubric=rubric,
        manual=_manual(rubric),
        state=state or state_from_input(saved, bundle),
        saved_state=state_from_input(saved, bundle),
        preview=_preview_for(result, saved),
        rubric_data=_rubric_data(rubric, _preview_for(result, saved)),
        error=error,
        error_text=in_words(error, rubric) if error else "",
        error_field=str(error.details.get("field", "")) if error else "",
        files=sorted(bundle.files, key=lambda f: f.shown_path),
        keys=KEYS,
    )


def _preview_for(result: Any, given: ReviewInput) -> reviews.Preview | None:
    try:
        return reviews.preview(db(), result, given)
    except InvalidInput:
        return None


@bp.get("/reviews/<int:review_id>/edit")
@login_required_page
def edit(review_id: int) -> tuple[str, int]:
    user = _reviewer()
    try:
        row = reviews.editable_review(db(), user, review_id)
    except Conflict as exc:
        return _page("review/conflict.html", 409, error=exc, task_id=None, kept="")
    return _edit_page(user, row, None, None, 200)


@bp.post("/reviews/<int:review_id>/edit")
@login_required_page
def save_edit(review_id: int) -> Response | tuple[str, int]:
    user = _reviewer()
    try:
        row = reviews.editable_review(db(), user, review_id)
    except Conflict as exc:
        return _page("review/conflict.html", 409, error=exc, task_id=None, kept="")
    _, submission, rubric = reviews.review_context(db(), row)
    bundle = viewer.bundle(db(), user, submission.id)
    state = state_from_form(request.form, rubric)
    try:
        reason = _limit(state.reason.strip(), reviews.MAX_REASON, "reason", "The reason for the change")
        if len(reason) < reviews.MIN_REASON:
            raise InvalidInput(
                f"Say why the review changes, in at least {reviews.MIN_REASON} characters",
                details={"field": "reason"},
            )
        given = input_from_state(state, rubric, bundle, complete=True)
        outcome = reviews.edit(db(), user, row.id, given, reason=reason)
    except GraderError as exc:
        db().rollback()
        return _edit_page(user, row, state, exc, exc.http_status)
    flash(
        f"Saved as version {row.version + 1}. "
        + _outcome_words(outcome).replace("Review submitted", "The result"),
        "good",
    )
    return redirect(url_for("review.queue"))


# ---------------------------------------------------------------- the comment bank


def _bank_page(
    user: User, rubric_slug: str, *, error: GraderError | None = None, kept: dict[str, str] | None = None
) -> tuple[str, int]:
    reviews.require_bank_access(db(), user, rubric_slug)
    query = request.args.get("q", "")[:200]
    return _page(
        "review/bank.html",
        error.http_status if error else 200,
        rubric_slug=rubric_slug,
        entries=reviews.comment_bank(db(), rubric_slug, search=query),
        criteria=reviews.bank_criteria(db(), rubric_slug),
        query=query,
        error=error,
        error_field=str(error.details.get("field", "")) if error else "",
        kept=kept or {},
        back=_safe_back(request.values.get("next", "")),
    )


def _safe_back(target: str) -> str | None:
    """Only back to a review page of ours."""
    if target.startswith("/review/") and not re.search(r"[\\\s]|//", target):
        return target
    return None


@bp.get("/comment-bank/<rubric_slug>")
@login_required_page
def bank(rubric_slug: str) -> tuple[str, int]:
    return _bank_page(_reviewer(), rubric_slug)


@bp.post("/comment-bank/<rubric_slug>")
@login_required_page
def bank_add(rubric_slug: str) -> Response | tuple[str, int]:
    user = _reviewer()
    text = request.form.get("text", "")
    criterion = request.form.get("criterion", "") or None
    try:
        if not text.strip():
            raise InvalidInput("Write the comment to add to the bank", details={"field": "text"})
        _limit(text.strip(), reviews.MAX_REASON, "text", "The comment")
        reviews.add_to_bank(db(), user, rubric_slug, text, criterion)
    except (InvalidInput, PermissionDenied, NotFound) as exc:
        db().rollback()
        if not isinstance(exc, InvalidInput):
            raise
        return _bank_page(user, rubric_slug, error=exc, kept={"new": text, "criterion": criterion or ""})
    flash("Added to the comment bank.", "good")
    back = _safe_back(request.form.get("next", ""))
    return redirect(url_for("review.bank", rubric_slug=rubric_slug, next=back))


@bp.post("/comment-bank/entries/<int:entry_id>")
@login_required_page
def bank_edit(entry_id: int) -> Response | tuple[str, int]:
    user = _reviewer()
    entry = reviews.bank_entry(db(), user, entry_id)
    slug = entry.rubric_slug
    text = request.form.get("text", "")
    try:
        if not text.strip():
            raise InvalidInput(
                "The comment is empty: write its new text", details={"field": f"entry-{entry_id}"}
            )
        _limit(text.strip(), reviews.MAX_REASON, f"entry-{entry_id}", "The comment")
        reviews.edit_bank_entry(db(), user, entry_id, text)
    except InvalidInput as exc:
        db().rollback()
        exc.details["field"] = f"entry-{entry_id}"
        return _bank_page(user, slug, error=exc, kept={f"entry-{entry_id}": text})
    flash("Comment saved.", "good")
    back = _safe_back(request.form.get("next", ""))
    return redirect(url_for("review.bank", rubric_slug=slug, next=back))


@bp.post("/comment-bank/entries/<int:entry_id>/use")
@login_required_page
def bank_use(entry_id: int) -> Response:
    """Count one use of a bank comment; review.js calls it when it inserts the comment itself."""
    user = _reviewer()
    text = reviews.use_bank_entry(db(), entry_id, user)
    entry = reviews.bank_entry(db(), user, entry_id)
    if request.accept_mimetypes.best == "application/json" or request.is_json:
        return jsonify({"id": entry_id, "text": text, "uses": entry.uses})
    back = _safe_back(request.form.get("next", ""))
    return redirect(back or url_for("review.bank", rubric_slug=entry.rubric_slug))
