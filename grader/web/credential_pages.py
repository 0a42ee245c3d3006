"""The credential pages of people who log in: a learner's own credentials (`/me/credentials`: status,
downloads, sharing, which results the public page shows) and a program's credentials for its staff, who
revoke one with a reason (`/staff/programs/<slug>/credentials`).

Thin views over `grader.services.credential_views` and `grader.services.credentials`. Anyone else's
credential is not found (404), as the API answers. A refused form comes back as the same page with what
was typed kept, the field named in words and the error's status. The public page of a credential, the
issuer's documents and the API are `grader/web/credentials.py`; the certificate, the baked badge and the
verification page are `grader/web/credential_files.py`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from grader.errors import GraderError
from grader.models import IssuedCredential
from grader.services import credential_views, credentials
from grader.services.audit import user_actor
from grader.web.auth import login_required_page, page_user
from grader.web.context import db, web

bp = Blueprint("credential_pages", __name__)

Page = tuple[str, int]

# Form fields as a person names them, for messages that say which part of a form is wrong.
FIELDS_IN_WORDS = {"reason": "The reason", "shown": "The results to show"}


def _identity() -> credentials.IssuerIdentity:
    return credentials.issuer_identity(web().settings)


def _error_text(error: GraderError) -> str:
    field = str(error.details.get("field", "")) if error.details else ""
    words = FIELDS_IN_WORDS.get(field)
    text = f"{words}: {error.message}" if words else error.message
    return text[:1].upper() + text[1:]


# ---------------------------------------------------------------- the learner's own


def _mine_page(error: GraderError | None = None, error_for: str | None = None) -> Page:
    user = page_user()
    mine = credential_views.learner_credentials(db(), _identity(), user.id)
    html = render_template(
        "credentials/mine.html",
        credentials=mine,
        issuer_name=web().settings.issuer_name,
        error=error,
        error_text=_error_text(error) if error is not None else "",
        error_for=error_for,
    )
    return html, error.http_status if error is not None else 200


@bp.get("/me/credentials")
@login_required_page
def mine() -> Page:
    return _mine_page()


@bp.post("/me/credentials/<credential_id>/shown")
@login_required_page
def choose_shown(credential_id: str) -> Page | BaseResponse:
    user = page_user()
    credential = credential_views.own_credential(db(), user.id, credential_id)
    try:
        hidden = credential_views.hidden_from_shown(credential, request.form.getlist("shown"))
        credentials.set_hidden_results(db(), credential, user.id, hidden)
    except GraderError as exc:
        db().rollback()
        return _mine_page(exc, credential_id)
    shown = len(credential.award.program.requirements) - len(hidden)
    flash(
        f"Saved: the public page of {credential_views.achievement_name(credential)} shows "
        f"{shown} of {shown + len(hidden)} results.",
        "good",
    )
    return redirect(url_for("credential_pages.mine", _anchor=f"credential-{credential_id}"), code=303)


def _download(credential: IssuedCredential, body: str, mimetype: str, extension: str) -> Response:
    """The holder's own copy: an attachment, never rendered on our origin."""
    filename = f"{credential.award.program.slug}-credential.{extension}"
    return Response(
        body,
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private, no-store",
        },
    )


@bp.get("/me/credentials/<credential_id>/credential.json")
@login_required_page
def download_json(credential_id: str) -> Response:
    credential = credential_views.own_credential(db(), page_user().id, credential_id)
    return _download(credential, credentials.document_json(credential), "application/ld+json", "json")


@bp.get("/me/credentials/<credential_id>/credential.jwt")
@login_required_page
def download_jwt(credential_id: str) -> Response:
    credential = credential_views.own_credential(db(), page_user().id, credential_id)
    # The document and the JWT are written together, so one check covers both.
    credentials.document_json(credential)
    return _download(credential, credential.jwt or "", "application/vc+jwt", "jwt")


# ---------------------------------------------------------------- a program's, for its staff


def _program_page(slug: str, **context: Any) -> Page:
    listing = credential_views.program_credentials(db(), _identity(), page_user(), slug)
    error: GraderError | None = context.pop("error", None)
    html = render_template(
        "credentials/staff.html",
        listing=listing,
        error=error,
        error_text=_error_text(error) if error is not None else "",
        error_field=str(error.details.get("field", "")) if error is not None and error.details else "",
        **context,
    )
    return html, error.http_status if error is not None else 200


@bp.get("/staff/programs/<slug>/credentials")
@login_required_page
def program_credentials(slug: str) -> Page:
    return _program_page(slug)


@bp.post("/staff/credentials/<credential_id>/revoke")
@login_required_page
def revoke(credential_id: str) -> Page | BaseResponse:
    user = page_user()
    credential, program = credential_views.credential_for_staff(db(), user, credential_id)
    reason = request.form.get("reason", "")
    try:
        credentials.revoke(db(), credential.id, reason, actor=user_actor(user))
    except GraderError as exc:
        db().rollback()
        return _program_page(program.slug, error=exc, error_for=credential_id, reason=reason)
    flash(f"Revoked the credential of {credential.award.user.name}: {reason.strip()}", "good")
    return redirect(
        url_for(
            "credential_pages.program_credentials", slug=program.slug, _anchor=f"credential-{credential_id}"
        ),
        code=303,
    )
