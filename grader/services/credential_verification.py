"""Checking a credential that anyone hands in, as the verification page does: read, then verified offline.

A handed-in file is read by its content, not its name: a PNG is unbaked (its `openbadgecredential`
chunk), anything else must be UTF-8 text, the JSON-LD credential or the VC-JWT. Then
`grader.credentials.verify` runs every check with the keys this service can vouch for, and nothing is
fetched from an address the credential or the visitor names:

- this service's own issuer (its DID, the did:web of its public URL, or a did:key of one of its Ed25519
  keys): its own key set, retirement dates included, and its status lists read from the database;
- any other did:key: resolved from the DID itself, which needs no network; status not fetched;
- any other issuer: its DID document is not fetched, so the proof is "not checked", and says why.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from grader.credentials import (
    Check,
    KeyAlgorithm,
    Outcome,
    StatusPurpose,
    TrustedKeys,
    VerificationReport,
    did_key,
    did_web,
    vc_jwt,
    verify,
)
from grader.credentials.dates import utc_now
from grader.credentials.errors import MalformedCredential
from grader.credentials.verify import JWT_FORMAT, check_dates, check_structure
from grader.errors import InvalidInput, PayloadTooLarge
from grader.intake.artifacts import human_size
from grader.services import credentials
from grader.services.credential_files import PNG_SIGNATURE, DamagedImage, unbake_png

# One credential is kilobytes; a baked badge a few dozen. A megabyte leaves room and bounds the work.
MAX_UPLOAD_BYTES = 1024 * 1024
ACCEPTED = "a .json file (JSON-LD), a .jwt file (VC-JWT) or a baked .png badge"


@dataclass(frozen=True)
class HandedIn:
    """The credential's text, and what it came as, in words."""

    text: str
    came_as: str


def read_handed_in(data: bytes, *, field: str, what: str = "the file") -> HandedIn:
    """The credential inside `data`; `InvalidInput` naming `field` when there is none to read."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            f"{what} is larger than {human_size(MAX_UPLOAD_BYTES)}, the most this page reads",
            details={"field": field, "limit_bytes": MAX_UPLOAD_BYTES},
        )
    if not data.strip():
        raise InvalidInput(f"{what} is empty", details={"field": field})
    if data.startswith(PNG_SIGNATURE):
        try:
            baked = unbake_png(data)
        except DamagedImage as error:
            raise DamagedImage(error.message, details={"field": field}) from None
        if baked is None:
            raise InvalidInput(
                "the PNG image holds no baked credential: it has no iTXt chunk with the keyword "
                "openbadgecredential",
                details={"field": field},
            )
        return HandedIn(baked.strip(), "a baked PNG badge")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff").strip()
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{what} is neither a PNG image nor text: a credential is {ACCEPTED}", details={"field": field}
        ) from None
    if text.startswith("{"):
        return HandedIn(text, "JSON-LD")
    if text.count(".") == 2 and " " not in text:
        return HandedIn(text, "a VC-JWT")
    raise InvalidInput(
        f"{what} is not a credential: it is neither JSON-LD (which begins with {{) nor a VC-JWT "
        "(three base64url parts separated by dots)",
        details={"field": field},
    )


def claimed_issuer(text: str) -> str | None:
    """The issuer id the credential claims (JSON-LD `issuer`, or the JWT's `iss`), unverified."""
    try:
        if text.startswith("{"):
            document: Any = json.loads(text)
        else:
            payload = text.split(".")[1]
            document = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, IndexError, binascii.Error, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    issuer = document.get("iss") or document.get("issuer")
    if isinstance(issuer, dict):
        issuer = issuer.get("id")
    return issuer if isinstance(issuer, str) else None


@dataclass(frozen=True)
class Verdict:
    report: VerificationReport
    came_as: str
    issuer: str | None
    issued_here: bool


def _our_dids(identity: credentials.IssuerIdentity) -> set[str]:
    ed25519 = [key for key in identity.keys.public_keys() if key.algorithm is KeyAlgorithm.ED25519]
    return {identity.did, did_web(identity.base_url), *(did_key(key) for key in ed25519)}


def _reworded(report: VerificationReport, name: str, detail: str) -> VerificationReport:
    checks = tuple(
        Check(name, Outcome.NOT_CHECKED, detail) if check.name == name else check for check in report.checks
    )
    return replace(report, checks=checks)


def _read_unverified(report: VerificationReport, text: str) -> VerificationReport:
    """A JWT whose signature cannot be checked still has a structure and dates to report."""
    if report.credential is not None or report.proof_format != JWT_FORMAT:
        return report
    try:
        _, payload = vc_jwt.read_unverified(text)
    except MalformedCredential:
        return report
    credential = {name: value for name, value in payload.items() if name not in vc_jwt.JWT_CLAIMS}
    checks = {check.name: check for check in report.checks}
    checks["structure"] = check_structure(credential)
    checks["dates"] = check_dates(credential, utc_now())
    ordered = tuple(checks[name] for name in ("structure", "proof", "dates", "status") if name in checks)
    return replace(report, checks=ordered, credential=credential)


def verify_handed_in(session: Session, identity: credentials.IssuerIdentity, handed_in: HandedIn) -> Verdict:
    """Every check of a handed-in credential, with this service's keys and status lists where it issued it."""
    issuer = claimed_issuer(handed_in.text)
    issued_here = issuer is not None and issuer in _our_dids(identity)
    keys = TrustedKeys.from_key_set(issuer, identity.keys) if issuer is not None and issued_here else None
    lists = None
    if issued_here and issuer == identity.did:
        lists = [credentials.status_list_credential(session, identity, purpose) for purpose in StatusPurpose]
    report = verify(handed_in.text, keys, lists)
    if issuer is None or report.proof_format == "unreadable":
        return Verdict(report, handed_in.came_as, issuer, issued_here)
    if not issued_here and not issuer.startswith("did:key:"):
        report = _reworded(
            _read_unverified(report, handed_in.text),
            "proof",
            f"the issuer {issuer} is not this service: its DID document was not fetched (this page "
            "fetches nothing a credential names); check it with `grader credential verify FILE --did "
            "DOCUMENT` and the issuer's DID document",
        )
    if report.check("status").outcome is Outcome.NOT_CHECKED and lists is None:
        has_status = "no credentialStatus" not in report.check("status").detail
        if has_status:
            reason = (
                f"this service's status lists are signed as {identity.did}, not as {issuer}"
                if issued_here
                else "the status lists of other issuers are not fetched: ask the issuer, or run "
                "`grader credential verify FILE --status-list URL`"
            )
            report = _reworded(report, "status", reason)
    return Verdict(report, handed_in.came_as, issuer, issued_here)
