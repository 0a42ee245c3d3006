"""Staff pages (/staff): accounts and roles, enrolment, catalog status, queue health, regrades, the
gradebook and agreement statistics.

Thin views over `grader.services.staff` and `grader.services.agreement`: they turn form fields into
service calls, and a refused call into the same page again, with what was typed kept, the field
named in words and the error's real status (400, 403, 404, 409, 413). Every page narrows to the
programs the user runs; someone who runs none gets 403. Pages that show a password (generated at
enrolment) or carry an import file are never cached.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Response, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from grader.errors import CatalogError, GraderError, InvalidInput, PayloadTooLarge
from grader.models import Role, StaffRole
from grader.services import access, agreement, staff
from grader.web.auth import page_user
from grader.web.context import db, web

bp = Blueprint("staff", __name__, url_prefix="/staff")

# Form fields as a person names them, for messages that say which part of a form is wrong.
FIELDS_IN_WORDS = {
    "email": "the email address",
    "name": "the name",
    "password": "the password",
    "role": "the role",
    "active": "the account's state",
    "file": "the file",
    "reason": "the reason",
    "confirm": "the confirmation",
    "status": "the status",
    "requirement": "the requirement",
    "program": "the program",
    "assessment": "the assessment",
    "user": "the account",
    "run": "the grading run",
}
NO_STORE = {"Cache-Control": "no-store"}

Page = tuple[str, int] | tuple[str, int, Mapping[str, str]]


@bp.before_request
def _staff_only() -> BaseResponse | None:
    """Log in first; then staff only (admins, or staff of some program)."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    access.staff_scope(db(), page_user())
    return None


@bp.app_template_filter("percent")
def percent(fraction: float | None) -> str:
    return staff.percent(fraction)


@bp.app_template_filter("status_words")
def status_words(status: str | None) -> str:
    return staff.STATUS_WORDS.get(status or "", (status or "").replace("_", " "))


def _error_context(error: GraderError | None) -> dict[str, Any]:
    if error is None:
        return {"error": None, "error_field": None, "error_text": ""}
    field = str(error.details.get("field", "")) if error.details else ""
    words = FIELDS_IN_WORDS.get(field.split("[")[0].split(".")[0], "")
    text = f"{words[0].upper()}{words[1:]}: {error.message}" if words else error.message
    return {"error": error, "error_field": field or None, "error_text": text}


def _render(
    template: str, *, error: GraderError | None = None, http_status: int | None = None, **context: Any
) -> Page:
    code = http_status or (error.http_status if error is not None else 200)
    return render_template(template, **_error_context(error), **context), code


def _attempt(action: Callable[[], Any]) -> tuple[Any, GraderError | None]:
    """Run a service call; a refusal comes back as the error, after the request's changes are undone."""
    try:
        return action(), None
    except GraderError as exc:
        db().rollback()
        return None, exc


def _no_store(body: str, status: int = 200) -> Response:
    response = make_response(body, status)
    response.headers.update(NO_STORE)
    return response


# ---------------------------------------------------------------- the workspace


@bp.get("")
def home() -> Page:
    user = page_user()
    return _render(
        "staff/home.html",
        programs=staff.programs_run_by(db(), user),
        admin=user.role == Role.ADMIN,
    )


# ---------------------------------------------------------------- accounts and roles (admins)


def _accounts_page(form: Mapping[str, str] | None = None, error: GraderError | None = None) -> Page:
    user = page_user()
    access.require_admin(user)
    search = request.args.get("q", "")[:200]
    role = request.args.get("role", "")
    if role not in ("", *[r.value for r in Role]):
        role = ""
    raw_page = request.args.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 10_000 else 1
    listing = staff.list_accounts(db(), user, search=search, role=role, offset=(page - 1) * staff.PAGE_SIZE)
    return _render(
        "staff/accounts.html",
        error=error,
        listing=listing,
        search=search,
        role=role,
        page=page,
        roles=[r.value for r in Role],
        form=form or {},
    )


@bp.get("/accounts")
def accounts_list() -> Page:
    return _accounts_page()


@bp.post("/accounts")
def create_account() -> Page | BaseResponse:
    user = page_user()
    access.require_admin(user)
    form = request.form
    created, error = _attempt(
        lambda: staff.create_account(
            db(),
            user,
            email=form.get("email", ""),
            name=form.get("name", ""),
            role=form.get("role", ""),
            password=form.get("password", ""),
        )
    )
    if error is not None:
        kept = {k: form.get(k, "") for k in ("email", "name", "role")}  # never the password
        return _accounts_page(kept, error)
    flash(f"Account created for {created.email} ({created.role}).", "good")
    return redirect(url_for("staff.account", user_id=created.id))


def _account_page(
    user_id: int, error: GraderError | None = None, form: Mapping[str, str] | None = None
) -> Page:
    user = page_user()
    detail = staff.account_detail(db(), user, user_id)
    return _render(
        "staff/account.html",
        error=error,
        detail=detail,
        roles=[r.value for r in Role],
        staff_roles=[r.value for r in StaffRole],
        programs=agreement.programs_for_filter(db(), user),
        form=form or {},
        is_self=detail.account.id == user.id,
    )


@bp.get("/accounts/<int:user_id>")
def account(user_id: int) -> Page:
    return _account_page(user_id)


@bp.post("/accounts/<int:user_id>/role")
def change_role(user_id: int) -> Page | BaseResponse:
    user = page_user()
    changed, error = _attempt(lambda: staff.change_role(db(), user, user_id, request.form.get("role", "")))
    if error is not None:
        return _account_page(user_id, error)
    flash(f"{changed.email} is now {changed.role}.", "good")
    return redirect(url_for("staff.account", user_id=user_id))


@bp.post("/accounts/<int:user_id>/active")
def set_active(user_id: int) -> Page | BaseResponse:
    user = page_user()
    wanted = request.form.get("active", "")
    if wanted not in ("0", "1"):
        return _account_page(
            user_id, InvalidInput("choose activate or deactivate", details={"field": "active"})
        )
    changed, error = _attempt(lambda: staff.set_active(db(), user, user_id, wanted == "1"))
    if error is not None:
        return _account_page(user_id, error)
    state = "active again" if changed.active else "deactivated: their sessions have ended"
    flash(f"{changed.email} is {state}.", "good")
    return redirect(url_for("staff.account", user_id=user_id))


@bp.post("/accounts/<int:user_id>/tokens/revoke")
def revoke_account_tokens(user_id: int) -> Page | BaseResponse:
    user = page_user()
    access.require_admin(user)
    count, error = _attempt(lambda: staff.revoke_tokens(db(), user, user_id))
    if error is not None:
        return _account_page(user_id, error)
    flash(_revoked_words(count), "good")
    return redirect(url_for("staff.account", user_id=user_id))


def _revoked_words(count: int) -> str:
    if count == 0:
        return "There were no live API tokens to revoke."
    return f"{count} API token{'s' if count != 1 else ''} revoked."


@bp.post("/accounts/<int:user_id>/programs")
def add_program_role(user_id: int) -> Page | BaseResponse:
    user = page_user()
    access.require_admin(user)
    form = request.form

    def add() -> staff.TeamMember:
        target = staff.account_detail(db(), user, user_id).account
        return staff.add_program_staff(
            db(), user, form.get("program", ""), target.email, form.get("role", "")
        )

    member, error = _attempt(add)
    if error is not None:
        return _account_page(user_id, error, {k: form.get(k, "") for k in ("program", "role")})
    flash(f"{member.email} is now {member.role} of {form.get('program', '')}.", "good")
    return redirect(url_for("staff.account", user_id=user_id))


@bp.post("/accounts/<int:user_id>/programs/<slug>/remove")
def remove_program_role(user_id: int, slug: str) -> Page | BaseResponse:
    user = page_user()
    access.require_admin(user)
    _, error = _attempt(lambda: staff.remove_program_staff(db(), user, slug, user_id))
    if error is not None:
        return _account_page(user_id, error)
    flash(f"Removed from the team of {slug}.", "good")
    return redirect(url_for("staff.account", user_id=user_id))


# ---------------------------------------------------------------- enrolment and the program's team


def _enrolments_page(
    slug: str, error: GraderError | None = None, form: Mapping[str, str] | None = None, **extra: Any
) -> Page:
    user = page_user()
    learners = staff.enrolled_learners(db(), user, slug)
    program = access.program_by_slug(db(), slug)
    return _render(
        "staff/enrolments.html",
        error=error,
        program=program,
        learners=learners,
        team=staff.program_team(db(), user, slug),
        staff_roles=[r.value for r in StaffRole],
        form=form or {},
        max_import=staff.MAX_IMPORT_BYTES,
        max_rows=staff.MAX_IMPORT_ROWS,
        **extra,
    )


@bp.get("/programs/<slug>")
def program(slug: str) -> BaseResponse:
    access.require_staff_of(db(), page_user(), access.program_by_slug(db(), slug))
    return redirect(url_for("staff.enrolments", slug=slug))


@bp.get("/programs/<slug>/enrolments")
def enrolments(slug: str) -> Page:
    return _enrolments_page(slug)


@bp.post("/programs/<slug>/enrolments")
def enrol(slug: str) -> Page | Response:
    user = page_user()
    form = request.form
    enrolled, error = _attempt(
        lambda: staff.enrol(db(), user, slug, form.get("email", ""), form.get("name", ""))
    )
    if error is not None:
        return _enrolments_page(slug, error, {k: form.get(k, "") for k in ("email", "name")})
    db().commit()
    program = access.program_by_slug(db(), slug)
    # Rendered, not redirected: a generated password is shown once and never stored anywhere.
    return _no_store(
        render_template("staff/enrolled.html", program=program, enrolled=[enrolled], preview=None)
    )


def _upload(limit: int) -> bytes:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidInput("choose a CSV file to import", details={"field": "file"})
    # Read one byte past the cap: a larger file is refused without being held in memory.
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(
            f"the file is larger than {limit // 1024} KB; split it into smaller files",
            details={"field": "file", "limit_bytes": limit},
        )
    return data


@bp.post("/programs/<slug>/enrolments/import")
def import_preview(slug: str) -> Page | Response:
    user = page_user()
    data = b""

    def preview() -> staff.ImportPreview:
        nonlocal data
        data = _upload(staff.MAX_IMPORT_BYTES)
        return staff.preview_import(db(), user, slug, data)

    shown, error = _attempt(preview)
    if error is not None:
        return _enrolments_page(slug, error, import_error=True)
    body = render_template(
        "staff/import_preview.html",
        preview=shown,
        carried=base64.b64encode(data).decode(),
        **_error_context(None),
    )
    return _no_store(body)


@bp.post("/programs/<slug>/enrolments/import/confirm")
def import_confirm(slug: str) -> Page | Response:
    user = page_user()
    form = request.form

    def apply() -> staff.ImportOutcome:
        try:
            data = base64.b64decode(form.get("file", ""), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(
                "the previewed file did not come back whole: upload it again", details={"field": "file"}
            ) from None
        return staff.apply_import(db(), user, slug, data, form.get("digest", ""))

    outcome, error = _attempt(apply)
    if error is not None:
        return _enrolments_page(slug, error, import_error=True)
    db().commit()
    program = access.program_by_slug(db(), slug)
    body = render_template(
        "staff/enrolled.html", program=program, enrolled=list(outcome.enrolled), preview=outcome.preview
    )
    return _no_store(body)


@bp.post("/programs/<slug>/team")
def add_team_member(slug: str) -> Page | BaseResponse:
    user = page_user()
    form = request.form
    member, error = _attempt(
        lambda: staff.add_program_staff(db(), user, slug, form.get("email", ""), form.get("role", ""))
    )
    if error is not None:
        kept = {"team_email": form.get("email", ""), "team_role": form.get("role", "")}
        return _enrolments_page(slug, error, kept, team_error=True)
    flash(f"{member.email} is now {member.role} of this program.", "good")
    return redirect(url_for("staff.enrolments", slug=slug) + "#team")


@bp.post("/programs/<slug>/team/<int:user_id>/remove")
def remove_team_member(slug: str, user_id: int) -> Page | BaseResponse:
    user = page_user()
    _, error = _attempt(lambda: staff.remove_program_staff(db(), user, slug, user_id))
    if error is not None:
        return _enrolments_page(slug, error, team_error=True)
    flash("Removed from the program's team.", "good")
    return redirect(url_for("staff.enrolments", slug=slug) + "#team")


@bp.post("/programs/<slug>/learners/<int:user_id>/tokens/revoke")
def revoke_learner_tokens(slug: str, user_id: int) -> Page | BaseResponse:
    user = page_user()
    access.require_staff_of(db(), user, access.program_by_slug(db(), slug))
    count, error = _attempt(lambda: staff.revoke_tokens(db(), user, user_id))
    if error is not None:
        return _enrolments_page(slug, error)
    flash(_revoked_words(count), "good")
    return redirect(url_for("staff.enrolments", slug=slug) + "#learners")


# ---------------------------------------------------------------- the gradebook


@bp.get("/programs/<slug>/gradebook")
def gradebook(slug: str) -> Page | Response:
    user = page_user()
    status = request.args.get("status") or None
    requirement = request.args.get("requirement") or None
    book, error = _attempt(lambda: staff.gradebook(db(), user, slug, status=status, requirement=requirement))
    if error is not None:
        if error.details.get("field") not in ("status", "requirement"):
            raise error
        book = staff.gradebook(db(), user, slug)
    if request.args.get("format") == "csv" and error is None:
        response = make_response(staff.gradebook_csv(book))
        response.mimetype = "text/csv"
        response.headers["Content-Disposition"] = f'attachment; filename="gradebook-{book.program}.csv"'
        return response
    return _render(
        "staff/gradebook.html",
        error=error,
        book=book,
        statuses=staff.GRADEBOOK_STATUSES,
        status=status,
        requirement=requirement,
    )


# ---------------------------------------------------------------- catalog status


def _catalog_page(error: GraderError | None = None, report: Any = None) -> Page:
    user = page_user()
    path = web().settings.catalog_path
    return _render(
        "staff/catalog.html",
        error=error,
        assessments=staff.catalog_status(db(), user),
        admin=user.role == Role.ADMIN,
        command=staff.load_command(path),
        path=path,
        report=report,
        problems=error.details.get("problems", []) if isinstance(error, CatalogError) else [],
    )


@bp.get("/catalog")
def catalog() -> Page:
    return _catalog_page()


@bp.post("/catalog/load")
def load_catalog() -> Page:
    user = page_user()
    access.require_admin(user)
    report, error = _attempt(lambda: staff.load_catalog_folder(db(), user, web().settings.catalog_path))
    if error is None:
        db().commit()
    return _catalog_page(error, report)


# ---------------------------------------------------------------- queue health, retries, regrades


def _queues_page(error: GraderError | None = None) -> Page:
    return _render("staff/queues.html", error=error, health=staff.queue_health(db(), page_user()))


@bp.get("/queues")
def queues() -> Page:
    return _queues_page()


@bp.post("/runs/<run_id>/retry")
def retry_run(run_id: str) -> Page | BaseResponse:
    user = page_user()
    run, error = _attempt(
        lambda: staff.retry_run(db(), web().queue, user, run_id, request.form.get("reason", ""))
    )
    if error is not None:
        return _queues_page(error)
    flash(f"Submission {run.submission_id[:8]} is queued for grading again.", "good")
    return redirect(url_for("staff.queues"))


def _regrade_page(slug: str, error: GraderError | None = None, form: Mapping[str, str] | None = None) -> Page:
    only_latest = (form or request.args).get("only_latest") == "1"
    preview = staff.regrade_preview(db(), page_user(), slug, only_latest=only_latest)
    return _render("staff/regrade.html", error=error, preview=preview, form=form or {}, report=None)


@bp.get("/regrade")
def regrade_pick() -> BaseResponse:
    """The queue page's picker: on to the chosen assessment's regrade preview."""
    slug = request.args.get("assessment", "").strip()
    if not slug or len(slug) > 100:
        raise InvalidInput("choose an assessment to regrade", details={"field": "assessment"})
    return redirect(url_for("staff.regrade_preview", slug=slug))


@bp.get("/assessments/<slug>/regrade")
def regrade_preview(slug: str) -> Page:
    return _regrade_page(slug)


@bp.post("/assessments/<slug>/regrade")
def regrade(slug: str) -> Page:
    user = page_user()
    form = request.form
    report, error = _attempt(
        lambda: staff.regrade_assessment(
            db(),
            web().queue,
            user,
            slug,
            reason=form.get("reason", ""),
            only_latest=form.get("only_latest") == "1",
            confirmed=form.get("confirm") == "yes",
        )
    )
    if error is not None:
        return _regrade_page(slug, error, {k: form.get(k, "") for k in ("reason", "only_latest", "confirm")})
    preview = staff.regrade_preview(db(), user, slug, only_latest=form.get("only_latest") == "1")
    return _render("staff/regrade.html", preview=preview, form={}, report=report)


# ---------------------------------------------------------------- agreement statistics


@bp.get("/agreement")
def agreement_page() -> Page:
    user = page_user()
    program = request.args.get("program") or None
    assessment = request.args.get("assessment") or None
    stats = agreement.report(db(), user, program=program, assessment=assessment)
    return _render(
        "staff/agreement.html",
        stats=stats,
        programs=agreement.programs_for_filter(db(), user),
        program=program,
        assessment=assessment,
        min_pairs=agreement.MIN_PAIRS,
    )
