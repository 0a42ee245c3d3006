"""Accounts: users and roles, password checks, personal API tokens and program enrolment."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.errors import AuthenticationRequired, Conflict, InvalidInput, NotFound
from grader.models import ApiToken, Enrollment, Program, Role, User, utcnow

_hasher = PasswordHasher()
TOKEN_PREFIX = "gr_"
MIN_PASSWORD_LENGTH = 10
TOKEN_USE_RESOLUTION = timedelta(minutes=1)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
# Hashing a throwaway password keeps a login for an unknown email as slow as one for a known email.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


@dataclass(frozen=True)
class IssuedToken:
    """A new API token: `secret` is shown once and never stored."""

    id: int
    name: str
    secret: str


def create_user(session: Session, *, email: str, name: str, password: str, role: str = Role.LEARNER) -> User:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidInput("that is not a valid email address", details={"field": "email"})
    if role not in {r.value for r in Role}:
        raise InvalidInput(f"role must be one of {[r.value for r in Role]}", details={"field": "role"})
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password needs at least {MIN_PASSWORD_LENGTH} characters",
            details={"field": "password"},
        )
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with email {email} already exists", details={"field": "email"})
    user = User(email=email, name=name.strip() or email, role=role, password_hash=_hasher.hash(password))
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User:
    """The active user with these credentials, or `AuthenticationRequired` (same error for both faults)."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise AuthenticationRequired("wrong email or password") from None
    if user is None or not user.active:
        raise AuthenticationRequired("wrong email or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def create_token(session: Session, user_id: int, name: str = "api") -> IssuedToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user_id, name=name, token_hash=_token_hash(secret), prefix=secret[:10])
    session.add(token)
    session.flush()
    return IssuedToken(id=token.id, name=name, secret=secret)


def user_for_token(session: Session, secret: str) -> User:
    """The user behind a Bearer token; `AuthenticationRequired` for unknown or revoked tokens."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        raise AuthenticationRequired("invalid API token")
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(secret)))
    if token is None or token.revoked_at is not None or not token.user.active:
        raise AuthenticationRequired("invalid API token")
    now = utcnow()
    # Record use at most once a minute: a status poll must not turn every read into a write.
    if token.last_used_at is None or now - token.last_used_at > TOKEN_USE_RESOLUTION:
        token.last_used_at = now
    return token.user


def _token_hash(secret: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough; slow hashing protects guessable secrets.
    return hashlib.sha256(secret.encode()).hexdigest()


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


def find_user_by_email(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user with email {email}", details={"field": "email"})
    return user


def enroll(session: Session, user_id: int, program_slug: str) -> Enrollment:
    """Enrol a learner in a program; enrolling twice returns the existing enrolment."""
    program = session.scalar(select(Program).where(Program.slug == program_slug))
    if program is None:
        raise NotFound(f"no program {program_slug!r}", details={"field": "program"})
    existing = session.scalar(
        select(Enrollment).where(Enrollment.user_id == user_id, Enrollment.program_id == program.id)
    )
    if existing is not None:
        return existing
    enrollment = Enrollment(user_id=user_id, program_id=program.id)
    session.add(enrollment)
    session.flush()
    return enrollment
