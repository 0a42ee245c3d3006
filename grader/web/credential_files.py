"""A credential's files on the web, and the verification page where anyone checks one.

- `GET /programs/<slug>/badge.png`: the achievement's image (every credential's `achievement.image`);
  public and readable cross-origin, as displayers fetch it.
- `GET /credentials/<id>/badge.png`: the baked badge, the VC-JWT inside (OB 3.0 "Baked Badge").
- `GET /credentials/<id>/certificate.pdf`: the certificate with a QR code to the public page; it names
  the holder, so only they and the program's staff may fetch it.
- `GET|POST /verify`: a credential file uploaded (JSON-LD, VC-JWT or baked PNG) or pasted, and each check
  of `grader.credentials.verify` in words (`grader.services.credential_verification` says which keys and
  status lists are trusted; nothing is fetched).

Files are attachments with the download policy (`sandbox; default-src 'none'`), never rendered on our
origin. All but the certificate is public: a credential's id is the capability its holder shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, render_template, request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from grader.credentials import Outcome
from grader.errors import GraderError, InvalidInput, NotFound
from grader.intake.artifacts import human_size
from grader.models import CredentialStatus, IssuedCredential
from grader.services import access, credential_views, credentials
from grader.services.credential_files import badge_png, badge_title, baked_png, certificate_pdf
from grader.services.credential_verification import (
    MAX_UPLOAD_BYTES,
    HandedIn,
    Verdict,
    read_handed_in,
    verify_handed_in,
)
from grader.web.auth import login_required_page, page_user
from grader.web.context import db, web

bp = Blueprint("credential_files", __name__)

DOWNLOAD_POLICY = "sandbox; default-src 'none'"
# The multipart envelope and the CSRF token beside the one file or text.
FORM_ROOM_BYTES = 64 * 1024
BADGE_MAX_AGE = 3600


def _identity() -> credentials.IssuerIdentity:
    return credentials.issuer_identity(web().settings)


def _file(data: bytes, mimetype: str, filename: str) -> Response:
    return Response(
        data,
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": DOWNLOAD_POLICY,
            "Cache-Control": "private, no-store",
        },
    )


def _signed(credential_id: str) -> IssuedCredential:
    credential = credentials.get_credential(db(), credential_id)
    if credential.document is None or credential.jwt is None:
        raise NotFound("the credential is still being signed; try again in a moment")
    return credential


@bp.get("/programs/<slug>/badge.png")
def program_badge(slug: str) -> Response:
    program = access.program_by_slug(db(), slug)
    response = Response(badge_png(badge_title(program)), mimetype="image/png")
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Content-Security-Policy"] = DOWNLOAD_POLICY
    # The same for everyone, and only a catalog change alters it.
    response.headers["Cache-Control"] = f"public, max-age={BADGE_MAX_AGE}"
    return response


@bp.get("/credentials/<credential_id>/badge.png")
def baked_badge(credential_id: str) -> Response:
    credential = _signed(credential_id)
    program = credential.award.program
    assert credential.jwt is not None  # _signed checked it
    data = baked_png(badge_png(badge_title(program)), credential.jwt)
    return _file(data, "image/png", f"{program.slug}-credential.png")


@bp.get("/credentials/<credential_id>/certificate.pdf")
@login_required_page
def certificate(credential_id: str) -> Response:
    """The holder's certificate. It names them, which the public page and the credential never do (the
    credential carries a salted hash of the email), so only the holder and the program's staff get it;
    the holder hands the file on to whom they choose."""
    user = page_user()
    try:
        credential_views.own_credential(db(), user.id, credential_id)
    except NotFound:
        credential_views.credential_for_staff(db(), user, credential_id)
    credential = _signed(credential_id)
    view = credentials.public_view(credential, _identity())
    data = certificate_pdf(view, holder=credential.award.user.name)
    return _file(data, "application/pdf", f"{credential.award.program.slug}-certificate.pdf")


# ---------------------------------------------------------------- the verification page


@bp.url_value_preprocessor
def _room_for_one_credential(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # Before the CSRF check, the first to read the form: a body past the limit is refused unread.
    if endpoint == "credential_files.verify_page" and request.method == "POST":
        request.max_content_length = MAX_UPLOAD_BYTES + FORM_ROOM_BYTES
        # A pasted credential is a form field, not a file: Werkzeug's 500 KB default for those is too low.
        request.max_form_memory_size = MAX_UPLOAD_BYTES + FORM_ROOM_BYTES


def _page(
    *, verdict: Verdict | None = None, error: GraderError | None = None, text: str = "", status: int = 200
) -> tuple[str, int]:
    field = str(error.details.get("field", "")) if error is not None else ""
    report = verdict.report if verdict is not None else None
    page = render_template(
        "credentials/verify.html",
        verdict=verdict,
        claims=_claims(report.credential) if report is not None else [],
        unchecked=report is not None and any(c.outcome is Outcome.NOT_CHECKED for c in report.checks),
        revoked=report is not None and report.check("status").detail.startswith("revoked"),
        public_url=_public_url(verdict),
        error=error.message if error is not None else None,
        error_field=field,
        text=text,
        limit=human_size(MAX_UPLOAD_BYTES),
        revocation_reason=_revocation_reason(verdict),
    )
    return page, status


def _claims(credential: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """What the credential says of itself, for people: achievement, issuer, dates."""
    if not credential:
        return []
    subject = credential.get("credentialSubject")
    achievement = subject.get("achievement") if isinstance(subject, dict) else None
    issuer = credential.get("issuer")
    said = [
        ("Achievement", achievement.get("name") if isinstance(achievement, dict) else None),
        ("Issuer", issuer.get("name") if isinstance(issuer, dict) else None),
        ("Issuer's id", issuer.get("id") if isinstance(issuer, dict) else issuer),
        ("Valid from", credential.get("validFrom")),
        ("Valid until", credential.get("validUntil")),
    ]
    return [
        (label, str(value)) for label, value in said if isinstance(value, str | int | float) and value != ""
    ]


def _public_url(verdict: Verdict | None) -> str:
    """Our page of a credential this service issued, when the credential is still on record."""
    if verdict is None or not verdict.issued_here or verdict.report.credential is None:
        return ""
    credential_id = str(verdict.report.credential.get("id", "")).removeprefix("urn:uuid:")
    try:
        row = credentials.get_credential(db(), credential_id)
    except NotFound:
        return ""
    return _identity().public_url(row)


def _revocation_reason(verdict: Verdict | None) -> str:
    """The reason staff gave, for a credential of ours the status list says is revoked."""
    if verdict is None or not verdict.issued_here or verdict.report.credential is None:
        return ""
    if not verdict.report.check("status").detail.startswith("revoked"):
        return ""
    credential_id = str(verdict.report.credential.get("id", "")).removeprefix("urn:uuid:")
    try:
        row = credentials.get_credential(db(), credential_id)
    except NotFound:
        return ""
    return row.revocation_reason if row.status == CredentialStatus.REVOKED else ""


def _handed_in() -> tuple[HandedIn, str]:
    upload: FileStorage | None = request.files.get("file")
    chosen = upload is not None and bool(upload.filename)
    text = request.form.get("text", "")
    if chosen and text.strip():
        raise InvalidInput(
            "choose a file or paste a credential, not both: clear the text box or the file",
            details={"field": "file"},
        )
    if chosen:
        assert upload is not None
        data = upload.stream.read(MAX_UPLOAD_BYTES + 1)
        return read_handed_in(data, field="file", what=f"the file {upload.filename}"), ""
    if not text.strip():
        raise InvalidInput(
            "choose a credential file, or paste the credential into the text box", details={"field": "file"}
        )
    return read_handed_in(text.encode("utf-8"), field="text", what="the pasted text"), text


@bp.route("/verify", methods=["GET", "POST"])
def verify_page() -> tuple[str, int]:
    if request.method == "GET":
        return _page()
    text = request.form.get("text", "")
    try:
        handed_in, text = _handed_in()
    except GraderError as error:
        return _page(error=error, text=text, status=error.http_status)
    verdict = verify_handed_in(db(), _identity(), handed_in)
    if verdict.report.proof_format == "unreadable":
        problem = InvalidInput(
            f"this is not a credential this page can read: {verdict.report.check('structure').detail}",
            details={"field": "text" if text else "file"},
        )
        return _page(error=problem, text=text, status=422)
    return _page(verdict=verdict, text=text)


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> tuple[str, int]:
    error = InvalidInput(
        f"what you sent is larger than {human_size(MAX_UPLOAD_BYTES)}, the most this page reads, so none "
        "of it was read: a credential file is a few kilobytes, a baked badge a few dozen",
        details={"field": "file"},
    )
    return _page(error=error, status=413)
