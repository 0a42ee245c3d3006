"""Credentials on the web: the public page of each credential, the issuer's DID document, the status
lists, and the API that hands a learner (or the program's staff) a credential in either proof format.

Everything a verifier fetches is public and readable cross-origin (a verifier may run in a browser): the
DID document, the status lists and each credential's JSON-LD. The API is the token-authenticated way to
the same documents, plus revocation by staff.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, render_template, request

from grader.credentials import StatusPurpose
from grader.errors import InvalidInput, NotFound
from grader.models import IssuedCredential, User
from grader.services import access, credentials
from grader.services.audit import user_actor
from grader.web.auth import api_user, csrf
from grader.web.context import db, web

bp = Blueprint("credentials", __name__)
api_bp = Blueprint("api_credentials", __name__, url_prefix="/api/v1")
csrf.exempt(api_bp)

JSON_LD = "application/ld+json"
VC_JWT = "application/vc+jwt"


def identity() -> credentials.IssuerIdentity:
    return credentials.issuer_identity(web().settings)


def _public_json(document: object, mimetype: str) -> Response:
    response = Response(json.dumps(document, indent=2, ensure_ascii=False), mimetype=mimetype)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/.well-known/did.json")
def did_document() -> Response:
    return _public_json(identity().web_did_document(), "application/did+json")


@bp.get("/credentials/issuer.json")
def issuer_document() -> Response:
    """The issuer's DID document whatever its method: for the demo's did:key, that key plus its RSA keys."""
    return _public_json(identity().did_document(), "application/did+json")


@bp.get("/credentials/status/<purpose>")
def status_list(purpose: str) -> Response:
    try:
        chosen = StatusPurpose(purpose)
    except ValueError:
        raise NotFound(f"no status list {purpose!r}: there are revocation and suspension") from None
    document = credentials.status_list_credential(db(), identity(), chosen)
    response = _public_json(document, JSON_LD)
    # A change must show in the next fetch: no cache may keep an old list.
    response.headers["Cache-Control"] = "no-cache"
    return response


def _wants_json_ld() -> bool:
    if request.args.get("format") == "json":  # a link's download: a link cannot send an Accept header
        return True
    best = request.accept_mimetypes.best_match(["text/html", JSON_LD, "application/vc+ld+json"])
    return best in {JSON_LD, "application/vc+ld+json"}


@bp.get("/credentials/<credential_id>")
def public_page(credential_id: str) -> Response | str:
    credential = credentials.get_credential(db(), credential_id)
    if _wants_json_ld():
        if credential.document is None:
            raise NotFound("the credential is still being signed; try again in a moment")
        return _public_json(credential.document, JSON_LD)
    if credential.document is None:
        return render_template("credentials/pending.html", credential=credential)
    view = credentials.public_view(credential, identity())
    response = Response(render_template("credentials/public.html", view=view, base_url=identity().base_url))
    response.vary.add("Accept")
    return response


# ---------------------------------------------------------------- API


def _readable(user: User, credential: IssuedCredential) -> None:
    """The holder, or staff of its program; anyone else is told it does not exist."""
    if credential.award.user_id == user.id:
        return
    programs = access.programs_of(db(), user, staff_only=True)
    if programs is None or credential.award.program_id in programs:
        return
    raise NotFound(f"no credential {credential.id!r}")


def _summary(credential: IssuedCredential) -> dict[str, object]:
    issuer = identity()
    return {
        "id": credential.id,
        "program": credential.award.program.slug,
        "status": credential.status,
        "url": issuer.public_url(credential),
        "issued_at": credential.issued_at.isoformat() if credential.issued_at else None,
        "revocation_reason": credential.revocation_reason or None,
    }


@api_bp.get("/credentials")
def list_credentials() -> Response:
    user = api_user()
    return Response(
        json.dumps({"credentials": [_summary(c) for c in credentials.credentials_of(db(), user.id)]}),
        mimetype="application/json",
    )


@api_bp.get("/credentials/<credential_id>")
def get_credential(credential_id: str) -> Response:
    user = api_user()
    credential = credentials.get_credential(db(), credential_id)
    _readable(user, credential)
    wanted = request.args.get("format", "json-ld")
    if wanted not in {"json-ld", "jwt"}:
        raise InvalidInput("format must be json-ld or jwt", details={"field": "format"})
    if credential.document is None or credential.jwt is None:
        raise NotFound("the credential is still being signed; try again in a moment")
    if wanted == "jwt":
        return Response(credential.jwt, mimetype=VC_JWT)
    return Response(json.dumps(credential.document, indent=2, ensure_ascii=False), mimetype=JSON_LD)


@api_bp.post("/credentials/<credential_id>/revoke")
def revoke_credential(credential_id: str) -> Response:
    user = api_user()
    credential = credentials.get_credential(db(), credential_id)
    _readable(user, credential)
    access.require_staff_of(db(), user, credential.award.program)
    body = request.get_json(silent=True)
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str):
        raise InvalidInput('send the reason as JSON: {"reason": "..."}', details={"field": "reason"})
    revoked = credentials.revoke(db(), credential.id, reason, actor=user_actor(user))
    return Response(json.dumps(_summary(revoked)), mimetype="application/json")
