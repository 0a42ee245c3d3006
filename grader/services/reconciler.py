"""The reconciler: find grading runs whose broker message or worker was lost and send them again.

Runs whose worker stopped answering (a lease that expired) go back to the queue; runs the broker
never got, or lost, are sent again; credentials whose issue task was lost are sent again too. It runs
in its own process (`grader reconcile --every S`).

Two rules keep it cheap and fair under load:

- Only what the broker lost is sent again. A queued run whose message still waits in its queue, or
  sits with a live worker that prefetched it, is left alone: under a backlog most queued runs are
  like that, and each needless send is one more delivery for the workers to skip.
- Only the tries the submission itself may have caused count toward `max_tries` (its `strikes`): a
  run whose grading process died while the rest of its worker lived. A run lost with its whole worker
  (several runs of one worker at once, a worker that no longer answers or was started again) is sent
  again without a strike. `tries` still counts every delivery and is capped, so no run loops forever.

When the broker cannot tell (another transport), the older rules apply: a queued run is sent again
when its queue is empty, and every lost lease is a strike. While the broker is down (or still
loading its data after a restart) nothing is decided: the next pass does.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from grader import metrics
from grader.errors import ServiceUnavailable
from grader.interfaces import TaskQueue
from grader.models import GradingRun, RunStatus, utcnow
from grader.services import credentials, grading

log = logging.getLogger(__name__)

# A worker's start time is known to the second (Celery rounds its uptime) and clocks differ a little:
# a worker that started this close to the claim may have been started again after it, so no strike.
RESTART_MARGIN = timedelta(seconds=2)


@dataclass(frozen=True)
class ReconcileReport:
    requeued: tuple[str, ...]
    failed: tuple[str, ...]
    credentials_resent: tuple[str, ...] = ()


@dataclass(frozen=True)
class LeaseLoss:
    """Why a run lost its lease, and whether the submission may have caused it."""

    strike: bool
    reason: str


def reconcile(
    session: Session,
    queue: TaskQueue,
    *,
    lease_seconds: int,
    max_tries: int,
    now: datetime | None = None,
) -> ReconcileReport:
    """Send again the runs whose message or worker was lost; give up after `max_tries` strikes.

    A run counts as lost when it is `running` past its lease (its worker or its process died), or
    `queued` and either never handed to the broker or handed over more than a lease ago, while the
    broker holds no message for it.
    """
    now = now or utcnow()
    failed = _release_expired_leases(session, queue, now=now, max_tries=max_tries)
    requeued = _resend_lost_messages(session, queue, now=now, lease_seconds=lease_seconds)
    for run_id in failed:
        log.error("grading run %s marked error: it cannot be graded", run_id)
    resent = credentials.resend_pending(session, queue, now)
    metrics.reconciled(resent=len(requeued), gave_up=len(failed), credentials_resent=len(resent))
    return ReconcileReport(requeued=tuple(requeued), failed=tuple(failed), credentials_resent=tuple(resent))


def _release_expired_leases(
    session: Session, queue: TaskQueue, *, now: datetime, max_tries: int
) -> list[str]:
    stale = session.scalars(
        select(GradingRun).where(GradingRun.status == RunStatus.RUNNING, GradingRun.lease_expires_at < now)
    ).all()
    if not stale:
        return []
    try:
        started = queue.live_workers({run.worker for run in stale if run.worker})
    except ServiceUnavailable as exc:
        # Whose fault it was, and a new send, both wait for the broker: the next pass decides.
        log.warning("expired leases left for the next pass: %s", exc.message)
        session.rollback()
        return []
    losses = lease_losses(stale, started)
    limit = grading.delivery_limit(max_tries)
    failed: list[str] = []
    for run in stale:
        loss = losses[run.id]
        if loss is None:
            # Nobody can tell whose fault it was: as before, every delivery so far counts.
            run.strikes = max(run.strikes + 1, run.tries)
            loss = LeaseLoss(strike=True, reason="the worker grading it stopped answering")
        elif loss.strike:
            run.strikes += 1
        if run.strikes >= max_tries:
            grading.give_up(
                run,
                f"gave up after {run.strikes} tries that the submission may have caused; "
                f"the last: {loss.reason}",
            )
            failed.append(run.id)
        elif run.tries >= limit:
            grading.give_up(
                run, f"gave up after {run.tries} deliveries, the most a run gets; the last: {loss.reason}"
            )
            failed.append(run.id)
        else:
            counted = (
                f"counted against the submission: {run.strikes} of {max_tries}"
                if loss.strike
                else "not counted against the submission"
            )
            run.status = RunStatus.QUEUED
            run.lease_id = None
            run.lease_expires_at = None
            run.last_error = f"{loss.reason}; sent again ({counted})"
            run.enqueued_at = None
    session.commit()
    return failed


def lease_losses(
    stale: Sequence[GradingRun], started: dict[str, datetime] | None
) -> dict[str, LeaseLoss | None]:
    """Whose fault each expired lease was, given when each live worker was started (None: unknown).

    The submission may have caused it only when its run alone lost its lease while the worker that
    held it kept running since before the claim: then only the process grading it died.
    """
    if started is None:
        return {run.id: None for run in stale}
    lost_per_worker = Counter(run.worker for run in stale)
    losses: dict[str, LeaseLoss | None] = {}
    for run in stale:
        worker = run.worker or "an unnamed worker"
        if lost_per_worker[run.worker] > 1:
            loss = LeaseLoss(
                False,
                f"the worker {worker} lost {lost_per_worker[run.worker]} runs at once "
                "(it died or was stopped with them)",
            )
        elif run.worker not in started:
            loss = LeaseLoss(False, f"the worker {worker} stopped answering while grading it")
        elif run.started_at is None or started[run.worker] > run.started_at - RESTART_MARGIN:
            loss = LeaseLoss(False, f"the worker {worker} was started again while grading it")
        else:
            loss = LeaseLoss(
                True,
                f"the process grading it on {worker} died while that worker kept running "
                "(the submission may crash it)",
            )
        losses[run.id] = loss
    return losses


def _resend_lost_messages(
    session: Session, queue: TaskQueue, *, now: datetime, lease_seconds: int
) -> list[str]:
    # A message sent less than a lease ago may not have reached the broker yet (intake records the
    # send in its commit, then sends): only older ones, and those never sent, are candidates.
    handed_over_before = now - timedelta(seconds=lease_seconds)
    candidates = session.scalars(
        select(GradingRun).where(
            GradingRun.status == RunStatus.QUEUED,
            or_(GradingRun.enqueued_at.is_(None), GradingRun.enqueued_at <= handed_over_before),
        )
    ).all()
    by_queue: dict[str, list[GradingRun]] = defaultdict(list)
    for run in candidates:
        by_queue[run.queue].append(run)
    requeued: list[str] = []
    for name, runs in by_queue.items():
        try:
            held = queue.messages_for(name, [run.id for run in runs])
        except ServiceUnavailable as exc:
            # Right after a restart Redis may still be loading what it kept: nothing is known lost.
            log.warning("queue %s left for the next pass: %s", name, exc.message)
            continue
        if held is None:
            lost = _lost_by_the_older_rule(queue, name, runs)
        else:
            lost = [run for run in runs if run.id not in held]
        if lost:
            # A run a worker graded (and acked) after the candidates were read has no message either.
            still_queued = set(
                session.scalars(
                    select(GradingRun.id).where(
                        GradingRun.id.in_([run.id for run in lost]), GradingRun.status == RunStatus.QUEUED
                    )
                )
            )
            lost = [run for run in lost if run.id in still_queued]
        for run in lost:
            try:
                queue.enqueue_grading(run.id, run.queue)
            except Exception:
                log.warning("reconciler could not enqueue run %s", run.id, exc_info=True)
                continue
            run.enqueued_at = utcnow()
            requeued.append(run.id)
            session.commit()
    return requeued


def _lost_by_the_older_rule(queue: TaskQueue, name: str, runs: Sequence[GradingRun]) -> list[GradingRun]:
    """Without a broker that can tell: runs never sent, and every candidate once its queue is empty."""
    pending = queue.pending_count(name)
    queue_is_empty = pending is None or pending == 0
    return [run for run in runs if run.enqueued_at is None or queue_is_empty]
