"""JSON API for staff (/api/v1/staff...): accounts, program teams, enrolment, the gradebook, queue
health, retries and regrades, catalog status and agreement statistics.

Bearer-token authenticated; everyone who runs no program (learners, reviewers who are not staff) is
refused with 403, and each route narrows to the caller's programs as the pages do. Input is checked
here for shape (unknown fields and parameters are refused, naming `details.field`); the services in
`grader.services.staff` and `grader.services.agreement` decide everything else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Response, jsonify, make_response, request, url_for

from grader.errors import InvalidInput, PayloadTooLarge
from grader.services import access, agreement, staff
from grader.web.auth import api_user, csrf
from grader.web.context import db, web

bp = Blueprint("api_staff", __name__, url_prefix="/api/v1/staff")
csrf.exempt(bp)  # token-authenticated, like the rest of the API


@bp.before_request
def _staff_only() -> None:
    access.staff_scope(db(), api_user())


def _json_body(allowed: Iterable[str]) -> dict[str, Any]:
    if not request.is_json:
        raise InvalidInput("send a JSON body with Content-Type: application/json", details={"field": "body"})
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", details={"field": "body"})
    unknown = set(data) - set(allowed)
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidInput(f"unknown field {name!r}", details={"field": name})
    return data


def _text(data: dict[str, Any], name: str, *, required: bool = True, limit: int = 1000) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise InvalidInput(
            f"{name!r} must be {'non-empty ' if required else ''}text of at most {limit} characters",
            details={"field": name},
        )
    return value


def _params(allowed: Iterable[str]) -> None:
    unknown = set(request.args) - set(allowed)
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidInput(f"unknown parameter {name!r}", details={"field": name})


def _flag(name: str) -> bool:
    value = request.args.get(name, "0")
    if value not in ("0", "1", "true", "false"):
        raise InvalidInput(f"{name} must be 1 or 0", details={"field": name})
    return value in ("1", "true")


def _number(name: str, default: int, *, low: int, high: int) -> int:
    raw = request.args.get(name, str(default))
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}", details={"field": name})
    return int(raw)


# ---------------------------------------------------------------- accounts (admins)


@bp.get("/users")
def list_users() -> Response:
    _params({"q", "role", "limit", "offset"})
    page = staff.list_accounts(
        db(),
        api_user(),
        search=request.args.get("q", ""),
        role=request.args.get("role", ""),
        limit=_number("limit", staff.PAGE_SIZE, low=1, high=200),
        offset=_number("offset", 0, low=0, high=10_000_000),
    )
    return jsonify(
        {
            "users": [row.to_dict() for row in page.rows],
            "total": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }
    )


@bp.post("/users")
def create_user() -> tuple[Response, int, dict[str, str]]:
    data = _json_body({"email", "name", "role", "password"})
    user = staff.create_account(
        db(),
        api_user(),
        email=_text(data, "email", limit=254),
        name=_text(data, "name", required=False, limit=200),
        role=_text(data, "role", limit=20),
        password=_text(data, "password"),
    )
    db().commit()
    location = url_for("api_staff.get_user", user_id=user.id)
    body = staff.account_detail(db(), api_user(), user.id).account.to_dict()
    return jsonify(body), 201, {"Location": location}


@bp.get("/users/<int:user_id>")
def get_user(user_id: int) -> Response:
    detail = staff.account_detail(db(), api_user(), user_id)
    return jsonify(
        {
            **detail.account.to_dict(),
            "tokens": [
                {
                    "id": t.id,
                    "name": t.name,
                    "prefix": t.prefix,
                    "created_at": t.created_at.isoformat(),
                    "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                    "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
                }
                for t in detail.tokens
            ],
        }
    )


@bp.patch("/users/<int:user_id>")
def update_user(user_id: int) -> Response:
    """`{"role": "learner" | "reviewer" | "admin", "active": true | false}`, either or both."""
    user = api_user()
    data = _json_body({"role", "active"})
    if not data:
        raise InvalidInput("send role, active or both", details={"field": "body"})
    access.require_admin(user)
    if "active" in data and not isinstance(data["active"], bool):
        raise InvalidInput("active must be true or false", details={"field": "active"})
    if "role" in data:
        staff.change_role(db(), user, user_id, _text(data, "role", limit=20))
    if "active" in data:
        staff.set_active(db(), user, user_id, data["active"])
    return jsonify(staff.account_detail(db(), user, user_id).account.to_dict())


@bp.delete("/users/<int:user_id>/tokens")
def revoke_tokens(user_id: int) -> Response:
    """Revoke every live token of an account (admins; staff for the learners of their programs)."""
    return jsonify({"user": user_id, "revoked": staff.revoke_tokens(db(), api_user(), user_id)})


# ---------------------------------------------------------------- a program's team and its learners


def _member(member: staff.TeamMember) -> dict[str, Any]:
    return {"user": member.user_id, "email": member.email, "name": member.name, "role": member.role}


@bp.get("/programs/<slug>/staff")
def team(slug: str) -> Response:
    return jsonify(
        {"program": slug, "staff": [_member(m) for m in staff.program_team(db(), api_user(), slug)]}
    )


@bp.post("/programs/<slug>/staff")
def add_team_member(slug: str) -> Response:
    """`{"email": ..., "role": "reviewer" | "staff"}`: the account reviews (or runs) the program."""
    data = _json_body({"email", "role"})
    member = staff.add_program_staff(
        db(), api_user(), slug, _text(data, "email", limit=254), _text(data, "role", limit=20)
    )
    return jsonify({"program": slug, **_member(member)})


@bp.delete("/programs/<slug>/staff/<int:user_id>")
def remove_team_member(slug: str, user_id: int) -> tuple[str, int]:
    staff.remove_program_staff(db(), api_user(), slug, user_id)
    return "", 204


@bp.get("/programs/<slug>/enrolments")
def list_enrolments(slug: str) -> Response:
    learners = staff.enrolled_learners(db(), api_user(), slug)
    return jsonify(
        {
            "program": slug,
            "learners": [
                {
                    "user": row.user_id,
                    "email": row.email,
                    "name": row.name,
                    "active": row.active,
                    "enrolled_at": row.enrolled_at.isoformat(),
                    "live_tokens": row.live_tokens,
                }
                for row in learners
            ],
        }
    )


@bp.post("/programs/<slug>/enrolments")
def enrol(slug: str) -> tuple[Response, int]:
    """One learner as JSON `{"email", "name"}`, or a CSV file (`Content-Type: text/csv`, the header
    `email,name[,password]`): `?dry_run=1` previews it row by row and writes nothing; without it the
    valid rows are imported (`?digest=` from the preview makes sure it is the same file)."""
    user = api_user()
    if request.mimetype in ("text/csv", "application/csv"):
        _params({"dry_run", "digest"})
        if (request.content_length or 0) > staff.MAX_IMPORT_BYTES:
            raise PayloadTooLarge(
                f"the file is larger than {staff.MAX_IMPORT_BYTES // 1024} KB; split it into smaller files",
                details={"field": "file", "limit_bytes": staff.MAX_IMPORT_BYTES},
            )
        data = request.get_data(cache=False)
        if _flag("dry_run"):
            return jsonify(staff.preview_import(db(), user, slug, data).to_dict()), 200
        outcome = staff.apply_import(db(), user, slug, data, request.args.get("digest"))
        return jsonify(outcome.to_dict()), 200
    _params(set())
    data_json = _json_body({"email", "name"})
    enrolled = staff.enrol(
        db(),
        user,
        slug,
        _text(data_json, "email", limit=254),
        _text(data_json, "name", required=False, limit=200),
    )
    return jsonify({"program": slug, **enrolled.to_dict()}), 201


# ---------------------------------------------------------------- the gradebook


@bp.get("/programs/<slug>/gradebook")
def gradebook(slug: str) -> Response:
    _params({"status", "requirement", "format"})
    form = request.args.get("format", "json")
    if form not in ("json", "csv"):
        raise InvalidInput("format must be json or csv", details={"field": "format"})
    book = staff.gradebook(
        db(),
        api_user(),
        slug,
        status=request.args.get("status") or None,
        requirement=request.args.get("requirement") or None,
    )
    if form == "csv":
        response = make_response(staff.gradebook_csv(book))
        response.mimetype = "text/csv"
        response.headers["Content-Disposition"] = f'attachment; filename="gradebook-{book.program}.csv"'
        return response
    return jsonify(book.to_dict())


# ---------------------------------------------------------------- queues, retries and regrades


@bp.get("/queues")
def queues() -> Response:
    _params(set())
    return jsonify(staff.queue_health(db(), api_user()).to_dict())


@bp.post("/runs/<run_id>/retry")
def retry_run(run_id: str) -> tuple[Response, int, dict[str, str]]:
    """A new grading run for a submission whose last run ended in error; `{"reason"}` optional."""
    data = _json_body({"reason"}) if request.get_data(cache=True) else {}
    run = staff.retry_run(
        db(), web().queue, api_user(), run_id, _text(data, "reason", required=False, limit=2000)
    )
    status_url = url_for("api.get_submission", submission_id=run.submission_id)
    body = {"run": run.id, "submission": run.submission_id, "status_url": status_url}
    return jsonify(body), 202, {"Location": status_url}


@bp.get("/assessments/<slug>/regrade")
def regrade_preview(slug: str) -> Response:
    _params({"only_latest"})
    return jsonify(staff.regrade_preview(db(), api_user(), slug, only_latest=_flag("only_latest")).to_dict())


@bp.post("/assessments/<slug>/regrade")
def regrade(slug: str) -> tuple[Response, int]:
    """`{"reason": text, "confirm": true, "only_latest": false}`: grade the submissions again."""
    data = _json_body({"reason", "confirm", "only_latest"})
    for name in ("confirm", "only_latest"):
        if name in data and not isinstance(data[name], bool):
            raise InvalidInput(f"{name} must be true or false", details={"field": name})
    report = staff.regrade_assessment(
        db(),
        web().queue,
        api_user(),
        slug,
        reason=_text(data, "reason", limit=2000),
        only_latest=bool(data.get("only_latest", False)),
        confirmed=data.get("confirm") is True,
    )
    return jsonify(
        {"assessment": slug, "queued": list(report.queued), "skipped_busy": report.skipped_busy}
    ), 202


# ---------------------------------------------------------------- catalog and agreement


@bp.get("/catalog")
def catalog() -> Response:
    _params(set())
    path = web().settings.catalog_path
    return jsonify(
        {
            "path": str(path),
            "command": staff.load_command(path),
            "assessments": [a.to_dict() for a in staff.catalog_status(db(), api_user())],
        }
    )


@bp.post("/catalog/load")
def load_catalog() -> Response:
    """Load the catalog folder of the settings (admins); its problems come back as file:line (422)."""
    report = staff.load_catalog_folder(db(), api_user(), web().settings.catalog_path)
    return jsonify(
        {
            "created": report.created,
            "new_versions": report.new_versions,
            "unchanged": len(report.unchanged),
            "summary": report.summary(),
        }
    )


@bp.get("/agreement")
def agreement_stats() -> Response:
    _params({"program", "assessment"})
    stats = agreement.report(
        db(),
        api_user(),
        program=request.args.get("program") or None,
        assessment=request.args.get("assessment") or None,
    )
    return jsonify(stats.to_dict())
