"""Read models for pages and the API: what a learner may see of a submission and its result.

Besides the result itself (held back, feedback policy and all), this module owns the learner's side
of review as they read it: who graded each criterion (a machine, or a reviewer named only when the
assessment is not blind), the reviewers' comments beside the rubric and beside the lines of code they
are about, the files received, and the regrade requests with their answers. No Flask here.
"""

from __future__ import annotations

import copy
import functools
import io
import math
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, String, bindparam, func, select
from sqlalchemy.orm import Session, joinedload

from grader.config import Settings
from grader.errors import GraderError, InvalidInput, NotFound
from grader.interfaces import ResultSignal
from grader.kinds import kind_named, kind_of
from grader.kinds.repository import starter_files
from grader.models import (
    Assessment,
    GradeOutcome,
    GradingRun,
    RegradeRequest,
    Result,
    ReviewState,
    Role,
    RunStatus,
    Submission,
    SubmissionStatus,
    User,
    utcnow,
)
from grader.models import Review as ReviewRow
from grader.services import access, progress, review_queue, reviews, submissions, viewer
from grader.services.catalog import current_version, parse_definition
from grader.services.grading import latest_result
from grader.services.progress import ProgramProgress, RequirementStatus
from grader.services.scheduling import queue_eta_seconds, queue_position
from grader.services.submissions import Availability
from grader.storage import FileStore


def get_submission_for(session: Session, user: User, submission_id: str) -> Submission:
    """A submission its owner (or staff) may see; others get `NotFound`, not a hint it exists."""
    submission = session.get(Submission, submission_id) if len(submission_id) <= 64 else None
    if submission is None:
        raise NotFound("no such submission")
    _check_may_see(session, user, submission)
    return submission


def _check_may_see(session: Session, user: User, submission: Submission) -> None:
    if submission.user_id != user.id and (
        user.role == Role.LEARNER or not access.may_review(session, user, submission)
    ):
        raise NotFound("no such submission")


def submission_view(
    session: Session,
    user: User,
    submission_id: str,
    *,
    just_graded: tuple[Submission, Result] | None = None,
) -> dict[str, Any]:
    """A submission and its latest result; `just_graded` is a hand-in and result this request wrote
    itself (an inline grading), the latest by construction, which need no read back."""
    result: Result | None
    if just_graded is not None:
        submission, result = just_graded
        _check_may_see(session, user, submission)
    else:
        submission, result = submission_and_result_for(session, user, submission_id)
    current_run = waiting_run(session, submission)
    view: dict[str, Any] = {
        "id": submission.id,
        "assessment": submission.assessment.slug,
        "assessment_title": submission.assessment.title,
        "assessment_version": submission.assessment_version.version,
        "kind": submission.kind,
        "status": shown_status(submission, current_run),
        "attempt_number": submission.attempt_number,
        "created_at": submission.created_at.isoformat(),
        "receipt": {"sha256": submission.receipt_sha256, "commit": submission.commit_sha},
        "queue_position": queue_position(session, current_run) if current_run else None,
        "eta_seconds": None,
        "result": None,
    }
    if current_run is not None and view["queue_position"] is not None:
        view["eta_seconds"] = queue_eta_seconds(session, current_run, view["queue_position"])
    if result is not None:
        view["result"] = result_view(session, submission, result, staff=user.role != Role.LEARNER)
    return view


def submission_and_result_for(
    session: Session, user: User, submission_id: str
) -> tuple[Submission, Result | None]:
    """A submission its viewer may see (as `get_submission_for`) with its latest result, in one read.

    One statement sees one snapshot: the status and the result a worker commits together are read
    together, never a new result beside the status it had before.
    """
    row = (
        session.execute(_submission_and_result_statement(), {"submission_id": submission_id}).one_or_none()
        if len(submission_id) <= 64
        else None
    )
    if row is None:
        raise NotFound("no such submission")
    submission, result = row
    _check_may_see(session, user, submission)
    return submission, result


@functools.cache
def _submission_and_result_statement() -> Select[Submission, Result]:
    """Built once per process (every status read runs it). Parameter: submission_id."""
    latest = (
        select(func.max(Result.id))
        .where(Result.submission_id == Submission.id)
        .correlate(Submission)
        .scalar_subquery()
    )
    return (
        select(Submission, Result)
        .outerjoin(Result, Result.id == latest)
        .where(Submission.id == bindparam("submission_id", type_=String))
        .options(joinedload(Submission.assessment), joinedload(Submission.assessment_version))
        .execution_options(populate_existing=True)
    )


def waiting_run(session: Session, submission: Submission) -> GradingRun | None:
    """The run a waiting submission (queued, being graded, or queued again for a regrade) waits on."""
    if submission.status not in _STILL_WAITING:
        return None
    return session.scalar(
        select(GradingRun)
        .where(GradingRun.submission_id == submission.id)
        .order_by(GradingRun.requested_at.desc())
        .limit(1)
    )


def shown_status(submission: Submission, current_run: GradingRun | None) -> str:
    """The submission's status, "grading" while a worker holds its run (a quick grading does not
    write that state: it would be overwritten within the millisecond)."""
    if (
        submission.status == SubmissionStatus.QUEUED
        and current_run
        and current_run.status == RunStatus.RUNNING
    ):
        return SubmissionStatus.GRADING
    return submission.status


def result_view(
    session: Session, submission: Submission, result: Result, *, staff: bool = False
) -> dict[str, Any]:
    # A deep copy: the stored feedback is the ORM's JSON value, and what a viewer may see is cut from it.
    definition = parse_definition(submission.assessment_version)
    shaped = kind_of(definition).shape_feedback(
        session, submission, result, definition, copy.deepcopy(result.feedback), staff=staff
    )
    feedback, held_back = shaped.feedback, shaped.held_back
    if isinstance(feedback.get("review"), dict):
        _name_reviewers(session, submission, feedback["review"], staff=staff)
    if result.outcome == GradeOutcome.GRADER_ERROR and not staff:
        feedback = {
            "messages": [
                "The autograder failed on our side, not because of your work. Staff have been told; "
                "this submission does not count as an attempt."
            ]
        }
    elif result.outcome == GradeOutcome.NOT_GRADABLE and not staff:
        # What the autograder said, and nothing the other suites found: an ungradable hand-in costs no
        # attempt, so it must not buy any feedback either.
        feedback = {"messages": list(result.feedback.get("messages", []))}
    hide = held_back is not None
    return {
        "score": None if hide else result.score,
        "max_score": None if hide else result.max_score,
        "fraction": None if hide else round(result.fraction, 4),
        "passed": None if hide else result.passed,
        "needs_review": result.needs_review,
        "outcome": result.outcome,
        "graded_at": result.created_at.isoformat(),
        "held_back": held_back,
        "late_penalty": submission.late_penalty or None,
        "charged": submission.charged,
        "feedback": feedback,
    }


def _name_reviewers(session: Session, submission: Submission, review: dict[str, Any], *, staff: bool) -> None:
    """Reviewers by name, and only where the assessment is not blind; learners never get their ids."""
    blind = review_queue.policy_of(submission).blind
    for entry in review.get("reviews", []):
        reviewer = session.get(User, entry.get("reviewer_id")) if entry.get("reviewer_id") else None
        entry["reviewer"] = reviewer.name if reviewer is not None and (staff or not blind) else None
        if not staff:
            entry.pop("reviewer_id", None)
            entry.pop("id", None)


def learner_progress(session: Session, user: User, program_slug: str) -> ProgramProgress:
    """A learner's progress as they may see it: a requirement decided by a result whose total is
    held back shows as held back, and so does the credential while any requirement is."""
    return _hold_back(session, progress.program_progress(session, user, program_slug))


def learner_programs(session: Session, user: User) -> list[ProgramProgress]:
    return [_hold_back(session, p) for p in progress.enrolled_programs(session, user)]


def _hold_back(session: Session, standing: ProgramProgress) -> ProgramProgress:
    requirements = []
    for requirement in standing.requirements:
        result = session.get(Result, requirement.result_id) if requirement.result_id is not None else None
        if result is not None and _withheld(session, result):
            requirement = replace(requirement, status="held_back", best_fraction=None)
        requirements.append(requirement)
    if all(r is s for r, s in zip(requirements, standing.requirements, strict=True)):
        return standing
    return replace(
        standing,
        requirements=tuple(requirements),
        complete=False,
        credential_id=None,
        credential_status=None,
        awarded_at=None,
        issued_credential_id=None,
    )


def _withheld(session: Session, result: Result) -> bool:
    submission = session.get(Submission, result.submission_id)
    assert submission is not None
    return kind_named(submission.kind).withheld(session, submission, result)


def learner_submissions(session: Session, user: User, limit: int = 50) -> list[dict[str, Any]]:
    submissions_ = session.scalars(
        select(Submission)
        .where(Submission.user_id == user.id)
        .order_by(Submission.created_at.desc())
        .limit(limit)
    ).all()
    rows = []
    for submission in submissions_:
        result = latest_result(session, submission)
        withheld = result is not None and _withheld(session, result)
        shown = (
            result is not None
            and result.outcome in (GradeOutcome.GRADED, GradeOutcome.TAMPERED)
            and not result.needs_review
            and not withheld
        )
        rows.append(
            {
                "id": submission.id,
                "assessment": submission.assessment.slug,
                "assessment_title": submission.assessment.title,
                "status": submission.status,
                "created_at": submission.created_at,
                "score": result.score if result is not None and shown else None,
                "max_score": result.max_score if result is not None and shown else None,
                "passed": result.passed if result is not None and shown else None,
                "badge": badge(submission.status, result, withheld=withheld),
            }
        )
    return rows


# ---------------------------------------------------------------- badges: a state in words and a colour


@dataclass(frozen=True)
class Badge:
    """A state as a person reads it; `tone` picks the colour, and a pass and a fail never share one."""

    label: str
    tone: str  # passed | failed | pending | neutral | error


def badge(status: str, result: Result | None, *, withheld: bool = False) -> Badge:
    """The badge of a submission from its status and latest result."""
    if result is None:
        if status == SubmissionStatus.ERROR:
            return Badge("not graded", "error")
        if status == SubmissionStatus.SUPERSEDED:
            return Badge("replaced by a newer hand-in", "neutral")
        return Badge("grading" if status == SubmissionStatus.GRADING else "queued", "neutral")
    if result.outcome == GradeOutcome.GRADER_ERROR:
        return Badge("not graded", "error")
    if result.outcome == GradeOutcome.NOT_GRADABLE:
        return Badge("could not be graded", "failed")
    if result.needs_review or result.passed is None:
        return Badge("waiting for review", "pending")
    if withheld:
        return Badge("graded, total held back", "neutral")
    return Badge("passed", "passed") if result.passed else Badge("not passed", "failed")


REQUIREMENT_BADGES = {
    "passed": Badge("passed", "passed"),
    "failed": Badge("not passed", "failed"),
    "pending": Badge("waiting for a result", "pending"),
    "not_attempted": Badge("not attempted", "neutral"),
    "held_back": Badge("held back", "neutral"),
}


def requirement_badge(status: str) -> Badge:
    return REQUIREMENT_BADGES.get(status, Badge(status.replace("_", " "), "neutral"))


# ---------------------------------------------------------------- the program page


@dataclass(frozen=True)
class RequirementRow:
    requirement: RequirementStatus
    badge: Badge
    availability: Availability
    latest_submission_id: str | None  # the newest hand-in, whatever its state (waiting for review too)
    latest_badge: Badge | None


@dataclass(frozen=True)
class ProgramPage:
    progress: ProgramProgress
    rows: tuple[RequirementRow, ...]


def program_page(session: Session, settings: Settings, user: User, program_slug: str) -> ProgramPage:
    """A program's requirements with the learner's standing and what they can do next on each."""
    standing = learner_progress(session, user, program_slug)
    rows = []
    for requirement in standing.requirements:
        latest = session.scalar(
            select(Submission)
            .join(Assessment, Assessment.id == Submission.assessment_id)
            .where(Submission.user_id == user.id, Assessment.slug == requirement.assessment)
            .order_by(Submission.created_at.desc())
            .limit(1)
        )
        result = latest_result(session, latest) if latest is not None else None
        rows.append(
            RequirementRow(
                requirement=requirement,
                badge=requirement_badge(requirement.status),
                availability=submissions.availability(session, settings, user, requirement.assessment),
                latest_submission_id=latest.id if latest is not None else None,
                latest_badge=badge(
                    latest.status, result, withheld=result is not None and _withheld(session, result)
                )
                if latest is not None
                else None,
            )
        )
    return ProgramPage(progress=standing, rows=tuple(rows))


# ---------------------------------------------------------------- the result page


EXCERPT_CONTEXT = 2  # lines shown above and below a line a reviewer commented on


@dataclass(frozen=True)
class ExcerptLine:
    number: int
    text: str
    commented: bool


@dataclass(frozen=True)
class InlineNote:
    path: str
    line: int
    body: str  # Markdown
    reviewer: str | None
    excerpt: tuple[ExcerptLine, ...]  # empty when the file cannot be shown (binary, too large, gone)


@dataclass(frozen=True)
class CriterionRow:
    id: str
    title: str
    manual: bool
    pending: bool
    level: str | None
    points: float | None
    max_points: float | None
    explanation: str
    graded_by: str  # "automatic", "a reviewer", "Rui", "two reviewers"...
    comments: tuple[tuple[str | None, str], ...]  # (reviewer name or None, Markdown)


@dataclass(frozen=True)
class ReviewNote:
    reviewer: str | None
    comment: str  # Markdown
    adjustment: float
    adjustment_reason: str


@dataclass(frozen=True)
class RegradeView:
    id: int
    criterion: str
    criterion_title: str
    reason: str
    status: str  # open | answered
    reply: str
    changed: bool
    created_at: datetime
    answered_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "criterion": self.criterion,
            "criterion_title": self.criterion_title,
            "reason": self.reason,
            "status": self.status,
            "reply": self.reply or None,
            "changed": self.changed,
            "created_at": self.created_at.isoformat(),
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
        }


@dataclass(frozen=True)
class RegradeSection:
    may_ask: bool  # the learner's own reviewed result, inside the window
    closes_at: datetime | None
    criteria: tuple[tuple[str, str], ...]  # (id, title) of the criteria a reviewer scored
    waiting: frozenset[str]  # criteria with a request waiting for an answer
    requests: tuple[RegradeView, ...]


@dataclass(frozen=True)
class FileReceived:
    path: str
    size: int


@dataclass(frozen=True)
class SubmissionPage:
    view: dict[str, Any]  # `submission_view`, as the API gives it
    badge: Badge
    criteria: tuple[CriterionRow, ...]
    reviews: tuple[ReviewNote, ...]
    inline: tuple[InlineNote, ...]
    files: tuple[FileReceived, ...]
    files_omitted: int
    regrade: RegradeSection
    blind: bool
    own: bool


def submission_page(session: Session, store: FileStore, user: User, submission_id: str) -> SubmissionPage:
    """Everything the result page shows: the result, the review beside the rubric and the code, the
    files received and the regrade requests."""
    view = submission_view(session, user, submission_id)
    submission = get_submission_for(session, user, submission_id)
    result = latest_result(session, submission)
    result_shown = view["result"]
    feedback: dict[str, Any] = result_shown["feedback"] if result_shown else {}
    blind = review_queue.policy_of(submission).blind
    review = _section(feedback, "review")
    entries: list[dict[str, Any]] = list(review.get("reviews", []))
    criteria = tuple(_criterion_row(c, entries) for c in _section(feedback, "rubric").get("criteria", []))
    notes = tuple(
        ReviewNote(
            reviewer=e.get("reviewer"),
            comment=str(e.get("comment") or ""),
            adjustment=float(e.get("adjustment") or 0.0),
            adjustment_reason=str(e.get("adjustment_reason") or ""),
        )
        for e in entries
        if e.get("comment") or e.get("adjustment")
    )
    manifest = _section(feedback, "evidence")
    files = tuple(
        FileReceived(str(f.get("path", "")), int(f.get("size", 0))) for f in manifest.get("files", [])
    )
    own = submission.user_id == user.id
    return SubmissionPage(
        view=view,
        badge=badge(submission.status, result, withheld=bool(result_shown and result_shown["held_back"])),
        criteria=criteria,
        reviews=notes,
        inline=_inline_notes(session, store, user, submission_id, entries),
        files=files,
        files_omitted=int(manifest.get("omitted", 0)),
        regrade=_regrade_section(session, submission, result, criteria, own=own),
        blind=blind,
        own=own,
    )


def _section(feedback: dict[str, Any], key: str) -> dict[str, Any]:
    value = feedback.get(key)
    return value if isinstance(value, dict) else {}


def _criterion_row(criterion: dict[str, Any], entries: list[dict[str, Any]]) -> CriterionRow:
    manual = bool(criterion.get("manual"))
    pending = bool(criterion.get("pending"))
    comments = tuple(
        (e.get("reviewer"), str(e["criteria_comments"][criterion["id"]]))
        for e in entries
        if criterion.get("id") in (e.get("criteria_comments") or {})
    )
    if not manual:
        graded_by = "automatic"
    elif pending:
        graded_by = "waiting for a reviewer"
    else:
        names = [e["reviewer"] for e in entries if e.get("reviewer")]
        if len(entries) > 1:
            graded_by = "two reviewers" + (f" ({' and '.join(names)})" if len(names) == len(entries) else "")
        elif names:
            graded_by = f"reviewer {names[0]}"
        else:
            graded_by = "a reviewer"
    points = criterion.get("points")
    max_points = criterion.get("max_points")
    return CriterionRow(
        id=str(criterion.get("id", "")),
        title=str(criterion.get("title", "")),
        manual=manual,
        pending=pending,
        level=criterion.get("level"),
        points=float(points) if isinstance(points, int | float) else None,
        max_points=float(max_points) if isinstance(max_points, int | float) else None,
        explanation=str(criterion.get("explanation") or ""),
        graded_by=graded_by,
        comments=comments,
    )


def _inline_notes(
    session: Session, store: FileStore, user: User, submission_id: str, entries: list[dict[str, Any]]
) -> tuple[InlineNote, ...]:
    texts: dict[str, list[str] | None] = {}
    notes = []
    for entry in entries:
        for comment in entry.get("inline", []):
            path, line = str(comment.get("path", "")), int(comment.get("line", 0))
            if path not in texts:
                texts[path] = _file_lines(session, store, user, submission_id, path)
            lines = texts[path]
            excerpt: tuple[ExcerptLine, ...] = ()
            if lines is not None and 1 <= line <= len(lines):
                first, last = max(1, line - EXCERPT_CONTEXT), min(len(lines), line + EXCERPT_CONTEXT)
                excerpt = tuple(ExcerptLine(n, lines[n - 1], n == line) for n in range(first, last + 1))
            notes.append(InlineNote(path, line, str(comment.get("body", "")), entry.get("reviewer"), excerpt))
    return tuple(sorted(notes, key=lambda n: (n.path, n.line)))


def _file_lines(
    session: Session, store: FileStore, user: User, submission_id: str, path: str
) -> list[str] | None:
    try:
        content = viewer.read_file(session, store, user, submission_id, path).content
    except GraderError:  # no longer in the bundle, or the store lost it: the comment still shows
        return None
    return content.splitlines() if content is not None else None


def _regrade_section(
    session: Session,
    submission: Submission,
    result: Result | None,
    criteria: tuple[CriterionRow, ...],
    *,
    own: bool,
) -> RegradeSection:
    titles = {c.id: c.title for c in criteria}
    requests = tuple(regrade_views(session, submission, titles))
    reviewed = (
        session.scalars(
            select(ReviewRow.created_at).where(
                ReviewRow.result_id == result.id, ReviewRow.state == ReviewState.SUBMITTED
            )
        ).all()
        if result is not None
        else []
    )
    closes_at = None
    if reviewed:
        # The same window `reviews.request_regrade` enforces; it stays the authority when asked.
        closes_at = max(reviewed) + timedelta(days=review_queue.policy_of(submission).regrade_window_days)
    scored = tuple((c.id, c.title) for c in criteria if c.manual and not c.pending)
    waiting = frozenset(r.criterion for r in requests if r.status == "open" and result is not None)
    may_ask = (
        own
        and result is not None
        and not result.needs_review
        and closes_at is not None
        and utcnow() <= closes_at
        and bool(scored)
    )
    return RegradeSection(
        may_ask=may_ask, closes_at=closes_at, criteria=scored, waiting=waiting, requests=requests
    )


def regrade_views(
    session: Session, submission: Submission, titles: dict[str, str] | None = None
) -> list[RegradeView]:
    """A submission's regrade requests, oldest first, with the criterion's title and the reply."""
    if titles is None:
        titles = _criterion_titles(session, submission)
    return [
        RegradeView(
            id=r.id,
            criterion=r.criterion_id,
            criterion_title=titles.get(r.criterion_id, r.criterion_id),
            reason=r.reason,
            status=r.status,
            reply=r.reply,
            changed=r.changed,
            created_at=r.created_at,
            answered_at=r.answered_at,
        )
        for r in reviews.regrade_requests_of(session, submission.id)
    ]


def _criterion_titles(session: Session, submission: Submission) -> dict[str, str]:
    result = latest_result(session, submission)
    if result is None:
        return {}
    rubric = result.feedback.get("rubric", {})
    return {str(c.get("id")): str(c.get("title")) for c in rubric.get("criteria", [])}


def learner_regrade_requests(session: Session, user: User, submission_id: str) -> list[RegradeView]:
    """The regrade requests of a submission its owner (or a reviewer of its program) may see."""
    return regrade_views(session, get_submission_for(session, user, submission_id))


def ask_regrade(
    session: Session, learner: User, submission_id: str, criterion_id: Any, reason: Any
) -> RegradeView:
    """A learner's regrade request (`reviews.request_regrade` decides), as the learner reads it."""
    if not isinstance(criterion_id, str) or not criterion_id or len(criterion_id) > 100:
        raise InvalidInput("choose the criterion to look at again", details={"field": "criterion"})
    if not isinstance(reason, str):
        raise InvalidInput("the reason must be text", details={"field": "reason"})
    request: RegradeRequest = reviews.request_regrade(session, learner, submission_id, criterion_id, reason)
    submission = session.get(Submission, request.submission_id)
    assert submission is not None
    return next(v for v in regrade_views(session, submission) if v.id == request.id)


# ---------------------------------------------------------------- live status, starter code


MAX_WAIT_SECONDS = 30.0
# A waiter with a signal looks at the database this often all the same (an announcement can be lost).
SIGNAL_SLICE_SECONDS = 2.0
_STILL_WAITING = (SubmissionStatus.QUEUED, SubmissionStatus.GRADING)


def parse_wait(raw: str | None) -> float | None:
    """The `wait` query parameter: seconds to hold a status request open, 0 to 30."""
    if raw is None or raw == "":
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_WAIT_SECONDS:  # NaN fails this too
        raise InvalidInput(
            f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}", details={"field": "wait"}
        )
    return seconds


def await_result(
    session: Session,
    user: User,
    submission_id: str,
    wait_seconds: float,
    *,
    signal: ResultSignal | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Hold until the submission is graded (or waits for a reviewer), or `wait_seconds` have passed.

    A long poll instead of a client asking every few seconds: one request per result. With a
    `signal`, the request sleeps until the worker announces the result and looks once more; it looks
    every `SIGNAL_SLICE_SECONDS` anyway, so a lost announcement costs at most that. Without one it
    looks at a growing interval. Each look is its own short transaction, so it sees what the worker
    committed and holds no lock while it waits.
    """
    submission = get_submission_for(session, user, submission_id)
    deadline = clock() + wait_seconds
    pause = 0.02
    status: str | None = submission.status  # the first look is the read that found the submission
    while True:
        session.commit()
        remaining = deadline - clock()
        if status not in _STILL_WAITING or remaining <= 0:
            # Only the submission can have changed under us; expiring everything would reload the
            # viewer's own row as well.
            session.expire(submission)
            return
        if signal is not None and signal.available:
            signal.wait(submission.id, min(remaining, SIGNAL_SLICE_SECONDS))
        else:
            sleep(min(pause, remaining))
            pause = min(pause * 1.5, 0.2)
        status = session.scalar(_status_statement(), {"submission_id": submission.id})


@functools.cache
def _status_statement() -> Select[str]:
    """A long poll's look, built once per process. Parameter: submission_id."""
    return select(Submission.status).where(Submission.id == bindparam("submission_id", type_=String))


def status_view(session: Session, user: User, submission_id: str) -> dict[str, Any]:
    """The few fields a page polls while a submission is graded."""
    submission, result = submission_and_result_for(session, user, submission_id)
    current_run = waiting_run(session, submission)
    position = queue_position(session, current_run) if current_run else None
    status = shown_status(submission, current_run)
    shown = badge(status, result, withheld=result is not None and _withheld(session, result))
    return {
        "id": submission.id,
        "status": status,
        "label": shown.label,
        "queue_position": position,
        "eta_seconds": queue_eta_seconds(session, current_run, position)
        if current_run and position
        else None,
        "has_result": result is not None,
        "done": submission.status not in (SubmissionStatus.QUEUED, SubmissionStatus.GRADING),
    }


def starter_zip(session: Session, user: User, slug: str) -> tuple[str, bytes]:
    """The starter code of a repository assessment as a zip, for a learner who may hand in to it."""
    version = current_version(session, slug)
    submissions.check_enrolled(session, user, slug)
    files = starter_files(version)
    if not files:
        raise NotFound("this assessment has no starter code")
    folder = f"{slug}-starter"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in sorted(files.items()):
            # A fixed date: the same starter code always makes the same archive.
            info = zipfile.ZipInfo(f"{folder}/{path}", date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return f"{folder}.zip", buffer.getvalue()


def seconds_in_words(seconds: float) -> str:
    """60 seconds, 2 minutes, 1 hour 30 minutes: a limit or a wait for people."""
    total = max(0, math.ceil(seconds))
    if total < 120 and total % 60:
        return f"{total} second{'s' if total != 1 else ''}"
    minutes = math.ceil(total / 60)
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, rest = divmod(minutes, 60)
    if hours >= 48:
        days = math.ceil(hours / 24)
        return f"{days} days"
    text = f"{hours} hour{'s' if hours != 1 else ''}"
    return text + (f" {rest} minute{'s' if rest != 1 else ''}" if rest else "")
