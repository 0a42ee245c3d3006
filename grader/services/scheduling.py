"""The order of the queues: which waiting run a worker takes, where a waiting run stands, and when it
will be done.

The quiz queue is first come, first served, one claim by the delivered run's id (the hot path). The
queues of kinds whose hand-in is the whole work (repositories, portfolios: `Kind.coalesces`) are fair:
a learner has at most one run `running` in such a queue, and first attempts go before resubmissions and
regrades, then the oldest first. There a worker's message is a token for the queue: the worker claims the
best eligible waiting run, whichever message brought it (`claim_fairly`), and a worker that finishes a
learner's run while that learner has more waiting takes the next one itself (`learner_has_waiting`), so
a run passed over for its learner's running one is never left without a message.

A run's place is counted among the runs waiting in its queue ahead of it in that same order; its ETA is
that place times the queue's recent pace (the mean run time shared by the runs running now, or, with none
running, how fast its last runs finished one after another).
"""

from __future__ import annotations

import statistics
import zlib
from datetime import datetime
from functools import cache

from sqlalchemy import ColumnElement, and_, case, func, or_, select, text
from sqlalchemy.orm import Session, aliased

from grader.kinds import KINDS
from grader.models import GradingRun, RunStatus, Submission, utcnow
from grader.services.grading import Claim, claim_run

# A claim that lost its chosen run to another worker looks again, at most this often.
CLAIM_ATTEMPTS = 5


@cache
def fair_queues() -> frozenset[str]:
    """The queues of kinds whose hand-in is the whole work: one running run per learner, first
    attempts first (a sandbox slot is minutes at a deadline, so its order matters)."""
    return frozenset(kind.queue for kind in KINDS.values() if kind.coalesces())


def _later_turn() -> ColumnElement[int]:
    """0 for a learner's first attempt, 1 for a resubmission or a regrade: the first sort key."""
    return case((and_(GradingRun.reason == "submitted", Submission.attempt_number == 1), 0), else_=1)


def _best_waiting(session: Session, queue: str, delivered: str | None) -> str | None:
    """The run a worker should take in a fair queue: eligible (its learner has no other run running
    there), first attempts first, then the oldest. `delivered` is a run this transaction has just
    claimed by id: it competes as if still waiting."""
    other = aliased(GradingRun)
    others_submission = aliased(Submission)
    learner_busy = (
        select(other.id)
        .join(others_submission, others_submission.id == other.submission_id)
        .where(
            other.queue == queue,
            other.status == RunStatus.RUNNING,
            others_submission.user_id == Submission.user_id,
            other.id != GradingRun.id,
        )
    )
    waiting: ColumnElement[bool] = GradingRun.status == RunStatus.QUEUED
    if delivered is not None:
        learner_busy = learner_busy.where(other.id != delivered)
        waiting = or_(waiting, GradingRun.id == delivered)
    return session.scalar(
        select(GradingRun.id)
        .join(Submission, Submission.id == GradingRun.submission_id)
        .where(GradingRun.queue == queue, waiting, ~learner_busy.exists())
        .order_by(_later_turn(), GradingRun.requested_at, GradingRun.id)
        .limit(1)
    )


def _lock_queue(session: Session, queue: str) -> None:
    """Serialise fair claims of one queue until the transaction ends. PostgreSQL checks a learner's
    running runs in the statement's snapshot, so two workers could each start one of the same
    learner's runs; SQLite already lets one writer at a time (the claim's UPDATE came first)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(queue.encode())})


def claim_fairly(
    session: Session, delivered_id: str, claim: Claim | None, *, worker: str, lease_seconds: int
) -> Claim | None:
    """The claim a worker should grade, given its uncommitted claim of the delivered run (or None when
    that run was taken, finished or superseded). Outside the fair queues, `claim` unchanged without a
    query; inside, the best eligible run of the queue, claimed uncommitted like `claim_run(commit=False)`.
    """
    if claim is not None:
        queue = claim.queue
        if queue not in fair_queues():
            return claim
    else:
        # A duplicate or a superseded run's message: in a fair queue it is still a token.
        found = session.scalar(select(GradingRun.queue).where(GradingRun.id == delivered_id))
        session.rollback()
        if found is None or found not in fair_queues():
            return None
        queue = found
    for _ in range(CLAIM_ATTEMPTS):
        _lock_queue(session, queue)
        best = _best_waiting(session, queue, claim.run_id if claim is not None else None)
        if claim is not None and best == claim.run_id:
            return claim
        # Another run is due first: give the delivered one back untouched (its claim was not committed).
        session.rollback()
        claim = None
        if best is None:
            return None
        _lock_queue(session, queue)
        claim = claim_run(session, best, worker=worker, lease_seconds=lease_seconds, commit=False)
        if claim is not None:
            # Chosen under the lock a moment ago; checked again now that it is ours.
            if _best_waiting(session, queue, claim.run_id) == claim.run_id:
                return claim
            session.rollback()
            claim = None
    return None


def learner_has_waiting(session: Session, claim: Claim) -> bool:
    """Whether the learner of a finished run in a fair queue has another run waiting there (the worker
    then takes the queue's next run itself: that run's message may have come while this one ran)."""
    if claim.queue not in fair_queues():
        return False
    mine = select(Submission.user_id).where(Submission.id == claim.submission_id).scalar_subquery()
    return bool(
        session.scalar(
            select(GradingRun.id)
            .join(Submission, Submission.id == GradingRun.submission_id)
            .where(
                GradingRun.queue == claim.queue,
                GradingRun.status == RunStatus.QUEUED,
                Submission.user_id == mine,
            )
            .limit(1)
        )
    )


def queue_position(session: Session, run: GradingRun) -> int | None:
    """1-based position of a queued run among the runs waiting in its queue, in the order workers take
    them (in a fair queue: first attempts first, then the oldest)."""
    if run.status != RunStatus.QUEUED:
        return None
    if run.queue not in fair_queues():
        ahead = session.scalar(
            select(func.count(GradingRun.id)).where(
                GradingRun.queue == run.queue,
                GradingRun.status == RunStatus.QUEUED,
                GradingRun.requested_at < run.requested_at,
            )
        )
        return (ahead or 0) + 1
    later = 0 if run.reason == "submitted" and run.submission.attempt_number == 1 else 1
    turn = _later_turn()
    ahead = session.scalar(
        select(func.count(GradingRun.id))
        .join(Submission, Submission.id == GradingRun.submission_id)
        .where(
            GradingRun.queue == run.queue,
            GradingRun.status == RunStatus.QUEUED,
            GradingRun.id != run.id,
            or_(turn < later, and_(turn == later, GradingRun.requested_at < run.requested_at)),
        )
    )
    return (ahead or 0) + 1


# How much recent history the ETA reads: enough to smooth one slow run, recent enough to follow a spike.
ETA_HISTORY_RUNS = 50


def queue_eta_seconds(
    session: Session, run: GradingRun, position: int | None = None, *, now: datetime | None = None
) -> float | None:
    """Seconds until a queued run is done: when a slot frees for it, then its own run time.

    With runs running, each busy slot frees after what is left of its run (the recent median run time
    less how long it has run), and then every median run time: the p-th run in the queue starts when the
    ((p-1) mod slots)-th slot to free does, (p-1) // slots turns later. With none running, the pace is
    how fast the queue's last runs finished one after another. None without history.
    """
    position = queue_position(session, run) if position is None else position
    if position is None:
        return None
    recent = session.execute(
        select(GradingRun.started_at, GradingRun.finished_at)
        .where(
            GradingRun.queue == run.queue,
            GradingRun.status == RunStatus.DONE,
            GradingRun.finished_at.is_not(None),
        )
        .order_by(GradingRun.finished_at.desc())
        .limit(ETA_HISTORY_RUNS)
    ).all()
    if not recent:
        return None
    durations = [(f - s).total_seconds() for s, f in recent if s is not None and f is not None]
    # The median, not the mean: a worker's first runs (cold boxes, images loading) take twice as long,
    # and a few of them in the history would lengthen every ETA of a spike by a fifth.
    run_time = statistics.median(durations) if durations else 0.0
    started = session.scalars(
        select(GradingRun.started_at).where(
            GradingRun.queue == run.queue, GradingRun.status == RunStatus.RUNNING
        )
    ).all()
    now = now or utcnow()
    if started:
        # A run past the median is taken to be about to finish, not to have finished already.
        left = sorted(max(run_time - (now - at).total_seconds(), 0.1 * run_time) for at in started if at)
        if left:
            turns, slot = divmod(position - 1, len(left))
            return round(left[slot] + turns * run_time + run_time, 1)
    span = (recent[0].finished_at - recent[-1].finished_at).total_seconds()
    per_run = span / (len(recent) - 1) if len(recent) > 1 and span > 0 else run_time
    # A run queued behind others waits for them, then takes its own run time.
    return round((position - 1) * per_run + run_time, 1)
