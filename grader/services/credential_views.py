"""What the credential pages show: a learner's own credentials as they manage them, and a program's
credentials as its staff see them.

A learner's credential comes with its status in words, the date, the public page, the LinkedIn "add to
profile" link and the results they may keep off the public page; staff of the program (or admins) see
every credential of it with its holder, to revoke one. Read from the rows and the signed documents; the
lifecycle itself (signing, revoking, hiding) is `grader.services.credentials`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.errors import InvalidInput, NotFound
from grader.models import CredentialAward, CredentialStatus, IssuedCredential, Program, User
from grader.services import access, credentials

LINKEDIN_ADD_TO_PROFILE = "https://www.linkedin.com/profile/add"


def status_in_words(credential: IssuedCredential) -> str:
    """The credential's status as its holder, a visitor or staff read it."""
    if credential.status == CredentialStatus.REVOKED:
        reason = credential.revocation_reason.strip()
        return f"Revoked: {reason}" if reason else "Revoked"
    if credential.status == CredentialStatus.SUSPENDED:
        return "Suspended while a requirement it rests on is graded again"
    if credential.status == CredentialStatus.PENDING:
        return "Being signed: ready in a few seconds"
    return "Valid"


def linkedin_url(
    *, name: str, organization: str, issued: datetime, public_url: str, credential_id: str
) -> str:
    """LinkedIn's "add to profile" link, filled in with the certification's fields."""
    query = urlencode(
        {
            "startTask": "CERTIFICATION_NAME",
            "name": name,
            "organizationName": organization,
            "issueYear": str(issued.year),
            "issueMonth": str(issued.month),
            "certUrl": public_url,
            "certId": credential_id,
        }
    )
    return f"{LINKEDIN_ADD_TO_PROFILE}?{query}"


def achievement_name(credential: IssuedCredential) -> str:
    """The name the credential carries: the signed document's, else the catalog's (while it is signed)."""
    if credential.document is not None:
        name = credential.document.get("credentialSubject", {}).get("achievement", {}).get("name")
        if isinstance(name, str) and name:
            return name
    program = credential.award.program
    spec = program.definition.get("credential", {})
    return str(spec.get("name") or program.title)


# ---------------------------------------------------------------- the learner's own


@dataclass(frozen=True)
class ResultChoice:
    """One requirement's result, and whether the public page shows it."""

    slug: str
    title: str
    shown: bool


@dataclass(frozen=True)
class LearnerCredential:
    id: str
    program_slug: str
    program_title: str
    name: str
    status: str
    status_words: str
    date: datetime  # when it was signed; while it is being signed, when it was awarded
    revoked_at: datetime | None
    public_url: str
    signed: bool
    linkedin_url: str | None  # only for a credential that stands: valid or suspended
    results: tuple[ResultChoice, ...]


def _learner_credential(
    credential: IssuedCredential, identity: credentials.IssuerIdentity
) -> LearnerCredential:
    program = credential.award.program
    name = achievement_name(credential)
    public = identity.public_url(credential)
    date = credential.issued_at or credential.created_at
    standing = credential.status in (CredentialStatus.ACTIVE, CredentialStatus.SUSPENDED)
    return LearnerCredential(
        id=credential.id,
        program_slug=program.slug,
        program_title=program.title,
        name=name,
        status=credential.status,
        status_words=status_in_words(credential),
        date=date,
        revoked_at=credential.revoked_at,
        public_url=public,
        signed=credential.document is not None,
        linkedin_url=linkedin_url(
            name=name,
            organization=identity.settings.issuer_name,
            issued=date,
            public_url=public,
            credential_id=credential.id,
        )
        if standing and credential.document is not None
        else None,
        results=tuple(
            ResultChoice(
                slug=requirement.assessment.slug,
                title=requirement.assessment.title,
                shown=requirement.assessment.slug not in credential.hidden_results,
            )
            for requirement in program.requirements
        ),
    )


def learner_credentials(
    session: Session, identity: credentials.IssuerIdentity, user_id: int
) -> list[LearnerCredential]:
    """Every credential of the learner, newest first, revoked ones too (they say why)."""
    return [_learner_credential(c, identity) for c in credentials.credentials_of(session, user_id)]


def own_credential(session: Session, user_id: int, credential_id: str) -> IssuedCredential:
    """The learner's own credential; anyone else's is not found, as if it did not exist."""
    credential = credentials.get_credential(session, credential_id)
    if credential.award.user_id != user_id:
        raise NotFound(f"no credential {credential_id!r}")
    return credential


def hidden_from_shown(credential: IssuedCredential, shown: Iterable[str]) -> list[str]:
    """The form names the results to show; the row keeps those to hide. An unknown one is refused."""
    known = [r.assessment.slug for r in credential.award.program.requirements]
    chosen = set(shown)
    unknown = sorted(chosen - set(known))
    if unknown:
        raise InvalidInput(f"no requirement {unknown[0]!r} in this program", details={"field": "shown"})
    return [slug for slug in known if slug not in chosen]


# ---------------------------------------------------------------- a program's, for its staff


@dataclass(frozen=True)
class StaffCredential:
    id: str
    learner_name: str
    learner_email: str
    name: str
    status: str
    status_words: str
    date: datetime
    revoked_at: datetime | None
    public_url: str


@dataclass(frozen=True)
class ProgramCredentials:
    slug: str
    title: str
    credentials: tuple[StaffCredential, ...]


def program_credentials(
    session: Session, identity: credentials.IssuerIdentity, user: User, slug: str
) -> ProgramCredentials:
    """Every credential of the program, newest first; for its staff and admins only."""
    access.staff_scope(session, user)
    program = access.program_by_slug(session, slug)
    access.require_staff_of(session, user, program)
    rows = session.scalars(
        select(IssuedCredential)
        .join(CredentialAward)
        .where(CredentialAward.program_id == program.id)
        .order_by(IssuedCredential.created_at.desc())
    ).all()
    return ProgramCredentials(
        slug=program.slug,
        title=program.title,
        credentials=tuple(
            StaffCredential(
                id=row.id,
                learner_name=row.award.user.name,
                learner_email=row.award.user.email,
                name=achievement_name(row),
                status=row.status,
                status_words=status_in_words(row),
                date=row.issued_at or row.created_at,
                revoked_at=row.revoked_at,
                public_url=identity.public_url(row),
            )
            for row in rows
        ),
    )


def credential_for_staff(
    session: Session, user: User, credential_id: str
) -> tuple[IssuedCredential, Program]:
    """A credential of a program the user runs; staff of other programs are told it does not exist."""
    programs = access.staff_scope(session, user)
    credential = credentials.get_credential(session, credential_id)
    if programs is not None and credential.award.program_id not in programs:
        raise NotFound(f"no credential {credential_id!r}")
    return credential, credential.award.program
