"""Faults at load: quizzes at a steady rate while the worker is SIGKILLed every few seconds and Redis is
restarted once; prints what was lost, doubled, put in error, and re-sent against what needed it.

Each rule runs on its own fresh PostgreSQL database and private redis-server (append-only file, fsync
always, as the tests run it): `new` is the reconciler as it is (re-sends only what the broker lost,
counts only the tries a submission may have caused); `old` is the same reconciler given a broker that
cannot tell (`messages_for` and `live_workers` answer None), which is the rule it had before: re-send
a queued run once its queue's list is empty, count every lost lease as a try.

Intake is the real API (the Flask app in this process, on `CeleryTaskQueue`), the workers are real
prefork `celery worker` processes (`tests.support.faulty_worker`: a short grading delay so that a
backlog forms and workers prefetch), the reconciler passes every second in this process.

A re-send that was not needed shows up as a duplicate delivery the workers skip (the run was claimed
or done already): "needed" is the re-sends minus those duplicates.

    .venv/bin/python bench/chaos.py [--rule new|old|both] [--rate 20] [--seconds 20] [--kill-every 4]
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bench._production import make_learners
from grader.broker import CeleryTaskQueue
from grader.catalog.loader import read_catalog
from grader.config import Settings
from grader.db import make_engine, make_session_factory, session_scope
from grader.interfaces import TaskQueue
from grader.migrate import upgrade
from grader.models import GradingRun, Result, RunStatus
from grader.services.catalog import load_catalog
from grader.services.reconciler import reconcile
from grader.web import create_app
from tests.support.catalogs import BASICS_ANSWERS, write_catalog
from tests.support.services import RedisServer, WorkerProcess, postgres_database, redis_server

LEASE_SECONDS = 3
MAX_TRIES = 3
ATTEMPTS_PER_LEARNER = 3  # the basics quiz allows three
OUTCOME = re.compile(rb"run [0-9a-f]{32}: ([a-z_]+)")


class OlderRules:
    """The broker as the reconciler saw it before: it cannot tell which messages or workers live."""

    def __init__(self, inner: CeleryTaskQueue) -> None:
        self.inner = inner

    def enqueue_grading(self, run_id: str, queue: str) -> None:
        self.inner.enqueue_grading(run_id, queue)

    def enqueue_issue(self, credential_id: str) -> None:
        self.inner.enqueue_issue(credential_id)

    def pending_count(self, queue: str) -> int | None:
        return self.inner.pending_count(queue)

    def messages_for(self, queue: str, run_ids: object) -> set[str] | None:
        return None

    def live_workers(self, names: object) -> None:
        return None


@dataclass
class Tally:
    rule: str
    submitted: int = 0
    refused: int = 0
    kills: int = 0
    redis_restarts: int = 0
    passes: int = 0
    resent: int = 0
    gave_up: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    graded: int = 0
    in_error: int = 0
    unfinished: int = 0
    doubled: int = 0
    seconds_to_drain: float = 0.0
    achieved_rate: float = 0.0


def run_rule(rule: str, *, rate: float, seconds: float, kill_every: float, workdir: Path) -> Tally:
    tally = Tally(rule)
    with postgres_database() as database_url, redis_server(workdir / "redis") as broker:
        settings = Settings(
            data_dir=workdir / "var",
            database_url=database_url,
            broker_url=broker.url,
            secret_key="bench-secret-key-0123456789",
            catalog_path=workdir / "catalog",
            lease_seconds=LEASE_SECONDS,
            max_run_tries=MAX_TRIES,
            submissions_per_hour=10_000,
            queue_admission_limit=100_000,
        )
        engine = make_engine(settings)
        upgrade(engine)
        sessions = make_session_factory(engine)
        with session_scope(sessions) as session:
            load_catalog(session, read_catalog(write_catalog(settings.catalog_path)))
        total = int(rate * seconds)
        tokens = make_learners(sessions, total // ATTEMPTS_PER_LEARNER + 1, "test-program")
        celery_queue = CeleryTaskQueue(settings)
        queue: TaskQueue = celery_queue if rule == "new" else OlderRules(celery_queue)
        client = create_app(settings, queue=celery_queue).test_client()
        log_path = workdir / "workers.log"

        def new_worker() -> WorkerProcess:
            worker = WorkerProcess(
                env={**settings.to_env(), "GRADER_TEST_GRADE_DELAY": "0.08", "GRADER_TEST_PREFETCH": "4"},
                log_path=log_path,
                app="tests.support.faulty_worker",
                concurrency=2,
            )
            worker.start()
            return worker

        stop_reconciling = threading.Event()

        def reconcile_loop() -> None:
            while not stop_reconciling.wait(1.0):
                try:
                    with sessions() as session:
                        report = reconcile(session, queue, lease_seconds=LEASE_SECONDS, max_tries=MAX_TRIES)
                except Exception as exc:  # Redis is down for a moment: the next pass tries again
                    print(f"  [{rule}] reconcile pass failed: {exc.__class__.__name__}", file=sys.stderr)
                    continue
                tally.passes += 1
                tally.resent += len(report.requeued)
                tally.gave_up += len(report.failed)

        reconciler = threading.Thread(target=reconcile_loop, daemon=True)
        reconciler.start()
        workers = [new_worker()]  # the one alive now is the last
        stop_faults = threading.Event()
        started = time.monotonic()

        def faults() -> None:
            # Its own thread, so that the arrivals keep their pace while a worker starts again.
            next_kill, restart_at = started + kill_every, started + seconds / 2
            while not stop_faults.wait(0.05):
                if time.monotonic() >= next_kill:
                    workers[-1].kill()  # SIGKILL to the whole worker: main process and pool
                    tally.kills += 1
                    workers.append(new_worker())
                    next_kill = time.monotonic() + kill_every
                if not tally.redis_restarts and time.monotonic() >= restart_at:
                    restart(broker)
                    tally.redis_restarts += 1

        chaos = threading.Thread(target=faults, daemon=True)
        chaos.start()
        try:
            for n in range(total):
                due = started + n / rate
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                response = client.post(
                    "/api/v1/submissions",
                    json={"assessment": "basics", "answers": BASICS_ANSWERS},
                    headers={"Authorization": f"Bearer {tokens[n // ATTEMPTS_PER_LEARNER]}"},
                )
                if response.status_code == 202:
                    tally.submitted += 1
                else:
                    tally.refused += 1
            tally.achieved_rate = total / (time.monotonic() - started)
            stop_faults.set()
            chaos.join(timeout=60)
            load_ended = time.monotonic()
            deadline = load_ended + 180
            while time.monotonic() < deadline and waiting(sessions) > 0:
                time.sleep(0.5)
            tally.seconds_to_drain = time.monotonic() - load_ended
            time.sleep(2 * LEASE_SECONDS)  # a stray duplicate delivery arrives now, or never
        finally:
            stop_faults.set()
            stop_reconciling.set()
            reconciler.join(timeout=30)
            for worker in workers:
                worker.stop()
        count_results(sessions, tally)
        tally.outcomes.update(m.group(1).decode() for m in OUTCOME.finditer(log_path.read_bytes()))
        engine.dispose()
    return tally


def restart(broker: RedisServer) -> None:
    broker.stop(signal.SIGKILL)  # a crash: the append-only file keeps what was written
    time.sleep(1.0)
    broker.start()


def waiting(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(
            session.scalar(
                select(func.count(GradingRun.id)).where(
                    GradingRun.status.in_([RunStatus.QUEUED, RunStatus.RUNNING])
                )
            )
            or 0
        )


def count_results(sessions: sessionmaker[Session], tally: Tally) -> None:
    with sessions() as session:
        statuses = Counter(
            dict(session.execute(select(GradingRun.status, func.count()).group_by(GradingRun.status)).all())
        )
        per_submission = session.execute(
            select(Result.submission_id, func.count(Result.id)).group_by(Result.submission_id)
        ).all()
    tally.graded = int(statuses.get(RunStatus.DONE, 0))
    tally.in_error = int(statuses.get(RunStatus.ERROR, 0))
    tally.unfinished = int(statuses.get(RunStatus.QUEUED, 0) + statuses.get(RunStatus.RUNNING, 0))
    tally.doubled = sum(1 for _, results in per_submission if results > 1)


def report(tally: Tally, rate: float, seconds: float) -> None:
    duplicates = tally.outcomes.get("skipped", 0)
    print(
        f"rule {tally.rule}: {tally.submitted} quizzes at {rate:g}/s for {seconds:g} s, "
        f"(achieved {tally.achieved_rate:.1f}/s), refused {tally.refused}"
    )
    print(f"  faults: worker SIGKILLed {tally.kills} times, Redis restarted {tally.redis_restarts} time(s)")
    print(
        f"  graded {tally.graded}, in error {tally.in_error}, lost (never graded) {tally.unfinished}, "
        f"doubled (two results) {tally.doubled}; drained {tally.seconds_to_drain:.1f} s after the load"
    )
    print(
        f"  re-sent {tally.resent} in {tally.passes} reconciler passes; duplicate deliveries the workers "
        f"skipped {duplicates}; needed about {max(0, tally.resent - duplicates)}"
    )
    print(f"  worker outcomes: {dict(tally.outcomes)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rule", choices=("new", "old", "both"), default="both")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--kill-every", type=float, default=4.0)
    args = parser.parse_args()
    rules = ("new", "old") if args.rule == "both" else (args.rule,)
    for rule in rules:
        with tempfile.TemporaryDirectory(prefix=f"chaos-{rule}-") as folder:
            tally = run_rule(
                rule, rate=args.rate, seconds=args.seconds, kill_every=args.kill_every, workdir=Path(folder)
            )
        report(tally, args.rate, args.seconds)


if __name__ == "__main__":
    main()
