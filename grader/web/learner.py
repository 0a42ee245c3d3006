"""Learner pages: programs and progress, taking a quiz, and following a submission to its result."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from grader.errors import GraderError, PayloadTooLarge
from grader.services import queries, submissions
from grader.web.auth import login_required_page, page_user
from grader.web.context import db, web

bp = Blueprint("learner", __name__)


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
    return render_template("program.html", progress=queries.learner_progress(db(), page_user(), slug))


@bp.post("/assessments/<slug>/attempts")
@login_required_page
def start_attempt(slug: str) -> Response:
    view = submissions.start_quiz_attempt(db(), web().settings, page_user(), slug)
    return redirect(url_for("learner.attempt", attempt_id=view["id"]))


@bp.route("/attempts/<attempt_id>", methods=["GET", "POST"])
@login_required_page
def attempt(attempt_id: str) -> str | Response:
    user = page_user()
    view = submissions.open_attempt_view(db(), user, attempt_id)
    error: GraderError | None = None
    if request.method == "POST":
        answers = _answers_from_form(view["questions"])
        try:
            accepted = submissions.submit(
                db(),
                web().queue,
                web().settings,
                user,
                submissions.SubmissionRequest(
                    assessment=view["assessment"], answers=answers, attempt_id=attempt_id
                ),
            )
        except GraderError as exc:
            error = exc
        else:
            return redirect(url_for("learner.submission", submission_id=accepted.submission_id))
    return render_template("attempt.html", attempt=view, error=error, form=request.form)


def _answers_from_form(questions: list[dict[str, Any]]) -> dict[str, Any]:
    """Form fields to the API's answer shapes; unanswered questions are left out."""
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
            answers[question["id"]] = raw == "true"
        elif kind == "numeric":
            try:
                answers[question["id"]] = float(raw.replace(",", "."))
            except ValueError:
                answers[question["id"]] = raw  # the service rejects it with the field named
        else:
            answers[question["id"]] = raw
    return answers


@bp.route("/assessments/<slug>/submit", methods=["GET", "POST"])
@login_required_page
def submit_repository(slug: str) -> str | Response:
    """A repository hand-in: a git URL (and optional branch, tag or commit) or an archive upload."""
    user = page_user()
    assessment = submissions.assessment_summary(db(), slug)
    error: GraderError | None = None
    if request.method == "POST":
        upload = request.files.get("archive")
        git_url = request.form.get("git_url", "").strip() or None
        limit = web().settings.max_archive_bytes
        archive = upload.stream.read(limit + 1) if upload is not None and upload.filename else None
        try:
            if archive is not None and len(archive) > limit:
                raise PayloadTooLarge(
                    f"the archive is larger than {limit} bytes", details={"field": "archive"}
                )
            accepted = submissions.submit(
                db(),
                web().queue,
                web().settings,
                user,
                submissions.SubmissionRequest(
                    assessment=slug,
                    git_url=git_url,
                    ref=request.form.get("ref", "").strip() or None,
                    archive=archive,
                    archive_name=upload.filename if upload is not None and upload.filename else "upload",
                ),
            )
        except GraderError as exc:
            error = exc
        else:
            return redirect(url_for("learner.submission", submission_id=accepted.submission_id))
    return render_template("submit_repository.html", assessment=assessment, error=error, form=request.form)


@bp.get("/submissions/<submission_id>")
@login_required_page
def submission(submission_id: str) -> str:
    view = queries.submission_view(db(), page_user(), submission_id)
    return render_template("submission.html", submission=view)
