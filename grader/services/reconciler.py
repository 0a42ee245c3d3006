"""The reconciler: find grading runs whose broker message or worker was lost and send them again.

Runs whose worker stopped answering (a lease that expired) go back to the queue, or to `error` after
`max_tries`; runs the broker never got, or lost, are sent again; credentials whose issue task was lost
are sent again too. It runs in its own process (`grader reconcile --every S`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader import metrics
from grader.interfaces import TaskQueue
from grader.models import GradingRun, RunStatus, utcnow
from grader.services import credentials, grading

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    requeued: tuple[str, ...]
    failed: tuple[str, ...]
    credentials_resent: tuple[str, ...] = ()


def reconcile(
    session: Session,
    queue: TaskQueue,
    *,
    lease_seconds: int,
    max_tries: int,
    now: datetime | None = None,
) -> ReconcileReport:
    """Find runs whose message or worker was lost and send them again; give up after `max_tries`.

    A run counts as lost when it is `running` past its lease (its worker died), or `queued` but never
    handed to the broker, or `queued` for longer than a lease while its queue on the broker is empty.
    """
    now = now or utcnow()
    requeued: list[str] = []
    failed: list[str] = []
    stale_running = session.scalars(
        select(GradingRun).where(GradingRun.status == RunStatus.RUNNING, GradingRun.lease_expires_at < now)
    ).all()
    for run in stale_running:
        if run.tries >= max_tries:
            grading.give_up(run, f"gave up after {run.tries} tries: the worker stopped answering each time")
            failed.append(run.id)
        else:
            run.status = RunStatus.QUEUED
            run.lease_id = None
            run.lease_expires_at = None
            run.last_error = "worker lease expired"
            run.enqueued_at = None
    session.commit()

    empty_queues: dict[str, bool] = {}

    def broker_lost_it(run: GradingRun) -> bool:
        if run.enqueued_at is None:
            return True
        if run.enqueued_at > now - timedelta(seconds=lease_seconds):
            return False
        if run.queue not in empty_queues:
            pending = queue.pending_count(run.queue)
            empty_queues[run.queue] = pending is None or pending == 0
        return empty_queues[run.queue]

    for run in session.scalars(select(GradingRun).where(GradingRun.status == RunStatus.QUEUED)).all():
        if not broker_lost_it(run):
            continue
        try:
            queue.enqueue_grading(run.id, run.queue)
        except Exception:
            log.warning("reconciler could not enqueue run %s", run.id, exc_info=True)
            continue
        run.enqueued_at = utcnow()
        requeued.append(run.id)
        session.commit()
    for run_id in failed:
        log.error("grading run %s marked error after %d tries", run_id, max_tries)
    resent = credentials.resend_pending(session, queue, now)
    metrics.reconciled(resent=len(requeued), gave_up=len(failed), credentials_resent=len(resent))
    return ReconcileReport(requeued=tuple(requeued), failed=tuple(failed), credentials_resent=tuple(resent))
