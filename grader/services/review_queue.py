"""The review queue: the reviews each result needs, as tasks that one reviewer at a time can claim.

A result whose manual criteria await a reviewer gets a task (two, `first` and `second`, when its
assessment asks for double review). A reviewer claims a task with a conditional UPDATE, so of two
reviewers who click at once exactly one wins; a claim expires after the assessment's
`claim_minutes` unless staff assigned it, and only the holder of a claim may submit its review.
Double review keeps the reviewers apart: whoever did or holds one slot of a result cannot take the
other, nor its adjudication; a regrade request goes to someone other than the first reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session, aliased

from grader.catalog.schema import ReviewPolicy
from grader.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from grader.kinds import kind_of
from grader.models import (
    Assessment,
    Program,
    ProgramStaff,
    Requirement,
    Result,
    ReviewSlot,
    ReviewTask,
    Role,
    Submission,
    TaskStatus,
    User,
    utcnow,
)
from grader.services import access
from grader.services.catalog import parse_definition


def policy_of(submission: Submission) -> ReviewPolicy:
    definition = parse_definition(submission.assessment_version)
    return kind_of(definition).review_policy(definition)


def open_tasks(session: Session, result: Result, submission: Submission) -> list[ReviewTask]:
    """The tasks a new result that needs review starts with; tasks of earlier results are cancelled."""
    session.execute(
        update(ReviewTask)
        .where(
            ReviewTask.submission_id == submission.id,
            ReviewTask.result_id != result.id,
            ReviewTask.status.in_([TaskStatus.OPEN, TaskStatus.CLAIMED]),
        )
        .values(status=TaskStatus.CANCELLED)
        .execution_options(synchronize_session=False)
    )
    slots = [ReviewSlot.FIRST, ReviewSlot.SECOND] if policy_of(submission).double else [ReviewSlot.FIRST]
    tasks = [ReviewTask(result_id=result.id, submission_id=submission.id, slot=slot) for slot in slots]
    session.add_all(tasks)
    session.flush()
    return tasks


@dataclass(frozen=True)
class QueueFilter:
    program: str | None = None
    assessment: str | None = None
    mine: bool = False  # claimed by or assigned to me
    unassigned: bool = False  # nobody holds a live claim
    slot: str | None = None
    waiting_since: datetime | None = None  # only tasks waiting since before this moment


@dataclass(frozen=True)
class QueueItem:
    task_id: int
    submission_id: str
    assessment: str
    assessment_title: str
    slot: str
    waiting_since: datetime
    holder: str | None  # who holds a live claim
    holder_id: int | None
    claim_expires: datetime | None  # None with a holder: assigned by staff
    learner: str | None  # None when the assessment reviews blind (and the viewer is not its staff)
    attempt_number: int
    assessment_id: int = 0
    assigned: bool = False  # held through an assignment by staff (such a claim never expires)
    not_claimable_because: str | None = None  # in words, when the separation rules keep this viewer off it

    @property
    def claimable(self) -> bool:
        """Whether this viewer may take the task (someone else's live claim is in `holder`, apart)."""
        return self.not_claimable_because is None

    def waiting(self, now: datetime) -> timedelta:
        return now - self.waiting_since


@dataclass(frozen=True)
class QueueView:
    items: tuple[QueueItem, ...]
    counts: tuple[tuple[str, str, int], ...]  # (assessment slug, title, tasks waiting this viewer may take)


def _live_claim(now: datetime) -> ColumnElement[bool]:
    return and_(
        ReviewTask.status == TaskStatus.CLAIMED,
        or_(ReviewTask.expires_at.is_(None), ReviewTask.expires_at >= now),
    )


# Why the separation rules keep a reviewer off a task (see `_kept_off`).
_SCORED, _WROTE, _HOLDS = "scored", "wrote", "holds"


def _kept_off(reviewer_id: int) -> ColumnElement[str | None]:
    """Why the separation rules keep `reviewer_id` off the task in the row, as one of the codes above,
    or NULL when they may take it: the one rule claims, assignments, Next submission and the queue share.

    A regrade goes to someone other than the reviewer who scored the result; a reviewer who wrote or
    holds one slot of a double review takes neither the other slot nor the adjudication.
    """
    other = aliased(ReviewTask)

    def took_another_slot(status: TaskStatus) -> ColumnElement[bool]:
        return exists().where(
            other.result_id == ReviewTask.result_id,
            other.id != ReviewTask.id,
            other.reviewer_id == reviewer_id,
            other.status == status,
            other.slot.in_([ReviewSlot.FIRST, ReviewSlot.SECOND]),
        )

    separated = ReviewTask.slot.in_([ReviewSlot.FIRST, ReviewSlot.SECOND, ReviewSlot.ADJUDICATION])
    return case(
        (ReviewTask.excluded_reviewer_id == reviewer_id, literal(_SCORED)),
        (and_(separated, took_another_slot(TaskStatus.DONE)), literal(_WROTE)),
        (and_(separated, took_another_slot(TaskStatus.CLAIMED)), literal(_HOLDS)),
        else_=literal(None),
    )


_OTHER_SLOT = {ReviewSlot.FIRST: "second", ReviewSlot.SECOND: "first"}


def _kept_off_in_words(code: str, slot: str) -> str:
    if code == _SCORED:
        return "you scored this submission: a regrade goes to another reviewer"
    did = "wrote" if code == _WROTE else "hold"
    if slot == ReviewSlot.ADJUDICATION:
        return f"you {did} one of the two reviews: the adjudicator must be someone else"
    return f"you {did} the {_OTHER_SLOT[ReviewSlot(slot)]} review: the {slot} must be independent"


def _reviewable(session: Session, reviewer: User, filters: QueueFilter, now: datetime) -> ColumnElement[bool]:
    """The SQL condition for tasks this reviewer may see in the queue."""
    conditions: list[ColumnElement[bool]] = [ReviewTask.status.in_([TaskStatus.OPEN, TaskStatus.CLAIMED])]
    programs = access.programs_of(session, reviewer)
    if programs is not None:
        conditions.append(
            Submission.assessment_id.in_(
                select(Requirement.assessment_id).where(Requirement.program_id.in_(programs or {-1}))
            )
        )
    if filters.program is not None:
        program = access.program_by_slug(session, filters.program)
        conditions.append(
            Submission.assessment_id.in_(
                select(Requirement.assessment_id).where(Requirement.program_id == program.id)
            )
        )
    if filters.assessment is not None:
        conditions.append(Assessment.slug == filters.assessment)
    if filters.mine:
        conditions.append(and_(_live_claim(now), ReviewTask.reviewer_id == reviewer.id))
    if filters.unassigned:
        conditions.append(~_live_claim(now))
    if filters.slot is not None:
        conditions.append(ReviewTask.slot == filters.slot)
    if filters.waiting_since is not None:
        conditions.append(ReviewTask.created_at <= filters.waiting_since)
    return and_(*conditions)


def queue(
    session: Session,
    reviewer: User,
    filters: QueueFilter = QueueFilter(),
    *,
    now: datetime | None = None,
    limit: int = 200,
) -> QueueView:
    """The tasks waiting for a reviewer of `reviewer`'s programs, oldest first."""
    now = now or utcnow()
    condition = _reviewable(session, reviewer, filters, now)
    kept_off = _kept_off(reviewer.id)
    rows = session.execute(
        select(ReviewTask, Submission, Assessment, User, kept_off)
        .join(Submission, Submission.id == ReviewTask.submission_id)
        .join(Assessment, Assessment.id == Submission.assessment_id)
        .join(User, User.id == Submission.user_id)
        .where(condition)
        .order_by(ReviewTask.created_at, ReviewTask.id)
        .limit(limit)
    ).all()
    holders = {
        user.id: user
        for user in session.scalars(
            select(User).where(User.id.in_({t.reviewer_id for t, *_ in rows if t.reviewer_id}))
        )
    }
    staff_programs = access.programs_of(session, reviewer, staff_only=True)
    programs_by_assessment: dict[int, set[int]] = {}
    items = []
    for task, submission, assessment, learner, kept_off_code in rows:
        live = task.status == TaskStatus.CLAIMED and (task.expires_at is None or task.expires_at >= now)
        holder = holders.get(task.reviewer_id) if live and task.reviewer_id else None
        if assessment.id not in programs_by_assessment:
            programs_by_assessment[assessment.id] = access.programs_of_assessment(session, assessment.id)
        # Blind review hides the learner from reviewers; the program's staff still see who it is.
        blind = policy_of(submission).blind and not (
            staff_programs is None or staff_programs & programs_by_assessment[assessment.id]
        )
        items.append(
            QueueItem(
                task_id=task.id,
                submission_id=submission.id,
                assessment=assessment.slug,
                assessment_title=assessment.title,
                slot=task.slot,
                waiting_since=task.created_at,
                holder=holder.name if holder else None,
                holder_id=holder.id if holder else None,
                claim_expires=task.expires_at if live else None,
                learner=None if blind else learner.name,
                attempt_number=submission.attempt_number,
                assessment_id=assessment.id,
                assigned=holder is not None and task.expires_at is None,
                not_claimable_because=_kept_off_in_words(kept_off_code, task.slot) if kept_off_code else None,
            )
        )
    counts = session.execute(
        select(Assessment.slug, Assessment.title, func.count(case((kept_off.is_(None), ReviewTask.id))))
        .select_from(ReviewTask)
        .join(Submission, Submission.id == ReviewTask.submission_id)
        .join(Assessment, Assessment.id == Submission.assessment_id)
        .where(_reviewable(session, reviewer, QueueFilter(program=filters.program), now))
        .group_by(Assessment.slug, Assessment.title)
        .order_by(Assessment.title)
    ).all()
    return QueueView(tuple(items), tuple((slug, title, count) for slug, title, count in counts))


def hides_learner(session: Session, viewer: User, submission: Submission) -> bool:
    """Blind review hides the learner from reviewers; the learner, the program's staff and admins see all."""
    if not policy_of(submission).blind or submission.user_id == viewer.id:
        return False
    staff = access.programs_of(session, viewer, staff_only=True)
    return not (staff is None or staff & access.programs_of_assessment(session, submission.assessment_id))


def _check_eligible(session: Session, reviewer: User, task: ReviewTask) -> None:
    access.require_reviewer(session, reviewer, task.submission)
    kept_off = session.scalar(select(_kept_off(reviewer.id)).where(ReviewTask.id == task.id))
    if kept_off == _SCORED:
        raise PermissionDenied("this regrade request goes to a reviewer other than the one who scored it")
    if kept_off is not None:
        raise PermissionDenied(
            "you already review this submission in another slot: double review needs two other people"
            if task.slot != ReviewSlot.ADJUDICATION
            else "an adjudicator must be neither of the two reviewers"
        )


def get_task(session: Session, task_id: int) -> ReviewTask:
    task = session.get(ReviewTask, task_id)
    if task is None:
        raise NotFound("no such review task", details={"field": "task"})
    return task


def claim(session: Session, reviewer: User, task_id: int, *, now: datetime | None = None) -> ReviewTask:
    """Take a task for `claim_minutes`; `Conflict` when someone else holds it."""
    now = now or utcnow()
    task = get_task(session, task_id)
    _check_eligible(session, reviewer, task)
    if task.status in (TaskStatus.DONE, TaskStatus.CANCELLED):
        raise Conflict("this review is no longer needed", details={"field": "task"})
    minutes = policy_of(task.submission).claim_minutes
    won = session.execute(
        update(ReviewTask)
        .where(
            ReviewTask.id == task_id,
            or_(
                ReviewTask.status == TaskStatus.OPEN,
                and_(ReviewTask.status == TaskStatus.CLAIMED, ReviewTask.expires_at < now),
                and_(ReviewTask.status == TaskStatus.CLAIMED, ReviewTask.reviewer_id == reviewer.id),
            ),
        )
        .values(
            status=TaskStatus.CLAIMED,
            reviewer_id=reviewer.id,
            claimed_at=now,
            # An assignment by staff does not expire; renewing one's own claim keeps that.
            expires_at=now + timedelta(minutes=minutes)
            if task.expires_at is not None or task.reviewer_id != reviewer.id
            else None,
        )
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(task)
        holder = session.get(User, task.reviewer_id) if task.reviewer_id else None
        raise Conflict(
            f"{holder.name if holder else 'another reviewer'} is reviewing this submission",
            details={"field": "task", "holder": holder.name if holder else None},
        )
    session.refresh(task)
    return task


def claim_next(
    session: Session, reviewer: User, filters: QueueFilter = QueueFilter(), *, now: datetime | None = None
) -> ReviewTask | None:
    """Claim the oldest task nobody holds that this reviewer may take; None when there is none."""
    now = now or utcnow()
    view = queue(
        session, reviewer, QueueFilter(**{**filters.__dict__, "unassigned": True, "mine": False}), now=now
    )
    for item in view.items:
        try:
            return claim(session, reviewer, item.task_id, now=now)
        except (Conflict, PermissionDenied):
            continue  # taken meanwhile, or a slot this reviewer may not have: the next one
    return None


def release(session: Session, reviewer: User, task_id: int) -> ReviewTask:
    task = get_task(session, task_id)
    if task.status != TaskStatus.CLAIMED or task.reviewer_id != reviewer.id:
        raise Conflict("you do not hold this review", details={"field": "task"})
    task.status, task.reviewer_id, task.claimed_at, task.expires_at = TaskStatus.OPEN, None, None, None
    task.assigned_by = None
    session.flush()
    return task


def assign(
    session: Session, staff: User, task_id: int, reviewer: User, *, actor: str, now: datetime | None = None
) -> ReviewTask:
    """Staff give a task to a reviewer, who holds it until they submit or release it."""
    now = now or utcnow()
    task = get_task(session, task_id)
    program_ids = access.programs_of_assessment(session, task.submission.assessment_id)
    staff_programs = access.programs_of(session, staff, staff_only=True)
    if staff_programs is not None and not staff_programs & program_ids:
        raise PermissionDenied("only staff of this submission's program may assign its reviews")
    if task.status in (TaskStatus.DONE, TaskStatus.CANCELLED):
        raise Conflict("this review is no longer needed", details={"field": "task"})
    _check_eligible(session, reviewer, task)
    task.status, task.reviewer_id, task.claimed_at, task.expires_at = (
        TaskStatus.CLAIMED,
        reviewer.id,
        now,
        None,
    )
    task.assigned_by = actor[:200]
    session.flush()
    return task


def held(session: Session, reviewer: User, task_id: int, *, now: datetime | None = None) -> ReviewTask:
    """The task, if `reviewer` holds a live claim on it: the only one who may save or submit it."""
    now = now or utcnow()
    task = get_task(session, task_id)
    if task.status == TaskStatus.DONE:
        raise Conflict("this review was already submitted", details={"field": "task"})
    if task.status != TaskStatus.CLAIMED or task.reviewer_id != reviewer.id:
        raise Conflict("claim this submission before you score it", details={"field": "task"})
    if task.expires_at is not None and task.expires_at < now:
        raise Conflict("your claim expired; claim the submission again", details={"field": "task"})
    return task


def parse_filters(args: dict[str, str]) -> QueueFilter:
    """Queue filters from query parameters, naming a bad one."""
    waiting = args.get("waiting_since")
    since = None
    if waiting:
        try:
            since = datetime.fromisoformat(waiting.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(
                "waiting since must be a date and time", details={"field": "waiting_since"}
            ) from None
        if since.tzinfo is None:
            raise InvalidInput("waiting since needs a time zone", details={"field": "waiting_since"})
    slot = args.get("slot") or None
    if slot is not None and slot not in {s.value for s in ReviewSlot}:
        raise InvalidInput(f"slot must be one of {[s.value for s in ReviewSlot]}", details={"field": "slot"})
    return QueueFilter(
        program=args.get("program") or None,
        assessment=args.get("assessment") or None,
        mine=args.get("mine") in ("1", "true", "on"),
        unassigned=args.get("unassigned") in ("1", "true", "on"),
        slot=slot,
        waiting_since=since,
    )


# ---------------------------------------------------------------- for the pages and the API


def require_holder(
    session: Session, reviewer: User, task_id: int, *, now: datetime | None = None
) -> ReviewTask:
    """The task, for the reviewer who holds its live claim; otherwise a `Conflict` saying who does.

    The details say whether the task is free to claim (`claimable`), so a page can offer the button;
    a reviewer of another program gets `PermissionDenied` before learning anything about the task.
    """
    now = now or utcnow()
    task = get_task(session, task_id)
    access.require_reviewer(session, reviewer, task.submission)
    live = task.status == TaskStatus.CLAIMED and (task.expires_at is None or task.expires_at >= now)
    if live and task.reviewer_id == reviewer.id:
        return task
    details: dict[str, object] = {"field": "task", "status": task.status, "holder": None, "claimable": False}
    if task.status == TaskStatus.DONE:
        mine = task.reviewer_id == reviewer.id
        raise Conflict(
            "you already submitted this review" if mine else "this review was already submitted",
            details={**details, "mine": mine},
        )
    if task.status == TaskStatus.CANCELLED:
        raise Conflict("this review is no longer needed: a newer result replaced it", details=details)
    if live:
        holder = session.get(User, task.reviewer_id) if task.reviewer_id else None
        name = holder.name if holder else "another reviewer"
        until = f" until {task.expires_at:%Y-%m-%d %H:%M} UTC" if task.expires_at is not None else ""
        raise Conflict(
            f"{name} is reviewing this submission{until}",
            details={
                **details,
                "holder": name,
                "until": task.expires_at.isoformat() if task.expires_at else None,
            },
        )
    try:
        _check_eligible(session, reviewer, task)
        claimable = True
    except PermissionDenied:
        claimable = False
    raise Conflict(
        "nobody holds this review: claim it before you score it"
        if claimable
        else "this review is free, but it needs a reviewer other than you",
        details={**details, "claimable": claimable},
    )


def reviewer_programs(session: Session, reviewer: User) -> list[Program]:
    """The programs whose submissions `reviewer` reviews (every program for an admin), by title."""
    ids = access.programs_of(session, reviewer)
    query = select(Program).order_by(Program.title)
    if ids is not None:
        query = query.where(Program.id.in_(ids or {-1}))
    return list(session.scalars(query).all())


def reviewer_assessments(session: Session, reviewer: User) -> list[Assessment]:
    """The assessments of those programs that have a review queue at all (repository, portfolio)."""
    ids = access.programs_of(session, reviewer)
    query = (
        select(Assessment)
        .join(Requirement, Requirement.assessment_id == Assessment.id)
        .where(Assessment.kind.in_(["repository", "portfolio"]))
        .order_by(Assessment.title)
        .distinct()
    )
    if ids is not None:
        query = query.where(Requirement.program_id.in_(ids or {-1}))
    return list(session.scalars(query).all())


def may_assign(session: Session, staff: User, assessment_id: int) -> bool:
    """Whether `staff` runs a program this assessment belongs to (admins run every program)."""
    programs = access.programs_of(session, staff, staff_only=True)
    return programs is None or bool(programs & access.programs_of_assessment(session, assessment_id))


def reviewers_of(session: Session, assessment_ids: set[int]) -> dict[int, list[User]]:
    """Per assessment, the active reviewers and staff of its programs, who may be assigned its tasks."""
    found: dict[int, list[User]] = {aid: [] for aid in assessment_ids}
    if not assessment_ids:
        return found
    rows = session.execute(
        select(Requirement.assessment_id, User)
        .join(ProgramStaff, ProgramStaff.program_id == Requirement.program_id)
        .join(User, User.id == ProgramStaff.user_id)
        .where(
            Requirement.assessment_id.in_(assessment_ids),
            User.active.is_(True),
            User.role.in_([Role.REVIEWER, Role.ADMIN]),
        )
        .order_by(User.name, User.id)
    ).all()
    for assessment_id, user in rows:
        if all(u.id != user.id for u in found[assessment_id]):
            found[assessment_id].append(user)
    return found


def reviewer_by_email(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None or not user.active or user.role == Role.LEARNER:
        raise NotFound("no reviewer has this email address", details={"field": "reviewer"})
    return user


def reviewer_by_id(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or not user.active or user.role == Role.LEARNER:
        raise NotFound("no such reviewer", details={"field": "reviewer"})
    return user
