"""Prometheus metrics: every series the service exports, defined here once, and their exposition.

The process that does the work records it, through the one-line functions below, so services never
touch prometheus_client: the web app counts intake (and inline grading), the workers count grading,
the sandbox and credentials, the reconciler counts what it re-sent or gave up. Queue depths are read
from the database when a scrape asks (`QueueCollector`): the database is the truth about the queues,
and a gauge kept in memory would be right in one process at most. Under gunicorn or Celery prefork,
each process writes its values to files in `PROMETHEUS_MULTIPROC_DIR` (`grader.metrics_dir`) and a
scrape adds them up.

Every label takes its values from a closed set (kinds, queues, outcomes, backends, actions, error
codes), never an id or a person, so the number of series stays small and no learner shows up in them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from grader import metrics_dir
from grader.errors import GraderError
from grader.models import GradeOutcome, GradingRun, RunStatus, Submission, SubmissionStatus, utcnow
from sandbox.contract import JobSpec, Runner, RunResult, Serve

if TYPE_CHECKING:
    from grader.kinds.base import Grade

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

# From a quiz's milliseconds to a repository's minutes behind a deadline spike.
TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
SANDBOX_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

SUBMISSIONS_RECEIVED = Counter(
    "grader_submissions_received",
    "Submissions accepted at intake (stored and queued, or graded inline), by assessment kind.",
    ["kind"],
)
SUBMISSIONS_REFUSED = Counter(
    "grader_submissions_refused",
    "Submissions refused at intake, by the error code the learner was answered with.",
    ["reason"],
)
SUBMISSIONS_GRADED = Counter(
    "grader_submissions_graded",
    "Results written, by assessment kind and outcome: passed, failed, needs_review, scored (no pass "
    "mark yet), or how the run ended without a verdict (tampered, grader_error, not_gradable, "
    "repository_unavailable).",
    ["kind", "outcome"],
)
RUN_WAIT = Histogram(
    "grader_run_wait_seconds",
    "Seconds from a submission's request to the claim of the run that graded it, by queue.",
    ["queue"],
    buckets=TIME_BUCKETS,
)
RUN_DURATION = Histogram(
    "grader_run_duration_seconds",
    "Seconds from a run's claim to its result being written, by queue.",
    ["queue"],
    buckets=TIME_BUCKETS,
)
SANDBOX_RUNS = Counter(
    "grader_sandbox_runs",
    "Jobs run in the sandbox, by backend and outcome (completed, crashed, timeout, memory_limit, "
    "output_limit, killed, sandbox_error).",
    ["backend", "outcome"],
)
SANDBOX_SECONDS = Histogram(
    "grader_sandbox_run_seconds",
    "Wall-clock seconds of each sandbox job, by backend.",
    ["backend"],
    buckets=SANDBOX_BUCKETS,
)
RECONCILER_ACTIONS = Counter(
    "grader_reconciler_actions",
    "What the reconciler did: resent (a run whose message or worker was lost, sent again), gave_up "
    "(a run marked error after its tries), credential_resent (a pending credential sent again).",
    ["action"],
)
CREDENTIALS = Counter(
    "grader_credentials",
    "Credentials signed (issued) and withdrawn by staff (revoked).",
    ["action"],
)


# ---------------------------------------------------------------- recording


def submission_received(kind: str) -> None:
    SUBMISSIONS_RECEIVED.labels(kind=kind).inc()


def counts_refusals(intake: Callable[P, R]) -> Callable[P, R]:
    """Counts each refusal an intake function raises, by its error code, and raises it on."""

    @functools.wraps(intake)
    def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return intake(*args, **kwargs)
        except GraderError as exc:
            SUBMISSIONS_REFUSED.labels(reason=exc.code).inc()
            raise

    return counted


def verdict(grade: Grade) -> str:
    """A result's outcome as the `outcome` label says it."""
    if grade.outcome is not GradeOutcome.GRADED:
        return str(grade.outcome.value)
    if grade.needs_review:
        return "needs_review"
    if grade.passed is None:
        return "scored"
    return "passed" if grade.passed else "failed"


def run_finished(
    *,
    kind: str,
    queue: str,
    grade: Grade,
    requested_at: datetime | None,
    started_at: datetime | None,
    finished_at: datetime | None = None,
) -> None:
    """A result was written: its outcome, how long the run waited for a worker, how long it ran."""
    SUBMISSIONS_GRADED.labels(kind=kind, outcome=verdict(grade)).inc()
    started = _aware(started_at)
    if started is None:
        return
    requested = _aware(requested_at)
    if requested is not None:
        RUN_WAIT.labels(queue=queue).observe(max(0.0, (started - requested).total_seconds()))
    finished = _aware(finished_at) or utcnow()
    RUN_DURATION.labels(queue=queue).observe(max(0.0, (finished - started).total_seconds()))


def reconciled(*, resent: int, gave_up: int, credentials_resent: int) -> None:
    for action, count in (
        ("resent", resent),
        ("gave_up", gave_up),
        ("credential_resent", credentials_resent),
    ):
        if count:
            RECONCILER_ACTIONS.labels(action=action).inc(count)


def credential_issued() -> None:
    CREDENTIALS.labels(action="issued").inc()


def credential_revoked() -> None:
    CREDENTIALS.labels(action="revoked").inc()


class MeteredRunner:
    """A sandbox runner that counts each job's outcome and time; in all else the runner it wraps."""

    def __init__(self, runner: Runner) -> None:
        self.inner = runner
        self.name = runner.name

    def run(self, spec: JobSpec, *, serve: Serve | None = None) -> RunResult:
        result = self.inner.run(spec, serve=serve)
        backend = result.backend or self.name
        SANDBOX_RUNS.labels(backend=backend, outcome=result.outcome.value).inc()
        SANDBOX_SECONDS.labels(backend=backend).observe(max(0.0, result.wall_seconds))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def metered(runner: Runner) -> Runner:
    return runner if isinstance(runner, MeteredRunner) else MeteredRunner(runner)


# ---------------------------------------------------------------- read at scrape time


class QueueCollector:
    """Depth, oldest wait, running and failed runs per queue, read from the database at each scrape."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "grader_database_up", "1 when this scrape could read the queues from the database, else 0."
        )
        try:
            families = self._queues()
        except SQLAlchemyError as exc:
            log.warning("metrics: the queues could not be read from the database: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _queues(self) -> list[Metric]:
        from grader.kinds import KINDS  # the kinds' modules record metrics themselves: imported late

        now = utcnow()
        with self.sessions() as session:
            waiting = session.execute(
                select(
                    GradingRun.queue,
                    GradingRun.status,
                    func.count(GradingRun.id),
                    func.min(GradingRun.requested_at),
                )
                .where(GradingRun.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
                .group_by(GradingRun.queue, GradingRun.status)
            ).all()
            # A run in error whose submission is still in error: what staff see with a retry button.
            failed = session.execute(
                select(GradingRun.queue, func.count(GradingRun.id))
                .join(Submission, Submission.id == GradingRun.submission_id)
                .where(GradingRun.status == RunStatus.ERROR, Submission.status == SubmissionStatus.ERROR)
                .group_by(GradingRun.queue)
            ).all()
        names = sorted(
            {kind.queue for kind in KINDS.values()} | {row[0] for row in waiting} | {r[0] for r in failed}
        )
        depth = GaugeMetricFamily(
            "grader_queue_depth", "Runs waiting for a worker, per queue.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "grader_queue_oldest_age_seconds",
            "Seconds the oldest waiting run of each queue has waited (0 when none waits).",
            labels=["queue"],
        )
        running = GaugeMetricFamily(
            "grader_runs_running", "Runs claimed by a worker, per queue.", labels=["queue"]
        )
        errors = GaugeMetricFamily(
            "grader_runs_in_error",
            "Runs that ended in error and were not retried since, per queue.",
            labels=["queue"],
        )
        for name in names:
            queued = next((row for row in waiting if row[0] == name and row[1] == RunStatus.QUEUED), None)
            claimed = next((row for row in waiting if row[0] == name and row[1] == RunStatus.RUNNING), None)
            since = _aware(queued[3]) if queued is not None else None
            depth.add_metric([name], queued[2] if queued is not None else 0)
            oldest.add_metric([name], max(0.0, (now - since).total_seconds()) if since is not None else 0.0)
            running.add_metric([name], claimed[2] if claimed is not None else 0)
            errors.add_metric([name], next((row[1] for row in failed if row[0] == name), 0))
        return [depth, oldest, running, errors]


# ---------------------------------------------------------------- exposition


class _ThisProcess:
    """The values kept in this process's memory (one process: no multiprocess folder)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def registry(*extra: Collector) -> CollectorRegistry:
    """Everything a scrape of this process tree shows, with `extra` collectors beside it."""
    combined = CollectorRegistry()
    if metrics_dir.active() is not None:
        MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
    else:
        combined.register(_ThisProcess())
    for collector in extra:
        combined.register(collector)
    return combined


def exposition(*extra: Collector) -> tuple[bytes, str]:
    """The text a scrape gets, and its content type."""
    return generate_latest(registry(*extra)), CONTENT_TYPE_LATEST


def serve(host: str, port: int, *extra: Collector) -> bool:
    """Serve /metrics over HTTP from a background thread (a worker, the reconciler); False if it cannot."""
    try:
        start_http_server(port, addr=host, registry=registry(*extra))
    except OSError as exc:
        log.error("cannot serve metrics on %s:%d: %s", host, port, exc.strerror or exc)
        return False
    log.info("metrics served on http://%s:%d/metrics", host, port)
    return True


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes; every time the service writes is UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
