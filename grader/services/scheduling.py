"""The order of the queues: where a waiting run stands, and when it will be done.

A run's place is counted among the runs waiting in its queue before it; its ETA is that place times the
queue's recent pace (how fast its last runs finished one after another, which counts every worker slot).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grader.models import GradingRun, RunStatus


def queue_position(session: Session, run: GradingRun) -> int | None:
    """1-based position of a queued run among the runs waiting in its queue."""
    if run.status != RunStatus.QUEUED:
        return None
    ahead = (
        session.scalar(
            select(func.count(GradingRun.id)).where(
                GradingRun.queue == run.queue,
                GradingRun.status == RunStatus.QUEUED,
                GradingRun.requested_at < run.requested_at,
            )
        )
        or 0
    )
    return ahead + 1


# How much recent history the ETA reads: enough to smooth one slow run, recent enough to follow a spike.
ETA_HISTORY_RUNS = 50


def queue_eta_seconds(session: Session, run: GradingRun, position: int | None = None) -> float | None:
    """Seconds until a queued run is done: its place in the queue times the queue's recent pace.

    The pace is how fast the queue's last runs finished one after another (which counts every worker
    slot serving it); with a single finished run, its own duration. None without history.
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
    mean_run = sum(durations) / len(durations) if durations else 0.0
    span = (recent[0].finished_at - recent[-1].finished_at).total_seconds()
    per_run = span / (len(recent) - 1) if len(recent) > 1 and span > 0 else mean_run
    # A run queued behind others waits for them, then takes its own run time.
    return round((position - 1) * per_run + mean_run, 1)
