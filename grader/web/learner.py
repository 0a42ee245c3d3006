"""Learner pages: programs and progress, taking a quiz, handing in a repository, and following a
submission to its result, its review and its regrade requests.

Pages are thin: the services decide, these views turn form fields into service calls and errors into
the same page again, with what was typed kept, the field named in words and the error's real status
(400, 403, 409, 429). Everything works with JavaScript off; `static/learner.js` only adds a countdown,
live status and a confirm dialog on top.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from grader.errors import (
    AttemptsExhausted,
    GraderError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
)
from grader.kinds.base import SubmissionRequest
from grader.quiz import answer_problem_in_words
from grader.services import queries, submissions
from grader.storage import file_store
from grader.web import portfolio as portfolio_pages
from grader.web.auth import login_required_page, page_user
from grader.web.context import db, web
from grader.web.templating import human_bytes

bp = Blueprint("learner", __name__)

PageResult = str | tuple[str, int] | tuple[str, int, dict[str, str]]

# Form fields as a person names them, for messages that say which part of a form is wrong.
FIELDS_IN_WORDS = {
    "assessment": "the assessment",
    "archive": "the archive",
    "git_url": "the git URL",
    "ref": "the branch, tag or commit",
    "attempt": "the quiz attempt",
    "criterion": "the criterion",
    "reason": "the reason",
    "submission": "the submission",
    "body": "the form",
}


# ---------------------------------------------------------------- filters for the learner's templates


@bp.app_template_filter("duration")
def duration(seconds: float | int | None) -> str:
    """60 seconds, 5 minutes, 1 hour 30 minutes."""
    return "" if seconds is None else queries.seconds_in_words(float(seconds))


@bp.app_template_filter("from_now")
def from_now(moment: datetime | str | None) -> str:
    """'in 5 minutes' or '5 minutes ago': the server's words, which a page keeps without JavaScript."""
    if moment is None:
        return ""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    seconds = (value - datetime.now(UTC)).total_seconds()
    if abs(seconds) < 30:
        return "now"
    words = queries.seconds_in_words(abs(seconds))
    return f"in {words}" if seconds > 0 else f"{words} ago"


@bp.app_template_filter("iso")
def iso(moment: datetime | str | None) -> str:
    """A moment as ISO 8601 in UTC, for `<time datetime>` and the scripts' countdowns."""
    if moment is None:
        return ""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@bp.app_template_filter("field_in_words")
def field_in_words(field: str | None) -> str:
    if not field:
        return ""
    if field.startswith("answers."):
        return "one of the answers"
    return FIELDS_IN_WORDS.get(field, "")


@bp.app_template_filter("why_blocked")
def why_blocked(availability: submissions.Availability) -> str:
    """Why an assessment cannot be started or handed in now, in a sentence."""
    blocked = availability.blocked
    if blocked is None:
        return ""
    if isinstance(blocked, AttemptsExhausted):
        return f"All {availability.max_attempts} attempts are used."
    if isinstance(blocked, RateLimited):
        if availability.cooldown_seconds and "wait" in blocked.message:
            return f"There is a wait of {duration(availability.cooldown_seconds)} between attempts."
        return "You have reached the number of attempts allowed in an hour."
    return _sentence(blocked.message)


def _status(exc: GraderError) -> tuple[int, dict[str, str]]:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else {}
    return exc.http_status, headers


# ---------------------------------------------------------------- programs


@bp.get("/")
@login_required_page
def home() -> str:
    user = page_user()
    return render_template(
        "home.html",
        programs=queries.learner_programs(db(), user),
        submissions=queries.learner_submissions(db(), user, limit=10),
    )


@bp.get("/programs/<slug>")
@login_required_page
def program(slug: str) -> str:
    page = queries.program_page(db(), web().settings, page_user(), slug)
    return render_template("program.html", progress=page.progress, rows=page.rows)


# ---------------------------------------------------------------- quizzes


@bp.post("/assessments/<slug>/attempts")
@login_required_page
def start_attempt(slug: str) -> BaseResponse:
    view = submissions.start_quiz_attempt(db(), web().settings, page_user(), slug)
    return redirect(url_for("learner.attempt", attempt_id=view["id"]))


@bp.route("/attempts/<attempt_id>", methods=["GET", "POST"])
@login_required_page
def attempt(attempt_id: str) -> PageResult | BaseResponse:
    user = page_user()
    view = submissions.open_attempt_view(db(), user, attempt_id)
    error: str | None = None
    error_question: str | None = None
    unanswered: list[dict[str, Any]] = []
    status: int = 200
    headers: dict[str, str] = {}
    if request.method == "POST" and not view["submitted"]:
        answers = _answers_from_form(view["questions"])
        unanswered = [q for q in view["questions"] if q["id"] not in answers]
        try:
            if unanswered and not request.form.get("confirm_unanswered"):
                # Asked first, on the server: the page works the same with JavaScript off. The
                # answers given are checked before, so the question is not asked twice.
                submissions.check_attempt_answers(db(), user, attempt_id, answers)
                return render_template(
                    "attempt.html", attempt=view, form=request.form, unanswered=unanswered, confirm=True
                )
            accepted = submissions.submit(
                db(),
                web().queue,
                web().settings,
                user,
                SubmissionRequest(assessment=view["assessment"], answers=answers, attempt_id=attempt_id),
            )
        except GraderError as exc:
            error, error_question = _answer_error(exc, view["questions"])
            status, headers = _status(exc)
        else:
            return redirect(url_for("learner.submission", submission_id=accepted.submission_id))
    page = render_template(
        "attempt.html",
        attempt=view,
        form=request.form,
        error=error,
        error_question=error_question,
        unanswered=[],
        confirm=False,
    )
    return page, status, headers


def _answer_error(exc: GraderError, questions: list[dict[str, Any]]) -> tuple[str, str | None]:
    """The message of a refused hand-in, naming the question by its text where one is at fault."""
    field = str(exc.details.get("field", ""))
    if isinstance(exc, InvalidInput) and field.startswith("answers."):
        question = next((q for q in questions if q["id"] == field.removeprefix("answers.")), None)
        if question is not None:
            return answer_problem_in_words(question), question["id"]
    return _sentence(exc.message), None


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith((".", "!", "?")) else ".")


def _answers_from_form(questions: list[dict[str, Any]]) -> dict[str, Any]:
    """Form fields to the API's answer shapes; unanswered questions are left out. A value that does
    not fit its question is passed on as typed, for the service to refuse with the question named."""
    answers: dict[str, Any] = {}
    for question in questions:
        name = f"q_{question['id']}"
        kind = question["type"]
        if kind == "multiple_choice":
            picked = request.form.getlist(name)
            if picked:
                answers[question["id"]] = picked
            continue
        raw = request.form.get(name, "").strip()
        if not raw:
            continue
        if kind == "true_false":
            answers[question["id"]] = {"true": True, "false": False}.get(raw, raw)
        elif kind == "numeric":
            try:
                answers[question["id"]] = float(raw.replace(",", "."))
            except ValueError:
                answers[question["id"]] = raw
        else:
            answers[question["id"]] = raw
    return answers


# ---------------------------------------------------------------- repositories


@bp.route("/assessments/<slug>/submit", methods=["GET", "POST"])
@login_required_page
def submit_repository(slug: str) -> PageResult | BaseResponse:
    """A repository hand-in: a git URL (and optional branch, tag or commit) or an archive upload."""
    user = page_user()
    assessment = submissions.assessment_summary(db(), slug)
    if assessment["kind"] != "repository":
        # Quizzes are taken from the program page; there is no hand-in page for them.
        raise NotFound(f"{assessment['title']} is not handed in as a repository")
    submissions.check_enrolled(db(), user, slug)
    error: GraderError | None = None
    status: int = 200
    headers: dict[str, str] = {}
    if request.method == "POST":
        try:
            accepted = submissions.submit(db(), web().queue, web().settings, user, _repository_request(slug))
        except GraderError as exc:
            error = exc
            status, headers = _status(exc)
        else:
            return redirect(url_for("learner.submission", submission_id=accepted.submission_id))
    page = render_template(
        "submit_repository.html",
        assessment=assessment,
        availability=submissions.availability(db(), web().settings, user, slug),
        max_archive_bytes=_archive_limit(),
        error=error,
        error_message=_sentence(error.message) if error is not None else None,
        error_field=str(error.details.get("field", "")) if error is not None else "",
        form=request.form,
    )
    return page, status, headers


def _archive_limit() -> int:
    """The largest archive a page can take: the archive cap, or the request cap when that is lower."""
    settings = web().settings
    return min(settings.max_archive_bytes, settings.max_request_bytes)


def _repository_request(slug: str) -> SubmissionRequest:
    upload = request.files.get("archive")
    has_archive = upload is not None and bool(upload.filename)
    git_url = request.form.get("git_url", "").strip() or None
    if has_archive == (git_url is not None):
        raise InvalidInput(
            "give either the HTTPS URL of a git repository or an archive to upload, not both"
            if has_archive
            else "give the HTTPS URL of a git repository, or choose an archive to upload",
            details={"field": "git_url"},
        )
    archive = None
    if upload is not None and has_archive:
        limit = _archive_limit()
        # Read at most one byte past the cap: a larger upload is refused without being held in memory.
        archive = upload.stream.read(limit + 1)
        if len(archive) > limit:
            raise PayloadTooLarge(
                f"the archive is larger than the limit of {human_bytes(limit)}",
                details={"field": "archive", "limit_bytes": limit},
            )
    ref = request.form.get("ref", "").strip() or None
    return SubmissionRequest(
        assessment=slug,
        git_url=git_url,
        ref=ref if git_url is not None else None,
        archive=archive,
        archive_name=upload.filename if upload is not None and upload.filename else "upload",
    )


@bp.get("/assessments/<slug>/starter.zip")
@login_required_page
def starter(slug: str) -> Response:
    """The assessment's starter code: an attachment, never rendered on our origin."""
    filename, data = queries.starter_zip(db(), page_user(), slug)
    return Response(
        data,
        mimetype="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private, no-store",
        },
    )


# ---------------------------------------------------------------- submissions, results, regrades


@bp.get("/submissions/<submission_id>")
@login_required_page
def submission(submission_id: str) -> PageResult:
    return _submission_page(submission_id)


def _submission_page(
    submission_id: str,
    *,
    regrade_error: GraderError | None = None,
    regrade_criterion: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> PageResult:
    page = queries.submission_page(db(), file_store(web().settings), page_user(), submission_id)
    html = render_template(
        "submission.html",
        submission=page.view,
        page=page,
        regrade_error=_sentence(regrade_error.message) if regrade_error is not None else None,
        regrade_error_field=str(regrade_error.details.get("field", "")) if regrade_error else "",
        regrade_criterion=regrade_criterion,
        form=request.form,
        portfolio_receipt=portfolio_pages.page_receipt(page_user(), submission_id, page.view["kind"]),
    )
    return html, status, headers or {}


@bp.get("/submissions/<submission_id>/status.json")
@login_required_page
def submission_status(submission_id: str) -> Response | tuple[Response, int]:
    """What the result page polls while grading runs (session login; the API has its own route)."""
    try:
        wait = queries.parse_wait(request.args.get("wait"))
        if wait:
            queries.await_result(db(), page_user(), submission_id, wait, signal=web().signal)
        view = queries.status_view(db(), page_user(), submission_id)
    except GraderError as exc:
        # The JSON envelope here too: a script reads this, not a person.
        return jsonify({"error": exc.to_dict()}), exc.http_status
    response = jsonify(view)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/submissions/<submission_id>/regrade-requests")
@login_required_page
def request_regrade(submission_id: str) -> PageResult | BaseResponse:
    criterion = request.form.get("criterion", "")
    try:
        queries.ask_regrade(db(), page_user(), submission_id, criterion, request.form.get("reason", ""))
    except GraderError as exc:
        status, headers = _status(exc)
        if exc.http_status == 404:
            raise
        return _submission_page(
            submission_id, regrade_error=exc, regrade_criterion=criterion, status=status, headers=headers
        )
    flash("Your regrade request was sent to a reviewer. Their answer will show here.", "good")
    return redirect(url_for("learner.submission", submission_id=submission_id, _anchor="regrades"))
