"""Accounts: users and roles, password checks, personal API tokens and program enrolment.

Also the account's security: failed logins counted per account (in the database) and per client
address (in `LoginThrottle`, this process's memory), lockouts, the session generation that ends every
session of a user at once, password changes and token revocation.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, String, bindparam, func, select, update
from sqlalchemy.orm import Session

from grader.errors import AuthenticationRequired, Conflict, InvalidInput, NotFound, RateLimited
from grader.models import ApiToken, Enrollment, Program, Role, User, table_of, utcnow
from grader.services import audit

_hasher = PasswordHasher()
TOKEN_PREFIX = "gr_"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1000
MAX_TOKEN_NAME_LENGTH = 100
# Enough for every script and machine a person uses; a cap keeps a stolen session from minting thousands.
MAX_ACTIVE_TOKENS = 25
TOKEN_USE_RESOLUTION = timedelta(minutes=1)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
# Hashing a throwaway password keeps a login for an unknown email as slow as one for a known email.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

# Login failures: an account (or an unknown email) is locked after this many within the window, for
# LOCKOUT; a client address after CLIENT_FAILURE_LIMIT, so one address cannot try many accounts.
FAILURE_LIMIT = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
CLIENT_FAILURE_LIMIT = 20
WRONG_CREDENTIALS = "wrong email or password"


class AccountActions:
    """Audit actions of this module (grader.services.audit keeps the grading ones)."""

    PASSWORD_CHANGED = "account.password_changed"
    SESSIONS_ENDED = "account.sessions_ended"
    LOCKED = "account.locked"
    DEACTIVATED = "account.deactivated"
    REACTIVATED = "account.reactivated"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"


@dataclass(frozen=True)
class IssuedToken:
    """A new API token: `secret` is shown once and never stored."""

    id: int
    name: str
    secret: str
    prefix: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown of a token after its creation: never the secret, only its first characters."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def create_user(session: Session, *, email: str, name: str, password: str, role: str = Role.LEARNER) -> User:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidInput("that is not a valid email address", details={"field": "email"})
    if role not in {r.value for r in Role}:
        raise InvalidInput(f"role must be one of {[r.value for r in Role]}", details={"field": "role"})
    _check_new_password(password, field="password", label="the password")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with email {email} already exists", details={"field": "email"})
    user = User(email=email, name=name.strip() or email, role=role, password_hash=_hasher.hash(password))
    session.add(user)
    session.flush()
    return user


# ---------------------------------------------------------------- failed logins and lockouts


@dataclass
class Failures:
    """Failed logins of one account, email or client.

    `mark` is the start of the counting window while `count` is below the limit, and the end of the
    lockout once it reaches it: the users table has only `failed_logins` and `locked_until` for this,
    so `locked_until` is the mark (a window start is never in the future, so `locked_until > now`
    still means "locked" to any reader). Use `lock_remaining` rather than reading the columns.
    """

    count: int = 0
    mark: datetime | None = None

    def locked_for(self, now: datetime, limit: int) -> int:
        """Seconds left of a lockout, 0 when not locked."""
        if self.count < limit or self.mark is None or self.mark <= now:
            return 0
        return max(1, math.ceil((self.mark - now).total_seconds()))

    def fail(self, now: datetime, limit: int) -> bool:
        """Count one failure; True when it starts a lockout."""
        window_over = self.mark is None or now - self.mark >= FAILURE_WINDOW
        if self.count == 0 or self.count >= limit or window_over:
            # A new window: the first failure, an expired window, or the first try after a lockout.
            self.count, self.mark = 1, now
        else:
            self.count += 1
        if self.count >= limit:
            self.mark = now + LOCKOUT
            return True
        return False

    def expired(self, now: datetime) -> bool:
        return self.mark is None or (self.mark <= now and now - self.mark >= FAILURE_WINDOW)


class LoginThrottle:
    """Failed logins remembered in this process's memory: per client address, and per unknown email.

    Why memory and not the database: a flood of failed logins then writes nothing (the database
    only counts failures of real accounts, at most FAILURE_LIMIT per lockout), and no table is needed
    for addresses and emails that are not accounts. The cost is that each web process counts on its
    own: with W processes a client gets up to W x CLIENT_FAILURE_LIMIT tries per window. The
    per-account lockout, which guards each password, is in the database and shared by all processes.
    Unknown emails are locked here exactly as accounts are locked there, so a lockout does not tell
    whether an email has an account.
    """

    def __init__(
        self,
        *,
        client_limit: int = CLIENT_FAILURE_LIMIT,
        account_limit: int = FAILURE_LIMIT,
        max_entries: int = 50_000,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.client_limit = client_limit
        self.account_limit = account_limit
        self.max_entries = max_entries
        self.clock = clock
        self._clients: dict[str, Failures] = {}
        self._emails: dict[str, Failures] = {}
        self._lock = threading.Lock()

    def client_locked_for(self, client: str, now: datetime | None = None) -> int:
        with self._lock:
            entry = self._clients.get(client)
            return entry.locked_for(now or self.clock(), self.client_limit) if entry else 0

    def email_locked_for(self, email: str, now: datetime | None = None) -> int:
        with self._lock:
            entry = self._emails.get(_email_key(email))
            return entry.locked_for(now or self.clock(), self.account_limit) if entry else 0

    def client_failed(self, client: str, now: datetime | None = None) -> None:
        with self._lock:
            self._fail(self._clients, client, now or self.clock(), self.client_limit)

    def email_failed(self, email: str, now: datetime | None = None) -> None:
        with self._lock:
            self._fail(self._emails, _email_key(email), now or self.clock(), self.account_limit)

    def _fail(self, table: dict[str, Failures], key: str, now: datetime, limit: int) -> None:
        entry = table.get(key)
        if entry is None:
            if len(table) >= self.max_entries:
                self._prune(table, now)
            entry = table[key] = Failures()
        entry.fail(now, limit)

    def _prune(self, table: dict[str, Failures], now: datetime) -> None:
        for key in [key for key, entry in table.items() if entry.expired(now)]:
            del table[key]
        # Still full (a flood of distinct keys): forget the oldest half rather than grow without bound.
        while len(table) >= self.max_entries:
            for key in list(table)[: max(1, len(table) // 2)]:
                del table[key]


def _email_key(email: str) -> str:
    # Hashed: the process keeps no list of the emails people typed.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def lock_remaining(user: User, now: datetime | None = None) -> int:
    """Seconds left of the account's lockout after failed logins; 0 when it is not locked."""
    return Failures(user.failed_logins, user.locked_until).locked_for(now or utcnow(), FAILURE_LIMIT)


def _locked_error(seconds: int) -> RateLimited:
    return RateLimited(
        f"too many failed logins for this account: try again in {_minutes(seconds)}",
        retry_after=seconds,
        details={"field": "email"},
    )


def _minutes(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _count_failure(session: Session, user: User, now: datetime) -> None:
    failures = Failures(user.failed_logins, user.locked_until)
    if failures.fail(now, FAILURE_LIMIT):
        audit.record(
            session,
            AccountActions.LOCKED,
            actor="system",
            subject=f"user {user.id}",
            after={"locked_until": failures.mark.isoformat() if failures.mark else None},
            reason=f"{FAILURE_LIMIT} failed logins within {FAILURE_WINDOW.total_seconds() / 60:g} minutes",
            learner_id=user.id,
        )
    user.failed_logins, user.locked_until = failures.count, failures.mark


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def _locked_row(session: Session, user_id: int) -> User | None:
    # The row is locked until the request's commit (PostgreSQL), so parallel guesses are counted one
    # after the other instead of all reading the same count.
    return session.scalar(
        select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
    )


def authenticate(
    session: Session,
    email: str,
    password: str,
    *,
    throttle: LoginThrottle | None = None,
    client: str = "",
    now: datetime | None = None,
) -> User:
    """The active user with these credentials.

    `AuthenticationRequired` with one message for an unknown email, an inactive account and a wrong
    password; `RateLimited` (with seconds to wait) for a locked account, a locked unknown email, and a
    client address with too many failures. A locked account's password is not even checked.
    """
    now = now or utcnow()
    email = email.strip().lower()
    if throttle is not None:
        waiting = throttle.client_locked_for(client, now)
        if waiting:
            raise RateLimited(
                f"too many failed logins from your address: try again in {_minutes(waiting)}",
                retry_after=waiting,
                details={"field": "email"},
            )
    found = session.scalar(select(User.id).where(User.email == email))
    user = _locked_row(session, found) if found is not None else None
    if user is None:
        waiting = throttle.email_locked_for(email, now) if throttle is not None else 0
        if waiting:
            raise _locked_error(waiting)
        _password_matches(_DUMMY_HASH, password)
        if throttle is not None:
            throttle.email_failed(email, now)
            throttle.client_failed(client, now)
        raise AuthenticationRequired(WRONG_CREDENTIALS)
    waiting = lock_remaining(user, now)
    if waiting:
        raise _locked_error(waiting)
    if not _password_matches(user.password_hash, password) or not user.active:
        _count_failure(session, user, now)
        if throttle is not None:
            throttle.client_failed(client, now)
        raise AuthenticationRequired(WRONG_CREDENTIALS)
    user.failed_logins, user.locked_until = 0, None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


# ---------------------------------------------------------------- sessions and passwords


def end_sessions(session: Session, user: User, *, actor: str | None = None) -> int:
    """End every session of the user (their cookies carry an older generation); the new generation.

    With an `actor` the ending is audited (logging out everywhere); a plain logout passes none.
    """
    locked = _locked_row(session, user.id) or user
    locked.session_generation = (locked.session_generation or 0) + 1
    if actor is not None:
        audit.record(
            session,
            AccountActions.SESSIONS_ENDED,
            actor=actor,
            subject=f"user {user.id}",
            after={"session_generation": locked.session_generation},
            learner_id=user.id,
        )
    return locked.session_generation


def _check_new_password(password: str, *, field: str, label: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"{label} needs at least {MIN_PASSWORD_LENGTH} characters", details={"field": field}
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"{label} may have at most {MAX_PASSWORD_LENGTH} characters", details={"field": field}
        )


def change_password(
    session: Session,
    user: User,
    current_password: str,
    new_password: str,
    *,
    actor: str,
    now: datetime | None = None,
) -> int:
    """Set a new password after checking the current one; ends every session; the new generation.

    A wrong current password counts as a failed login, so a borrowed session cannot be used to guess
    the password without meeting the lockout.
    """
    now = now or utcnow()
    locked = _locked_row(session, user.id) or user
    waiting = lock_remaining(locked, now)
    if waiting:
        raise RateLimited(
            f"too many wrong passwords: try again in {_minutes(waiting)}",
            retry_after=waiting,
            details={"field": "current_password"},
        )
    if not _password_matches(locked.password_hash, current_password):
        _count_failure(session, locked, now)
        raise InvalidInput("the current password is not right", details={"field": "current_password"})
    _check_new_password(new_password, field="new_password", label="the new password")
    if new_password == current_password:
        raise InvalidInput(
            "the new password must differ from the current one", details={"field": "new_password"}
        )
    locked.password_hash = _hasher.hash(new_password)
    locked.failed_logins, locked.locked_until = 0, None
    locked.session_generation = (locked.session_generation or 0) + 1
    audit.record(
        session,
        AccountActions.PASSWORD_CHANGED,
        actor=actor,
        subject=f"user {user.id}",
        after={"session_generation": locked.session_generation},
        learner_id=user.id,
    )
    return locked.session_generation


def set_active(session: Session, user: User, active: bool, *, actor: str, reason: str = "") -> None:
    """Deactivate (every session and token stops working at once) or reactivate an account."""
    if user.active == active:
        return
    locked = _locked_row(session, user.id) or user
    locked.active = active
    if not active:
        locked.session_generation = (locked.session_generation or 0) + 1
    audit.record(
        session,
        AccountActions.REACTIVATED if active else AccountActions.DEACTIVATED,
        actor=actor,
        subject=f"user {user.id}",
        before={"active": not active},
        after={"active": active},
        reason=reason,
        learner_id=user.id,
    )


# ---------------------------------------------------------------- personal API tokens


def create_token(session: Session, user_id: int, name: str = "api") -> IssuedToken:
    name = name.strip()
    if not name:
        raise InvalidInput("give the token a name", details={"field": "name"})
    if len(name) > MAX_TOKEN_NAME_LENGTH:
        raise InvalidInput(
            f"the token name may have at most {MAX_TOKEN_NAME_LENGTH} characters", details={"field": "name"}
        )
    active = session.scalar(
        select(func.count(ApiToken.id)).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    )
    if (active or 0) >= MAX_ACTIVE_TOKENS:
        raise Conflict(
            f"you have {MAX_ACTIVE_TOKENS} active tokens, the most allowed: revoke one first",
            details={"field": "name"},
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user_id, name=name, token_hash=_token_hash(secret), prefix=secret[:10])
    session.add(token)
    session.flush()
    return IssuedToken(
        id=token.id, name=name, secret=secret, prefix=token.prefix, created_at=token.created_at
    )


def list_tokens(session: Session, user_id: int) -> list[TokenInfo]:
    """The user's tokens, active first, newest first; never their secrets."""
    tokens = session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user_id)
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(), ApiToken.id.desc())
    ).all()
    return [_token_info(token) for token in tokens]


def get_token(session: Session, user: User, token_id: int) -> TokenInfo:
    """One of the user's own tokens; anyone else's is `NotFound`, as if it did not exist."""
    return _token_info(_own_token(session, user, token_id))


def _own_token(session: Session, user: User, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        # The same answer for someone else's token as for none: ids tell nothing about other users.
        raise NotFound("you have no token with that id", details={"field": "token"})
    return token


def revoke_token(session: Session, user: User, token_id: int, *, actor: str) -> TokenInfo:
    """Revoke one of the user's own tokens (again is a no-op); anyone else's is `NotFound`."""
    token = _own_token(session, user, token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(
            session,
            AccountActions.TOKEN_REVOKED,
            actor=actor,
            subject=f"token {token.id}",
            before={"name": token.name, "prefix": token.prefix, "revoked": False},
            after={"name": token.name, "prefix": token.prefix, "revoked": True},
            learner_id=user.id,
        )
        session.flush()
    return _token_info(token)


def _token_info(token: ApiToken) -> TokenInfo:
    return TokenInfo(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


def user_for_token(session: Session, secret: str) -> User:
    """The user behind a Bearer token; `AuthenticationRequired` for unknown or revoked tokens."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        raise AuthenticationRequired("invalid API token")
    row = session.execute(_token_statement(), {"token_hash": _token_hash(secret)}).one_or_none()
    if row is None:
        raise AuthenticationRequired("invalid API token")
    user, token_id, revoked_at, last_used_at = row
    if revoked_at is not None or not user.active:
        raise AuthenticationRequired("invalid API token")
    now = utcnow()
    # Record use at most once a minute: a status poll must not turn every read into a write.
    if last_used_at is None or now - last_used_at > TOKEN_USE_RESOLUTION:
        tokens = table_of(ApiToken)
        session.execute(update(tokens).where(tokens.c.id == token_id).values(last_used_at=now))
    return user


@functools.cache
def _token_statement() -> Select[User, int, datetime | None, datetime | None]:
    """The token and its user in one query, built once per process: every API request starts here.
    One entity and three columns, not two entities joined (the ORM's cost is per loaded object).
    Parameter: token_hash."""
    return (
        select(User, ApiToken.id, ApiToken.revoked_at, ApiToken.last_used_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == bindparam("token_hash", type_=String))
    )


def _token_hash(secret: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough; slow hashing protects guessable secrets.
    return hashlib.sha256(secret.encode()).hexdigest()


# ---------------------------------------------------------------- users and enrolment


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
