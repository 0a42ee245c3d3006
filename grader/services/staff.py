"""Running programs: accounts and roles, enrolment (one by one and CSV import), catalog status, queue
health with retries and regrades, and the gradebook.

Every function takes the acting user and narrows to what that user runs: admins act everywhere,
program staff (`ProgramStaff` role `staff`) in their programs only, and anyone else is refused
(`access.staff_scope`). Account administration (creating users, changing roles, deactivating) is for
admins. Every change is written to the audit log in the same transaction, under the action names of
`StaffActions`. No Flask here: pages and API routes are thin layers over these functions.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from grader.catalog.bundle import ExpectedTests
from grader.catalog.loader import EXPECTED_TESTS_KEY, read_catalog
from grader.errors import CatalogError, Conflict, InvalidInput, NotFound, PayloadTooLarge, PermissionDenied
from grader.interfaces import TaskQueue
from grader.kinds import KINDS
from grader.kinds.repository import release_for
from grader.models import (
    ApiToken,
    Assessment,
    AssessmentKind,
    AssessmentVersion,
    CredentialAward,
    Enrollment,
    GradingRun,
    Program,
    ProgramStaff,
    Requirement,
    Result,
    ReviewTask,
    Role,
    RunStatus,
    StaffRole,
    Submission,
    SubmissionStatus,
    TaskStatus,
    User,
    utcnow,
)
from grader.services import access, accounts, audit, progress, regrade
from grader.services.catalog import LoadReport, current_version, load_catalog
from grader.services.repository import visible_tests
from grader.services.submissions import send_run


class StaffActions:
    """The audit actions of staff changes. Deactivation and token revocation are recorded by
    `accounts` (`AccountActions`), grading changes by their services (`audit.Actions`)."""

    USER_CREATED = "user.created"
    USER_ROLE_CHANGED = "user.role_changed"
    PROGRAM_STAFF_ADDED = "program_staff.added"
    PROGRAM_STAFF_REMOVED = "program_staff.removed"
    LEARNER_ENROLLED = "enrolment.created"
    RUN_RETRIED = "run.retried"
    CATALOG_LOADED = "catalog.loaded"
    ASSESSMENT_REGRADED = "assessment.regraded"


ROLE_WORDS = {Role.LEARNER: "learner", Role.REVIEWER: "reviewer", Role.ADMIN: "admin"}
STAFF_ROLE_WORDS = {StaffRole.REVIEWER: "reviewer", StaffRole.STAFF: "staff"}
MAX_NAME = 200
MIN_REASON = 10
MAX_REASON = 2000
PAGE_SIZE = 50
GENERATED_PASSWORD_BYTES = 12  # 16 characters of URL-safe base64, above accounts.MIN_PASSWORD_LENGTH
# CSV import: each new account costs an argon2 hash (tens of milliseconds), so a file stays small
# enough to import within one request.
MAX_IMPORT_BYTES = 128 * 1024
MAX_IMPORT_ROWS = 500
GRADEBOOK_STATUSES = ("passed", "failed", "pending", "held_back", "not_attempted")
STATUS_WORDS = {
    "passed": "passed",
    "failed": "failed",
    "pending": "pending",
    "held_back": "held back",
    "not_attempted": "not attempted",
}


def _programs(session: Session, user: User) -> set[int] | None:
    return access.staff_scope(session, user)


def _program_run_by(session: Session, user: User, slug: str) -> Program:
    program = access.program_by_slug(session, slug)
    access.require_staff_of(session, user, program)
    return program


def _user(session: Session, user_id: int) -> User:
    found = session.get(User, user_id)
    if found is None:
        raise NotFound("no such user", details={"field": "user"})
    return found


def _reason(text: str | None, *, required: bool) -> str:
    reason = (text or "").strip()
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason is longer than {MAX_REASON} characters", details={"field": "reason"})
    if required and len(reason) < MIN_REASON:
        raise InvalidInput(
            f"say why in the reason, in at least {MIN_REASON} characters", details={"field": "reason"}
        )
    return reason


def _role(value: str | None) -> Role:
    try:
        return Role((value or "").strip())
    except ValueError:
        raise InvalidInput("choose a role: learner, reviewer or admin", details={"field": "role"}) from None


def _staff_role(value: str | None) -> StaffRole:
    try:
        return StaffRole((value or "").strip())
    except ValueError:
        raise InvalidInput(
            "choose a program role: reviewer (reviews its work) or staff (also runs the program)",
            details={"field": "role"},
        ) from None


def _name(value: str | None) -> str:
    name = (value or "").strip()
    if len(name) > MAX_NAME:
        raise InvalidInput(f"the name is longer than {MAX_NAME} characters", details={"field": "name"})
    return name


# ---------------------------------------------------------------- the workspace's front page


@dataclass(frozen=True)
class ProgramSummary:
    slug: str
    title: str
    learners: int
    reviews_waiting: int
    requirements: int


def programs_run_by(session: Session, user: User) -> list[ProgramSummary]:
    """The programs `user` runs, with a few counts for the front page."""
    programs = _programs(session, user)
    query = select(Program).order_by(Program.title)
    if programs is not None:
        query = query.where(Program.id.in_(programs))
    summaries = []
    for program in session.scalars(query).all():
        learners = session.scalar(
            select(func.count(Enrollment.id)).where(Enrollment.program_id == program.id)
        )
        assessment_ids = [r.assessment_id for r in program.requirements]
        waiting = (
            session.scalar(
                select(func.count(ReviewTask.id))
                .join(Submission, Submission.id == ReviewTask.submission_id)
                .where(
                    Submission.assessment_id.in_(assessment_ids),
                    ReviewTask.status.in_([TaskStatus.OPEN, TaskStatus.CLAIMED]),
                )
            )
            if assessment_ids
            else 0
        )
        summaries.append(
            ProgramSummary(
                program.slug, program.title, learners or 0, waiting or 0, len(program.requirements)
            )
        )
    return summaries


# ---------------------------------------------------------------- accounts and roles (admins)


@dataclass(frozen=True)
class ProgramRole:
    program: str
    title: str
    role: str  # reviewer | staff


@dataclass(frozen=True)
class TokenRow:
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class AccountRow:
    id: int
    email: str
    name: str
    role: str
    active: bool
    created_at: datetime
    programs: tuple[ProgramRole, ...] = ()
    enrolled: tuple[str, ...] = ()  # program slugs
    live_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "active": self.active,
            "created_at": self.created_at.isoformat(),
            "programs": [{"program": p.program, "role": p.role} for p in self.programs],
            "enrolled": list(self.enrolled),
            "live_tokens": self.live_tokens,
        }


@dataclass(frozen=True)
class AccountPage:
    rows: tuple[AccountRow, ...]
    total: int
    offset: int
    limit: int


def _account_row(session: Session, user: User) -> AccountRow:
    roles = session.execute(
        select(Program.slug, Program.title, ProgramStaff.role)
        .join(ProgramStaff, ProgramStaff.program_id == Program.id)
        .where(ProgramStaff.user_id == user.id)
        .order_by(Program.title)
    ).all()
    enrolled = session.scalars(
        select(Program.slug)
        .join(Enrollment, Enrollment.program_id == Program.id)
        .where(Enrollment.user_id == user.id)
        .order_by(Program.slug)
    ).all()
    tokens = session.scalar(
        select(func.count(ApiToken.id)).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    )
    return AccountRow(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        active=user.active,
        created_at=user.created_at,
        programs=tuple(ProgramRole(slug, title, role) for slug, title, role in roles),
        enrolled=tuple(enrolled),
        live_tokens=tokens or 0,
    )


def list_accounts(
    session: Session,
    admin: User,
    *,
    search: str = "",
    role: str = "",
    limit: int = PAGE_SIZE,
    offset: int = 0,
) -> AccountPage:
    """Accounts whose email or name contains `search`, of one role if given, by email."""
    access.require_admin(admin)
    query = select(User)
    needle = search.strip()[:200]
    if needle:
        pattern = f"%{needle.lower()}%"
        query = query.where(or_(func.lower(User.email).like(pattern), func.lower(User.name).like(pattern)))
    if role:
        query = query.where(User.role == _role(role))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    limit = max(1, min(limit, 200))
    users = session.scalars(query.order_by(User.email).limit(limit).offset(max(0, offset))).all()
    return AccountPage(tuple(_account_row(session, u) for u in users), total, max(0, offset), limit)


@dataclass(frozen=True)
class AccountDetail:
    account: AccountRow
    tokens: tuple[TokenRow, ...]
    locked_until: datetime | None


def account_detail(session: Session, admin: User, user_id: int) -> AccountDetail:
    access.require_admin(admin)
    user = _user(session, user_id)
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
    ).all()
    return AccountDetail(
        account=_account_row(session, user),
        tokens=tuple(
            TokenRow(t.id, t.name, t.prefix, t.created_at, t.last_used_at, t.revoked_at) for t in tokens
        ),
        locked_until=user.locked_until,
    )


def create_account(session: Session, admin: User, *, email: str, name: str, role: str, password: str) -> User:
    """A new account with the password rules of `accounts`; audited."""
    access.require_admin(admin)
    chosen = _role(role)
    user = accounts.create_user(session, email=email, name=_name(name), password=password, role=chosen)
    audit.record(
        session,
        StaffActions.USER_CREATED,
        actor=audit.user_actor(admin),
        subject=f"user {user.id}",
        after={"email": user.email, "role": user.role},
        learner_id=user.id,
    )
    return user


def change_role(session: Session, admin: User, user_id: int, role: str) -> User:
    """Give an account another role. A learner reviews nothing, so its program roles go with it."""
    access.require_admin(admin)
    user = _user(session, user_id)
    chosen = _role(role)
    if user.id == admin.id and chosen != user.role:
        raise Conflict("you cannot change your own role; ask another admin", details={"field": "role"})
    if chosen == user.role:
        return user
    before = {"role": user.role}
    user.role = chosen
    removed: list[str] = []
    if chosen == Role.LEARNER:
        for row in session.scalars(select(ProgramStaff).where(ProgramStaff.user_id == user.id)).all():
            removed.append(row.program.slug)
            session.delete(row)
    session.flush()
    audit.record(
        session,
        StaffActions.USER_ROLE_CHANGED,
        actor=audit.user_actor(admin),
        subject=f"user {user.id}",
        before=before,
        after={"role": chosen, **({"programs_removed": removed} if removed else {})},
        learner_id=user.id,
    )
    return user


def set_active(session: Session, admin: User, user_id: int, active: bool) -> User:
    """Deactivate (or reactivate) an account (`accounts.set_active`, audited there): deactivating ends
    its sessions at once (the session generation moves on), and its API tokens stop working."""
    access.require_admin(admin)
    user = _user(session, user_id)
    if user.id == admin.id and not active:
        raise Conflict(
            "you cannot deactivate your own account; ask another admin", details={"field": "active"}
        )
    accounts.set_active(session, user, active, actor=audit.user_actor(admin))
    session.flush()
    return user


def may_revoke_tokens(session: Session, actor: User, target: User) -> bool:
    """Admins revoke anyone's tokens; program staff those of learners in their programs."""
    programs = access.programs_of(session, actor, staff_only=True)
    if programs is None:
        return True
    return target.role == Role.LEARNER and access.learner_in(session, target.id, programs)


def revoke_tokens(session: Session, actor: User, user_id: int) -> int:
    """Revoke every live API token of a user (each audited by `accounts.revoke_token`); how many."""
    _programs(session, actor)
    target = session.get(User, user_id)
    if target is None or not may_revoke_tokens(session, actor, target):
        # Staff learn nothing about accounts outside their programs, not even that they exist.
        raise NotFound("no such learner in the programs you run", details={"field": "user"})
    live = session.scalars(
        select(ApiToken.id).where(ApiToken.user_id == target.id, ApiToken.revoked_at.is_(None))
    ).all()
    for token_id in live:
        accounts.revoke_token(session, target, token_id, actor=audit.user_actor(actor))
    session.flush()
    return len(live)


@dataclass(frozen=True)
class TeamMember:
    user_id: int
    email: str
    name: str
    role: str  # reviewer | staff


def program_team(session: Session, user: User, program_slug: str) -> list[TeamMember]:
    program = _program_run_by(session, user, program_slug)
    rows = session.execute(
        select(User, ProgramStaff.role)
        .join(ProgramStaff, ProgramStaff.user_id == User.id)
        .where(ProgramStaff.program_id == program.id)
        .order_by(User.email)
    ).all()
    return [TeamMember(u.id, u.email, u.name, role) for u, role in rows]


def add_program_staff(session: Session, actor: User, program_slug: str, email: str, role: str) -> TeamMember:
    """Make an account a reviewer (or staff) of a program; admins anywhere, staff in their program."""
    program = _program_run_by(session, actor, program_slug)
    chosen = _staff_role(role)
    if not email.strip():
        raise InvalidInput("give the email address of the account", details={"field": "email"})
    user = accounts.find_user_by_email(session, email)
    if user.role == Role.LEARNER:
        raise Conflict(
            f"{user.email} is a learner account: an admin must give it the reviewer role first",
            details={"field": "email"},
        )
    existing = session.scalar(
        select(ProgramStaff.role).where(
            ProgramStaff.user_id == user.id, ProgramStaff.program_id == program.id
        )
    )
    access.add_staff(session, user, program.slug, chosen)
    if existing != chosen:
        audit.record(
            session,
            StaffActions.PROGRAM_STAFF_ADDED,
            actor=audit.user_actor(actor),
            subject=f"program {program.slug}",
            before=None if existing is None else {"role": existing},
            after={"user": user.email, "role": chosen},
            learner_id=user.id,
        )
    return TeamMember(user.id, user.email, user.name, chosen)


def remove_program_staff(session: Session, actor: User, program_slug: str, user_id: int) -> None:
    program = _program_run_by(session, actor, program_slug)
    user = _user(session, user_id)
    if user.id == actor.id and actor.role != Role.ADMIN:
        raise Conflict("you cannot remove yourself from the program's staff; ask an admin")
    row = access.remove_staff(session, user, program.slug)
    if row is None:
        raise NotFound(f"{user.email} is not on the team of {program.title}", details={"field": "user"})
    audit.record(
        session,
        StaffActions.PROGRAM_STAFF_REMOVED,
        actor=audit.user_actor(actor),
        subject=f"program {program.slug}",
        before={"user": user.email, "role": row.role},
        learner_id=user.id,
    )


# ---------------------------------------------------------------- enrolment


@dataclass(frozen=True)
class Enrolled:
    user_id: int
    email: str
    name: str
    created: bool  # a new account was made
    password: str | None  # generated for a new account: shown once, never stored

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user_id,
            "email": self.email,
            "name": self.name,
            "created": self.created,
            **({"password": self.password} if self.password else {}),
        }


@dataclass(frozen=True)
class LearnerRow:
    user_id: int
    email: str
    name: str
    active: bool
    enrolled_at: datetime
    live_tokens: int


def enrolled_learners(session: Session, user: User, program_slug: str) -> list[LearnerRow]:
    program = _program_run_by(session, user, program_slug)
    tokens = (
        select(ApiToken.user_id, func.count(ApiToken.id).label("live"))
        .where(ApiToken.revoked_at.is_(None))
        .group_by(ApiToken.user_id)
        .subquery()
    )
    rows = session.execute(
        select(User, Enrollment.created_at, tokens.c.live)
        .join(Enrollment, Enrollment.user_id == User.id)
        .outerjoin(tokens, tokens.c.user_id == User.id)
        .where(Enrollment.program_id == program.id)
        .order_by(User.email)
    ).all()
    return [LearnerRow(u.id, u.email, u.name, u.active, at, live or 0) for u, at, live in rows]


def _check_enrollable(session: Session, program: Program, user: User) -> str | None:
    """Why this existing account cannot be enrolled, in words; None if it can."""
    if user.role != Role.LEARNER:
        return f"{user.email} is a {user.role} account: only learner accounts are enrolled"
    if not user.active:
        return f"the account {user.email} is deactivated: an admin can reactivate it"
    enrolled = session.scalar(
        select(Enrollment.id).where(Enrollment.user_id == user.id, Enrollment.program_id == program.id)
    )
    return "already enrolled" if enrolled is not None else None


def _new_learner(session: Session, email: str, name: str, password: str | None) -> tuple[User, str | None]:
    generated = None if password else secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    user = accounts.create_user(
        session, email=email, name=name, password=password or generated or "", role=Role.LEARNER
    )
    return user, generated


def _enrol(
    session: Session, actor: User, program: Program, user: User, *, created: bool, reason: str
) -> None:
    accounts.enroll(session, user.id, program.slug)
    actor_text = audit.user_actor(actor)
    if created:
        audit.record(
            session,
            StaffActions.USER_CREATED,
            actor=actor_text,
            subject=f"user {user.id}",
            after={"email": user.email, "role": user.role},
            reason=reason,
            learner_id=user.id,
        )
    audit.record(
        session,
        StaffActions.LEARNER_ENROLLED,
        actor=actor_text,
        subject=f"program {program.slug}",
        after={"program": program.slug, "learner": user.email},
        reason=reason,
        learner_id=user.id,
    )


def enrol(session: Session, actor: User, program_slug: str, email: str, name: str = "") -> Enrolled:
    """Enrol one learner by email, creating the account (with a generated password) if missing."""
    program = _program_run_by(session, actor, program_slug)
    email = email.strip().lower()
    if not email:
        raise InvalidInput("give the learner's email address", details={"field": "email"})
    name = _name(name)
    user = session.scalar(select(User).where(User.email == email))
    password = None
    created = user is None
    if user is None:
        user, password = _new_learner(session, email, name, None)
    else:
        problem = _check_enrollable(session, program, user)
        if problem == "already enrolled":
            raise Conflict(f"{user.email} is already enrolled in {program.title}", details={"field": "email"})
        if problem is not None:
            raise Conflict(problem, details={"field": "email"})
    _enrol(session, actor, program, user, created=created, reason="enrolled by staff")
    return Enrolled(user.id, user.email, user.name, created, password)


@dataclass(frozen=True)
class ImportRow:
    line: int  # in the file, the header being line 1
    email: str
    name: str
    password_given: bool
    action: str  # create | enrol | skip | error
    message: str  # what will happen, or what is wrong, in words


@dataclass(frozen=True)
class ImportPreview:
    program: str
    program_title: str
    digest: str  # SHA-256 of the file: the confirm step must send the same file
    rows: tuple[ImportRow, ...]

    def count(self, action: str) -> int:
        return sum(1 for row in self.rows if row.action == action)

    @property
    def writes(self) -> int:
        return self.count("create") + self.count("enrol")

    def to_dict(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "digest": self.digest,
            "counts": {a: self.count(a) for a in ("create", "enrol", "skip", "error")},
            "rows": [
                {
                    "line": r.line,
                    "email": r.email,
                    "name": r.name,
                    "password_given": r.password_given,
                    "action": r.action,
                    "message": r.message,
                }
                for r in self.rows
            ],
        }


@dataclass(frozen=True)
class ImportOutcome:
    preview: ImportPreview
    enrolled: tuple[Enrolled, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.preview.to_dict(), "enrolled": [e.to_dict() for e in self.enrolled]}


@dataclass(frozen=True)
class _ParsedRow:
    line: int
    email: str
    name: str
    password: str | None


def _valid_email(email: str) -> bool:
    # The rule `accounts.create_user` applies, so a row that passes the preview passes the import.
    return bool(accounts._EMAIL.match(email))


def _parse_csv(data: bytes) -> list[_ParsedRow]:
    if len(data) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(
            f"the file is larger than {MAX_IMPORT_BYTES // 1024} KB; split it into smaller files",
            details={"field": "file", "limit_bytes": MAX_IMPORT_BYTES},
        )
    try:
        text = data.decode("utf-8-sig")  # a spreadsheet's UTF-8 export starts with a byte-order mark
    except UnicodeDecodeError:
        raise InvalidInput(
            "the file is not UTF-8 text: save it as CSV UTF-8", details={"field": "file"}
        ) from None
    if "\0" in text:
        raise InvalidInput("the file is not a text file", details={"field": "file"})
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise InvalidInput(
                "the file is empty: the first row must be the header email,name (and password, if any)",
                details={"field": "file"},
            )
        columns = [cell.strip().lower() for cell in header]
        if columns[:2] != ["email", "name"] or columns[2:] not in ([], ["password"]):
            raise InvalidInput(
                "the first row must be the header email,name or email,name,password "
                f"(it is {','.join(header)[:200]})",
                details={"field": "file"},
            )
        rows: list[_ParsedRow] = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines are no rows
            if len(rows) >= MAX_IMPORT_ROWS:
                raise PayloadTooLarge(
                    f"the file has more than {MAX_IMPORT_ROWS} learners; split it into smaller files",
                    details={"field": "file", "limit_rows": MAX_IMPORT_ROWS},
                )
            line = reader.line_num
            if len(cells) > len(columns):
                rows.append(_ParsedRow(line, "", "", None))  # reported as a bad row below
                continue
            cells = cells + [""] * (len(columns) - len(cells))
            password = cells[2] if len(columns) == 3 and cells[2] else None
            rows.append(_ParsedRow(line, cells[0].strip(), cells[1].strip(), password))
    except csv.Error as exc:
        raise InvalidInput(
            f"line {reader.line_num} of the file is not valid CSV: {exc}", details={"field": "file"}
        ) from None
    return rows


def _preview_rows(session: Session, program: Program, parsed: Sequence[_ParsedRow]) -> list[ImportRow]:
    seen: dict[str, int] = {}
    out = []
    for row in parsed:
        email = row.email.lower()
        given = row.password is not None

        def error(message: str, row: _ParsedRow = row, email: str = email, given: bool = given) -> ImportRow:
            return ImportRow(row.line, email, row.name, given, "error", message)

        if not email and not row.name:
            out.append(error("more columns than the header names"))
            continue
        if not _valid_email(email):
            out.append(error("not a valid email address"))
            continue
        if email in seen:
            out.append(error(f"duplicate in the file: the same email is on line {seen[email]}"))
            continue
        seen[email] = row.line
        if len(row.name) > MAX_NAME:
            out.append(error(f"the name is longer than {MAX_NAME} characters"))
            continue
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            if row.password is not None and len(row.password) < accounts.MIN_PASSWORD_LENGTH:
                out.append(error(f"the password needs at least {accounts.MIN_PASSWORD_LENGTH} characters"))
                continue
            how = "with the password in the file" if given else "with a generated password, shown once"
            out.append(
                ImportRow(row.line, email, row.name, given, "create", f"new account {how}, then enrolled")
            )
            continue
        problem = _check_enrollable(session, program, user)
        if problem == "already enrolled":
            out.append(
                ImportRow(row.line, email, row.name, given, "skip", "already enrolled: nothing changes")
            )
        elif problem is not None:
            out.append(error(problem))
        else:
            note = "; the password in the file is ignored (the account has one)" if given else ""
            out.append(
                ImportRow(row.line, email, row.name, given, "enrol", "existing account enrolled" + note)
            )
    return out


def preview_import(session: Session, actor: User, program_slug: str, data: bytes) -> ImportPreview:
    """What importing this CSV file would do, row by row; writes nothing."""
    program = _program_run_by(session, actor, program_slug)
    rows = _preview_rows(session, program, _parse_csv(data))
    return ImportPreview(program.slug, program.title, hashlib.sha256(data).hexdigest(), tuple(rows))


def apply_import(
    session: Session, actor: User, program_slug: str, data: bytes, digest: str | None
) -> ImportOutcome:
    """Import the file previewed under `digest`: accounts created, learners enrolled; rows with an
    error (or already enrolled) are left out. The rows are checked again, as things may have changed
    since the preview."""
    program = _program_run_by(session, actor, program_slug)
    if digest is not None and hashlib.sha256(data).hexdigest() != digest.strip().lower():
        raise Conflict(
            "this is not the file that was previewed: preview it again before importing",
            details={"field": "file"},
        )
    parsed = _parse_csv(data)
    rows = _preview_rows(session, program, parsed)
    passwords = {p.line: p.password for p in parsed}
    reason = f"CSV import {hashlib.sha256(data).hexdigest()[:12]}"
    enrolled = []
    for row in rows:
        if row.action == "create":
            user, generated = _new_learner(session, row.email, row.name, passwords.get(row.line))
            _enrol(session, actor, program, user, created=True, reason=reason)
            enrolled.append(Enrolled(user.id, user.email, user.name, True, generated))
        elif row.action == "enrol":
            user = accounts.find_user_by_email(session, row.email)
            _enrol(session, actor, program, user, created=False, reason=reason)
            enrolled.append(Enrolled(user.id, user.email, user.name, False, None))
    session.flush()
    preview = ImportPreview(program.slug, program.title, hashlib.sha256(data).hexdigest(), tuple(rows))
    return ImportOutcome(preview, tuple(enrolled))


# ---------------------------------------------------------------- catalog status


@dataclass(frozen=True)
class VersionRow:
    number: int
    created_at: datetime
    content_hash: str
    current: bool

    @property
    def hash_prefix(self) -> str:
        return self.content_hash[:12]


@dataclass(frozen=True)
class SelfCheckView:
    checked_at: datetime
    backend: str
    reference_passed: int
    starter_failed: int
    pinned_tests: int


@dataclass(frozen=True)
class CatalogAssessment:
    slug: str
    title: str
    kind: str
    programs: tuple[str, ...]  # titles
    versions: tuple[VersionRow, ...]  # newest first
    pinned_tests: int | None  # repository assessments: the tests expected_tests.json pins
    self_check: SelfCheckView | None

    @property
    def current(self) -> VersionRow | None:
        return next((v for v in self.versions if v.current), None)

    def to_dict(self) -> dict[str, Any]:
        check = self.self_check
        return {
            "slug": self.slug,
            "title": self.title,
            "kind": self.kind,
            "programs": list(self.programs),
            "current_version": self.current.number if self.current else None,
            "versions": [
                {
                    "version": v.number,
                    "loaded_at": v.created_at.isoformat(),
                    "content_hash": v.content_hash,
                    "current": v.current,
                }
                for v in self.versions
            ],
            "pinned_tests": self.pinned_tests,
            "self_check": None
            if check is None
            else {
                "checked_at": check.checked_at.isoformat(),
                "backend": check.backend,
                "reference_passed": check.reference_passed,
                "starter_failed": check.starter_failed,
            },
        }


def catalog_status(session: Session, user: User) -> list[CatalogAssessment]:
    """Per assessment of the user's programs: its loaded versions and its last recorded self-check."""
    programs = _programs(session, user)
    query = select(Assessment).order_by(Assessment.title)
    wanted = access.assessments_of(session, programs)
    if wanted is not None:
        query = query.where(Assessment.id.in_(wanted))
    out = []
    for assessment in session.scalars(query).all():
        titles = session.scalars(
            select(Program.title)
            .join(Requirement, Requirement.program_id == Program.id)
            .where(Requirement.assessment_id == assessment.id)
            .order_by(Program.title)
        ).all()
        versions = tuple(
            VersionRow(v.version, v.created_at, v.content_hash, v.version == assessment.current_version)
            for v in sorted(assessment.versions, key=lambda v: v.version, reverse=True)
        )
        pinned, check = _self_check(assessment, versions)
        out.append(
            CatalogAssessment(
                assessment.slug, assessment.title, assessment.kind, tuple(titles), versions, pinned, check
            )
        )
    return out


def _self_check(
    assessment: Assessment, versions: Sequence[VersionRow]
) -> tuple[int | None, SelfCheckView | None]:
    if assessment.kind != AssessmentKind.REPOSITORY:
        return None, None
    current = next((v for v in assessment.versions if v.version == assessment.current_version), None)
    raw = current.definition.get(EXPECTED_TESTS_KEY) if current is not None else None
    if raw is None:
        return None, None
    try:
        expected = ExpectedTests.from_file_data(raw, {})
    except ValueError:
        return None, None
    pinned = sum(len(tests) for tests in expected.suites.values())
    check = expected.self_check
    if check is None:
        return pinned, None
    return pinned, SelfCheckView(
        check.checked_at, check.backend, check.reference_passed, check.starter_failed, pinned
    )


def load_command(path: Path) -> str:
    """The shell command that does what the page's button does."""
    return f"grader catalog load {path}"


def load_catalog_folder(session: Session, admin: User, path: Path) -> LoadReport:
    """Read and load the catalog folder (admins); `CatalogError` lists its problems as file:line.

    A catalog with problems changes nothing: the load's partial writes are rolled back.
    """
    access.require_admin(admin)
    try:
        report = load_catalog(session, read_catalog(path))
    except CatalogError:
        session.rollback()
        raise
    audit.record(
        session,
        StaffActions.CATALOG_LOADED,
        actor=audit.user_actor(admin),
        subject=f"catalog {str(path)[-80:]}",
        after={
            "created": report.created,
            "new_versions": report.new_versions,
            "unchanged": len(report.unchanged),
        },
    )
    session.flush()
    return report


# ---------------------------------------------------------------- queue health


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    queued: int
    running: int
    oldest_queued_at: datetime | None


@dataclass(frozen=True)
class ErrorRun:
    run_id: str
    submission_id: str
    assessment: str
    assessment_title: str
    learner: str
    attempt: int
    tries: int
    last_error: str
    failed_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "submission": self.submission_id,
            "assessment": self.assessment,
            "learner": self.learner,
            "attempt": self.attempt,
            "tries": self.tries,
            "last_error": self.last_error,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
        }


@dataclass(frozen=True)
class ReviewBacklog:
    assessment: str
    assessment_title: str
    open: int
    claimed: int
    oldest: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "assessment": self.assessment,
            "open": self.open,
            "claimed": self.claimed,
            "oldest_since": self.oldest.isoformat(),
        }


@dataclass(frozen=True)
class QueueHealth:
    queues: tuple[QueueDepth, ...]
    errors: tuple[ErrorRun, ...]
    reviews: tuple[ReviewBacklog, ...]
    regradable: tuple[tuple[str, str], ...] = field(default=())  # (slug, title) of the assessments

    @property
    def oldest(self) -> QueueDepth | None:
        waiting = [q for q in self.queues if q.oldest_queued_at is not None]
        return min(waiting, key=lambda q: q.oldest_queued_at or utcnow(), default=None)

    def to_dict(self) -> dict[str, Any]:
        oldest = self.oldest
        return {
            "queues": [
                {
                    "queue": q.queue,
                    "queued": q.queued,
                    "running": q.running,
                    "oldest_queued_at": q.oldest_queued_at.isoformat() if q.oldest_queued_at else None,
                }
                for q in self.queues
            ],
            "oldest_waiting": None
            if oldest is None or oldest.oldest_queued_at is None
            else {
                "queue": oldest.queue,
                "since": oldest.oldest_queued_at.isoformat(),
                "seconds": int((utcnow() - oldest.oldest_queued_at).total_seconds()),
            },
            "errors": [e.to_dict() for e in self.errors],
            "reviews_waiting": [r.to_dict() for r in self.reviews],
        }


MAX_ERRORS_SHOWN = 100


def queue_health(session: Session, user: User) -> QueueHealth:
    """Depth per queue, runs in error with their last error, reviews waiting: for the user's programs."""
    programs = _programs(session, user)
    wanted = access.assessments_of(session, programs)

    def scoped(query: Any) -> Any:
        return query if wanted is None else query.where(Submission.assessment_id.in_(wanted))

    depth = session.execute(
        scoped(
            select(
                GradingRun.queue,
                GradingRun.status,
                func.count(GradingRun.id),
                func.min(GradingRun.requested_at),
            )
            .join(Submission, Submission.id == GradingRun.submission_id)
            .where(GradingRun.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
            .group_by(GradingRun.queue, GradingRun.status)
        )
    ).all()
    names = sorted({kind.queue for kind in KINDS.values()} | {row[0] for row in depth})
    queues = []
    for name in names:
        queued = next((row for row in depth if row[0] == name and row[1] == RunStatus.QUEUED), None)
        running = next((row for row in depth if row[0] == name and row[1] == RunStatus.RUNNING), None)
        queues.append(
            QueueDepth(
                name,
                queued[2] if queued else 0,
                running[2] if running else 0,
                _aware(queued[3]) if queued else None,
            )
        )
    newest_run = (
        select(GradingRun.submission_id, func.max(GradingRun.requested_at).label("newest"))
        .group_by(GradingRun.submission_id)
        .subquery()
    )
    failed = session.execute(
        scoped(
            select(GradingRun, Submission, Assessment, User)
            .join(Submission, Submission.id == GradingRun.submission_id)
            .join(Assessment, Assessment.id == Submission.assessment_id)
            .join(User, User.id == Submission.user_id)
            .join(
                newest_run,
                (newest_run.c.submission_id == GradingRun.submission_id)
                & (newest_run.c.newest == GradingRun.requested_at),
            )
            .where(GradingRun.status == RunStatus.ERROR)
            .order_by(GradingRun.finished_at.desc(), GradingRun.requested_at.desc())
            .limit(MAX_ERRORS_SHOWN)
        )
    ).all()
    errors = tuple(
        ErrorRun(
            run.id,
            submission.id,
            assessment.slug,
            assessment.title,
            learner.email,
            submission.attempt_number,
            run.tries,
            run.last_error or "no error was recorded",
            run.finished_at,
        )
        for run, submission, assessment, learner in failed
    )
    backlog = session.execute(
        scoped(
            select(
                Assessment.slug,
                Assessment.title,
                ReviewTask.status,
                func.count(ReviewTask.id),
                func.min(ReviewTask.created_at),
            )
            .join(Submission, Submission.id == ReviewTask.submission_id)
            .join(Assessment, Assessment.id == Submission.assessment_id)
            .where(ReviewTask.status.in_([TaskStatus.OPEN, TaskStatus.CLAIMED]))
            .group_by(Assessment.slug, Assessment.title, ReviewTask.status)
        )
    ).all()
    reviews: dict[str, dict[str, Any]] = {}
    for slug, title, status, count, oldest in backlog:
        entry = reviews.setdefault(slug, {"title": title, "open": 0, "claimed": 0, "oldest": _aware(oldest)})
        entry[str(status)] = count
        entry["oldest"] = min(entry["oldest"], _aware(oldest))
    regradable_query = select(Assessment.slug, Assessment.title).order_by(Assessment.title)
    if wanted is not None:
        regradable_query = regradable_query.where(Assessment.id.in_(wanted))
    return QueueHealth(
        queues=tuple(queues),
        errors=errors,
        reviews=tuple(
            ReviewBacklog(slug, e["title"], e["open"], e["claimed"], e["oldest"])
            for slug, e in sorted(reviews.items(), key=lambda item: item[1]["oldest"])
        ),
        regradable=tuple((slug, title) for slug, title in session.execute(regradable_query).all()),
    )


def _aware(value: datetime) -> datetime:
    # Aggregates (min, max) come back without the column type's conversion on SQLite.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in_flight(session: Session, submission_id: str) -> int:
    return (
        session.scalar(
            select(func.count(GradingRun.id)).where(
                GradingRun.submission_id == submission_id,
                GradingRun.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]),
            )
        )
        or 0
    )


def retry_run(session: Session, queue: TaskQueue, actor: User, run_id: str, reason: str = "") -> GradingRun:
    """Grade a submission again after its run ended in error: a new run against the same version."""
    _programs(session, actor)
    run = session.get(GradingRun, run_id) if len(run_id) <= 64 else None
    if run is None:
        raise NotFound("no such grading run", details={"field": "run"})
    submission = run.submission
    try:
        access.require_staff_of_assessment(
            session, actor, submission.assessment_id, submission.assessment.slug
        )
    except PermissionDenied:
        raise NotFound("no such grading run in the programs you run", details={"field": "run"}) from None
    reason = _reason(reason, required=False)
    if run.status != RunStatus.ERROR:
        raise Conflict(
            f"this run is {run.status}, not in error: there is nothing to retry", details={"field": "run"}
        )
    newest = session.scalar(
        select(GradingRun.id)
        .where(GradingRun.submission_id == submission.id)
        .order_by(GradingRun.requested_at.desc())
        .limit(1)
    )
    if newest != run.id or _in_flight(session, submission.id):
        raise Conflict(
            "this submission has been graded again since; see its newest run", details={"field": "run"}
        )
    retry = GradingRun(
        submission=submission,
        queue=run.queue,
        reason="retry",
        assessment_version_id=run.assessment_version_id,
    )
    submission.status = SubmissionStatus.QUEUED
    session.add(retry)
    session.flush()
    audit.record(
        session,
        StaffActions.RUN_RETRIED,
        actor=audit.user_actor(actor),
        subject=f"run {run.id}",
        before={"status": run.status, "last_error": (run.last_error or "")[:500]},
        after={"run": retry.id, "status": RunStatus.QUEUED},
        reason=reason,
        **audit.submission_subject(submission),
    )
    session.commit()  # the run must be durable before its id reaches the broker
    send_run(session, queue, retry)
    return retry


# ---------------------------------------------------------------- regrades


@dataclass(frozen=True)
class BusySubmission:
    submission_id: str
    learner: str
    status: str


@dataclass(frozen=True)
class RegradePreview:
    assessment: str
    title: str
    version: int
    only_latest: bool
    submissions: int  # every submission the regrade looks at
    busy: tuple[BusySubmission, ...]  # already waiting for or in grading: skipped

    @property
    def will_queue(self) -> int:
        return self.submissions - len(self.busy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "assessment": self.assessment,
            "version": self.version,
            "only_latest": self.only_latest,
            "submissions": self.submissions,
            "will_queue": self.will_queue,
            "busy": [
                {"submission": b.submission_id, "learner": b.learner, "status": b.status} for b in self.busy
            ],
        }


def _regradable(session: Session, actor: User, slug: str) -> AssessmentVersion:
    _programs(session, actor)
    version = current_version(session, slug)
    access.require_staff_of_assessment(session, actor, version.assessment_id, slug)
    return version


def regrade_preview(session: Session, actor: User, slug: str, *, only_latest: bool = False) -> RegradePreview:
    """How many submissions a regrade of the assessment would touch, and which are busy (skipped).

    The same selection as `regrade.regrade`: every submission, or each learner's newest."""
    version = _regradable(session, actor, slug)
    query = select(Submission).where(Submission.assessment_id == version.assessment_id)
    if only_latest:
        newest = (
            select(Submission.user_id, func.max(Submission.created_at).label("newest"))
            .where(Submission.assessment_id == version.assessment_id)
            .group_by(Submission.user_id)
            .subquery()
        )
        query = query.join(
            newest, (Submission.user_id == newest.c.user_id) & (Submission.created_at == newest.c.newest)
        )
    chosen = session.scalars(query.order_by(Submission.created_at)).all()
    busy = tuple(BusySubmission(s.id, s.user.email, s.status) for s in chosen if _in_flight(session, s.id))
    return RegradePreview(slug, version.assessment.title, version.version, only_latest, len(chosen), busy)


def regrade_assessment(
    session: Session,
    queue: TaskQueue,
    actor: User,
    slug: str,
    *,
    reason: str,
    only_latest: bool = False,
    confirmed: bool = False,
) -> regrade.RegradeReport:
    """Grade the assessment's submissions again against its current version (confirmed, with a reason)."""
    _regradable(session, actor, slug)
    reason = _reason(reason, required=True)
    if not confirmed:
        raise InvalidInput(
            "confirm the regrade: it grades the submissions again", details={"field": "confirm"}
        )
    actor_text = audit.user_actor(actor)
    version = current_version(session, slug)
    audit.record(
        session,
        StaffActions.ASSESSMENT_REGRADED,
        actor=actor_text,
        subject=f"assessment {slug}",
        after={"version": version.version, "only_latest": only_latest},
        reason=reason,
        assessment_id=version.assessment_id,
    )
    return regrade.regrade(session, queue, slug, actor=actor_text, only_latest=only_latest, reason=reason)


# ---------------------------------------------------------------- the gradebook


@dataclass(frozen=True)
class GradebookCell:
    assessment: str
    status: str  # the real status (passed | failed | pending | not_attempted)
    best_fraction: float | None
    submission_id: str | None
    held_back: bool  # the learner is shown "held back" until the hidden tests' results open

    @property
    def shown_status(self) -> str:
        return "held_back" if self.held_back else self.status


@dataclass(frozen=True)
class GradebookRow:
    learner_id: int
    email: str
    name: str
    cells: tuple[GradebookCell, ...]
    complete: bool
    credential: str | None  # awarded | revoked | None

    @property
    def passed(self) -> int:
        return sum(1 for c in self.cells if c.status == "passed")


@dataclass(frozen=True)
class GradebookColumn:
    assessment: str
    title: str
    kind: str
    min_score: float | None


@dataclass(frozen=True)
class Gradebook:
    program: str
    title: str
    columns: tuple[GradebookColumn, ...]
    rows: tuple[GradebookRow, ...]
    learners: int  # enrolled, before the filter
    status: str | None
    requirement: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "title": self.title,
            "requirements": [
                {"assessment": c.assessment, "title": c.title, "kind": c.kind, "min_score": c.min_score}
                for c in self.columns
            ],
            "filter": {"status": self.status, "requirement": self.requirement},
            "learners_enrolled": self.learners,
            "rows": [
                {
                    "learner": {"id": r.learner_id, "email": r.email, "name": r.name},
                    "requirements": [
                        {
                            "assessment": c.assessment,
                            "status": c.status,
                            "held_back_from_learner": c.held_back,
                            "best_fraction": None if c.best_fraction is None else round(c.best_fraction, 2),
                            "submission": c.submission_id,
                        }
                        for c in r.cells
                    ],
                    "passed": r.passed,
                    "complete": r.complete,
                    "credential": r.credential,
                }
                for r in self.rows
            ],
        }


def gradebook(
    session: Session,
    actor: User,
    program_slug: str,
    *,
    status: str | None = None,
    requirement: str | None = None,
) -> Gradebook:
    """One row per enrolled learner, one cell per requirement (the real status), and the credential.

    `status` keeps the learners with that status on any requirement (or on `requirement`)."""
    program = _program_run_by(session, actor, program_slug)
    if status is not None and status not in GRADEBOOK_STATUSES:
        raise InvalidInput(
            "filter by one of the statuses: " + ", ".join(STATUS_WORDS[s] for s in GRADEBOOK_STATUSES),
            details={"field": "status"},
        )
    slugs = [r.assessment.slug for r in program.requirements]
    if requirement is not None and requirement not in slugs:
        raise InvalidInput(
            f"{requirement!r} is not a requirement of {program.title}", details={"field": "requirement"}
        )
    learners = session.scalars(
        select(User)
        .join(Enrollment, Enrollment.user_id == User.id)
        .where(Enrollment.program_id == program.id)
        .order_by(User.name, User.email)
    ).all()
    awards = dict(
        session.execute(
            select(CredentialAward.user_id, CredentialAward.status).where(
                CredentialAward.program_id == program.id
            )
        ).all()
    )
    rows = []
    for learner in learners:
        cells = tuple(_cell(session, learner.id, r) for r in program.requirements)
        row = GradebookRow(
            learner.id,
            learner.email,
            learner.name,
            cells,
            complete=all(c.status == "passed" for c in cells),
            credential=awards.get(learner.id),
        )
        if status is None or any(
            c.shown_status == status or c.status == status
            for c in cells
            if requirement is None or c.assessment == requirement
        ):
            rows.append(row)
    return Gradebook(
        program=program.slug,
        title=program.title,
        columns=tuple(
            GradebookColumn(r.assessment.slug, r.assessment.title, r.assessment.kind, r.min_score)
            for r in program.requirements
        ),
        rows=tuple(rows),
        learners=len(learners),
        status=status,
        requirement=requirement,
    )


def _cell(session: Session, learner_id: int, requirement: Requirement) -> GradebookCell:
    standing = progress.requirement_status(session, learner_id, requirement)
    held_back = False
    if standing.result_id is not None:
        result = session.get(Result, standing.result_id)
        submission = session.get(Submission, standing.submission_id) if standing.submission_id else None
        if result is not None and submission is not None and submission.kind == AssessmentKind.REPOSITORY:
            _, held_back = visible_tests(
                result.feedback.get("tests", []),
                release_for(session, submission),
                result.feedback.get("totals", {}),
            )
    return GradebookCell(
        standing.assessment, standing.status, standing.best_fraction, standing.submission_id, held_back
    )


def percent(fraction: float | None) -> str:
    """A fraction for people: 85%, never 0.8499999."""
    if fraction is None or not math.isfinite(fraction):
        return "\u2013"
    return f"{round(fraction * 100):d}%"


def _cell_text(value: str) -> str:
    # A cell starting with = + - @ (or a tab or carriage return) is a formula to a spreadsheet: a
    # learner's name must never run as one on a staff member's computer.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def gradebook_csv(book: Gradebook) -> str:
    """The gradebook as CSV: per requirement its status and best fraction (0 to 1, two decimals)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header = ["email", "name"]
    for column in book.columns:
        header += [f"{column.assessment} status", f"{column.assessment} best"]
    writer.writerow([*header, "requirements passed", "credential"])
    for row in book.rows:
        cells: list[str] = [_cell_text(row.email), _cell_text(row.name)]
        for cell in row.cells:
            words = STATUS_WORDS.get(cell.status, cell.status)
            if cell.held_back:
                words += " (held back from the learner)"
            best = "" if cell.best_fraction is None else f"{cell.best_fraction:.2f}"
            cells += [words, best]
        writer.writerow([*cells, f"{row.passed} of {len(row.cells)}", row.credential or ""])
    return out.getvalue()
