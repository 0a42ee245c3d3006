"""Quiz throughput as production runs it: gunicorn, Celery prefork workers, PostgreSQL, Redis, open-loop load.

Starts a private redis-server (compose.yaml's flags), a fresh PostgreSQL database on the machine's
server, gunicorn with gthread workers and a prefork `celery worker` as compose.yaml runs them (through
the bench composition roots `bench/_counting_wsgi.py` and `bench/_counting_worker.py`, which count SQL
statements per process), loads the sample-like quiz of tests/support/catalogs.py with unlimited
attempts and makes thousands of learners with API tokens before the clock starts. A separate client
process (`bench/_load_client.py`) then sends Poisson arrivals at the offered rate: each a POST
/api/v1/submissions and, in queue mode, long-polling GETs of its status URL until graded.

It prints, per step: offered and achieved graded/s, p50/p95/p99 from arrival to result, errors, SQL
statements and commits per submission (by request and task), Redis commands and CPU per submission
by process, and how busy the machine was with other work. With --find-max it raises the rate step by
step until p99 > 1 s or achieved < 90 % of offered and reports the highest sustained rate. In the same
run it measures two anchors: the app's own trivial JSON endpoint under the same gunicorn from the same
client, and a Celery no-op task on the same Redis and worker, and prints each target as met or NOT met.

    .venv/bin/python bench/quiz_throughput.py [--mode queue|inline] [--rate R] [--seconds S]
        [--learners 3000] [--find-max] [--prefer-wait] [--profile]

--profile is a run of its own: every web request and task under cProfile (bench composition roots,
GRADER_BENCH_PROFILE=1) at a low rate, then the top functions per POST, per status GET and per task.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench._instrumentation import COUNT_DIR_ENV, PROFILE_ENV, PROFILE_SWITCH  # noqa: E402
from bench._noop_tasks import NOOP_TASK  # noqa: E402
from bench._production import (  # noqa: E402
    CeleryWorker,
    Gunicorn,
    RedisProcess,
    StepUsage,
    compose_redis,
    make_learners,
    process_groups,
    snapshot,
    usage,
)
from grader.broker import make_client  # noqa: E402
from grader.catalog.loader import read_catalog  # noqa: E402
from grader.config import Settings  # noqa: E402
from grader.db import make_engine, make_session_factory, session_scope  # noqa: E402
from grader.migrate import upgrade  # noqa: E402
from grader.services.catalog import load_catalog  # noqa: E402
from tests.support.catalogs import BASICS_ANSWERS, BASICS_QUIZ, PROGRAM, TIMED_QUIZ, write_catalog  # noqa: E402
from tests.support.services import free_port, postgres_database  # noqa: E402

UNLIMITED = BASICS_QUIZ.replace(
    "attempts: {max: 3, cooldown_seconds: 0}", "attempts: {max: null, cooldown_seconds: 0}"
)
QUIZ_QUEUE = "quiz"
OUR_CODE = tuple(str(ROOT / package) + "/" for package in ("grader", "workers", "rubrics"))
SUSTAINED_P99_SECONDS = 1.0
SUSTAINED_SHARE = 0.9


@dataclass(frozen=True)
class Targets:
    """Issue 12's targets on the 2-core machine."""

    rate: float  # the offered rate at which the latency targets hold
    saturation: float  # graded/s
    p50: float
    p99: float
    statements: float
    noop_share: float | None = None


TARGETS = {
    "queue": Targets(rate=50, saturation=100, p50=0.030, p99=0.150, statements=12, noop_share=0.3),
    "inline": Targets(rate=100, saturation=200, p50=0.020, p99=0.100, statements=6),
}


def percentile(values: list[float], share: float) -> float:
    """Nearest rank of sorted `values`; NaN when there are none."""
    if not values:
        return math.nan
    return values[max(0, math.ceil(share * len(values)) - 1)]


@dataclass
class Step:
    """One offered rate, as the client saw it and as the service spent it."""

    rate: float
    client: dict[str, Any]
    usage: StepUsage
    # Seconds from intake to a worker's claim, and from the claim to the result, per run (the runs' own
    # timestamps): where the time between the POST and the result went.
    to_claim: list[float] = field(default_factory=list)
    to_result: list[float] = field(default_factory=list)

    @property
    def graded(self) -> int:
        return len(self.client["latencies"])

    @property
    def arrivals(self) -> int:
        return int(self.client["arrivals"])

    @property
    def offered(self) -> float:
        return self.arrivals / float(self.client["offered_seconds"])

    @property
    def achieved(self) -> float:
        return self.graded / max(float(self.client["span"]), float(self.client["offered_seconds"]))

    @property
    def errors(self) -> int:
        return sum(self.client["errors"].values())

    def latency(self, share: float) -> float:
        return percentile(self.client["latencies"], share)

    @property
    def sustained(self) -> bool:
        return (
            self.graded > 0
            and self.latency(0.99) <= SUSTAINED_P99_SECONDS
            and self.achieved >= SUSTAINED_SHARE * self.offered
            and self.errors <= 0.01 * self.arrivals
        )

    def per_submission(self, value: float) -> float:
        return value / self.graded if self.graded else math.nan

    @property
    def statements(self) -> float:
        return self.per_submission(sum(self.usage.statements.values()))

    @property
    def hand_in_statements(self) -> float:
        """From hand-in to result: the POST and the grading task, without the status GETs."""
        return self.per_submission(
            sum(n for label, n in self.usage.statements.items() if not label.startswith("GET "))
        )


class Stack:
    """The running service, its learners and the means to load and measure it."""

    def __init__(self, args: argparse.Namespace, tmp: Path, database_url: str, redis: RedisProcess) -> None:
        self.args = args
        self.tmp = tmp
        self.count_dir = tmp / "counts"
        self.settings = Settings(
            data_dir=tmp / "var",
            database_url=database_url,
            broker_url=redis.url,
            secret_key="bench",
            submissions_per_hour=10**9,
            queue_admission_limit=10**9,
            quiz_grading=args.mode,
            # As compose.yaml runs it: JSON log lines, /metrics behind a token, workers serving theirs.
            log_format="json",
            metrics_token="bench-metrics-token",
            worker_metrics_port=free_port(),
        )
        self.engine = make_engine(self.settings)
        self.redis = Redis.from_url(redis.url)
        self.redis_pid = redis.pid
        self.tokens: list[str] = []
        self.next_learner = 0
        self.gunicorn: Gunicorn
        self.worker: CeleryWorker

    def prepare(self) -> float:
        """Schema, catalog and learners; returns the seconds it took (all before the clock starts)."""
        started = time.perf_counter()
        upgrade(self.engine)
        sessions = make_session_factory(self.engine)
        catalog = write_catalog(
            self.tmp / "catalog",
            {
                "assessments/basics.yaml": UNLIMITED,
                "assessments/timed.yaml": TIMED_QUIZ,
                "programs/test-program.yaml": PROGRAM,
            },
        )
        with session_scope(sessions) as session:
            load_catalog(session, read_catalog(catalog))
        self.tokens = make_learners(sessions, self.args.learners, "test-program")
        return time.perf_counter() - started

    @contextmanager
    def running(self, *, profile: bool = False) -> Iterator[None]:
        # No PROMETHEUS_MULTIPROC_DIR: gunicorn_conf and workers.main each make their tree's own.
        env = {**self.settings.to_env(), COUNT_DIR_ENV: str(self.count_dir)}
        if profile:
            env[PROFILE_ENV] = "1"
        self.gunicorn = Gunicorn(
            env=env, log_dir=self.tmp / "logs", workers=self.args.web_workers, threads=self.args.web_threads
        )
        self.worker = CeleryWorker(
            env=env, log_path=self.tmp / "logs" / "worker.log", concurrency=self.args.worker_concurrency
        )
        with ExitStack() as stack:
            stack.callback(self.worker.stop)
            stack.callback(self.gunicorn.stop)
            try:
                self.worker.start()
                self.gunicorn.start()
                yield
            except BaseException:
                print(self.gunicorn.log_tail(), file=sys.stderr)
                print(self.worker.log_tail(), file=sys.stderr)
                raise

    def client(self, spec: dict[str, Any]) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "bench._load_client"],
            input=json.dumps({"base": self.gunicorn.base_url, **spec}),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the load client failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def quiz_step(self, rate: float, seconds: float) -> Step:
        groups = process_groups(self.gunicorn, self.worker, self.engine, self.redis_pid)
        before = snapshot(groups, self.count_dir, self.redis)
        before_runs = self.last_run_rowid()
        result = self.client(
            {
                "kind": "quiz",
                "mode": self.args.mode,
                "prefer_wait": self.args.prefer_wait,
                "rate": rate,
                "seconds": seconds,
                "threads": self.args.client_threads,
                "tokens": self.tokens,
                "first_learner": self.next_learner,
                "assessment": "basics",
                "answers": BASICS_ANSWERS,
                "seed": int(rate * 1000),
            }
        )
        self.next_learner = int(result["next_learner"])
        self.wait_for_empty_queue()
        after = snapshot(
            process_groups(self.gunicorn, self.worker, self.engine, self.redis_pid),
            self.count_dir,
            self.redis,
        )
        to_claim, to_result = self.run_split(after_run=before_runs)
        step_usage = usage(before, after)
        return Step(rate=rate, client=result, usage=step_usage, to_claim=to_claim, to_result=to_result)

    def last_run_rowid(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM grading_runs")).scalar_one())

    def run_split(self, *, after_run: int) -> tuple[list[float], list[float]]:
        """Intake→claim and claim→result of the runs this step made, sorted (inline runs have none)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT requested_at, started_at, finished_at FROM grading_runs "
                    "WHERE worker <> 'inline' AND finished_at IS NOT NULL ORDER BY requested_at OFFSET :skip"
                ),
                {"skip": after_run},
            ).all()
        to_claim = sorted((started - requested).total_seconds() for requested, started, _ in rows)
        to_result = sorted((finished - started).total_seconds() for _, started, finished in rows)
        return to_claim, to_result

    def wait_for_empty_queue(self, timeout: float = 120.0) -> None:
        """Until no message waits in the quiz queue and none is held unacknowledged by a worker."""
        deadline = time.monotonic() + timeout
        empty_in_a_row = 0
        while time.monotonic() < deadline and empty_in_a_row < 2:
            pipe = self.redis.pipeline()
            pipe.llen(QUIZ_QUEUE)
            pipe.hlen("unacked")
            waiting, held = pipe.execute()
            empty_in_a_row = empty_in_a_row + 1 if waiting == 0 and held == 0 else 0
            time.sleep(0.005)

    def trivial_path(self) -> str:
        """GET /healthz when the app has one, else the bench composition root's own tiny route."""
        try:
            with urllib.request.urlopen(self.gunicorn.base_url + "/healthz", timeout=5) as response:
                if response.status == 200 and "json" in response.headers.get("Content-Type", ""):
                    return "/healthz"
        except urllib.error.URLError:
            pass
        return "/_bench/ping"

    def http_anchor(self, seconds: float) -> dict[str, Any]:
        path = self.trivial_path()
        threads = self.args.web_workers * self.args.web_threads
        result = self.client({"kind": "get", "path": path, "seconds": seconds, "threads": threads})
        result["path"] = path
        result["threads"] = threads
        return result

    def noop_anchor(self, tasks: int) -> dict[str, float]:
        """Celery no-op tasks sent as fast as one sender can, on the quiz queue the worker serves."""
        sender = make_client(self.settings, name="bench-noop")
        sender.send_task(NOOP_TASK, queue=QUIZ_QUEUE)  # warm: connection, pool
        self.wait_for_empty_queue()
        started = time.perf_counter()
        for _ in range(tasks):
            sender.send_task(NOOP_TASK, queue=QUIZ_QUEUE)
        sent = time.perf_counter() - started
        self.wait_for_empty_queue()
        elapsed = time.perf_counter() - started
        sender.close()
        # The queue's emptiness is the clock; the worker's own log says whether every task really ran.
        time.sleep(0.5)
        succeeded = self.worker.log_path.read_text(errors="replace").count(f"Task {NOOP_TASK}[")
        if succeeded < 2 * (tasks + 1):  # one "received" and one "succeeded" line each
            print(f"warning: the worker logged {succeeded // 2} of {tasks + 1} no-op tasks", file=sys.stderr)
        return {"tasks": tasks, "seconds": elapsed, "send_seconds": sent, "rate": tasks / elapsed}


# ---------------------------------------------------------------- printing


def ms(seconds: float) -> str:
    return "   n/a" if math.isnan(seconds) else f"{seconds * 1000:6.1f}"


def describe_step(step: Step, *, title: str) -> None:
    client = step.client
    use = step.usage
    print(
        f"{title}: offered {step.rate:g}/s for {client['offered_seconds']:g} s "
        f"({step.arrivals} Poisson arrivals = {step.offered:.1f}/s)"
    )
    print(
        f"  achieved            {step.achieved:7.1f} graded/s ({step.graded} graded, "
        f"last result {client['span']:.1f} s after the first arrival)"
    )
    print(
        f"  arrival→result      p50 {ms(step.latency(0.5))}  p95 {ms(step.latency(0.95))}  "
        f"p99 {ms(step.latency(0.99))}  max {ms(step.latency(1.0))} ms"
    )
    posts = client["post_latencies"]
    print(
        f"  POST answered       p50 {ms(percentile(posts, 0.5))}  p99 {ms(percentile(posts, 0.99))} ms; "
        f"status GETs per submission {step.per_submission(client['gets']):.2f}"
    )
    errors = ", ".join(f"{count}x {kind}" for kind, count in sorted(client["errors"].items())) or "none"
    print(f"  errors              {step.errors} ({errors})")
    lags = client["lags"]
    print(f"  client lag          p99 {ms(percentile(lags, 0.99))} ms (arrival due → request sent)")
    if step.to_claim:
        print(
            f"  server side         intake→claim p50 {ms(percentile(step.to_claim, 0.5))}  "
            f"p99 {ms(percentile(step.to_claim, 0.99))} ms; claim→result p50 "
            f"{ms(percentile(step.to_result, 0.5))}  p99 {ms(percentile(step.to_result, 0.99))} ms"
        )
    total_statements = sum(use.statements.values())
    print(
        f"  SQL per submission  {step.statements:.1f} statements, "
        f"{step.per_submission(sum(use.commits.values())):.1f} commits ({total_statements} statements in all)"
    )
    for label in sorted(set(use.statements) | set(use.units)):
        units = use.units.get(label, 0)
        statements = use.statements.get(label, 0)
        each = (
            f"{statements / units:5.1f} per call x {step.per_submission(units):4.2f} per submission"
            if units
            else ""
        )
        print(f"      {label:<40} {step.per_submission(statements):5.1f}  {each}")
    redis_calls = step.per_submission(use.redis_calls)
    print(f"  Redis per submission {redis_calls:.1f} commands (workers' idle polls included)")
    cpu = "  ".join(f"{name} {step.per_submission(seconds) * 1000:.1f}" for name, seconds in use.cpu.items())
    print(f"  CPU per submission  {cpu}  client {step.per_submission(client['client_cpu']) * 1000:.1f} ms")
    bench_cores = (sum(use.cpu.values()) + client["client_cpu"]) / use.seconds
    print(
        f"  machine             {bench_cores:.2f} of 2 cores busy with the bench, "
        f"{use.others_busy(client['client_cpu']):.2f} with other processes"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_targets(
    mode: str,
    fixed: Step,
    best: Step | None,
    anchor: dict[str, Any],
    noop: dict[str, float],
    *,
    searched: bool,
) -> None:
    target = TARGETS[mode]
    print(f"targets ({mode} mode, issue 12):")
    if best is not None:
        print(
            f"  saturation ≥ {target.saturation:g} graded/s: {best.achieved:.1f} "
            f"(sustained at {best.rate:g}/s offered): {verdict(best.achieved >= target.saturation)}"
        )
        if target.noop_share is not None:
            share = best.achieved / noop["rate"]
            met = verdict(share >= target.noop_share)
            print(f"  saturation ≥ {target.noop_share}x Celery no-op: {share:.2f}x: {met}")
    else:
        why = f"no rate was sustained: {verdict(False)}" if searched else "not measured (add --find-max)"
        print(f"  saturation ≥ {target.saturation:g} graded/s: {why}")
    at = f"at {fixed.rate:g}/s offered" + (
        "" if fixed.rate == target.rate else f" (the target is at {target.rate:g}/s)"
    )
    p50, p99 = fixed.latency(0.5), fixed.latency(0.99)
    print(f"  p50 ≤ {target.p50 * 1000:g} ms {at}: {ms(p50).strip()} ms: {verdict(p50 <= target.p50)}")
    print(f"  p99 ≤ {target.p99 * 1000:g} ms {at}: {ms(p99).strip()} ms: {verdict(p99 <= target.p99)}")
    # The count: what a hand-in costs until its result is written; the status GETs beside it.
    print(
        f"  SQL statements ≤ {target.statements:g} per submission from hand-in to result: "
        f"{fixed.hand_in_statements:.1f}, {fixed.statements:.1f} with the status GETs: "
        f"{verdict(fixed.hand_in_statements <= target.statements)}"
    )
    http_rate = anchor["requests"] / anchor["seconds"]
    graded = best.achieved if best is not None else fixed.achieved
    which = "saturation" if best is not None else f"achieved at {fixed.rate:g}/s"
    print(
        f"ratios ({which} {graded:.1f} graded/s): {graded / http_rate:.3f}x GET {anchor['path']} "
        f"({http_rate:.0f} req/s), {graded / noop['rate']:.2f}x Celery no-op ({noop['rate']:.0f} tasks/s)"
    )


def print_profiles(count_dir: Path, top: int) -> None:
    merged: dict[str, pstats.Stats] = {}
    calls: Counter[str] = Counter()
    for label_file in sorted(count_dir.glob("profile-*.label")):
        label, units = label_file.read_text().splitlines()[:2]
        stats_file = label_file.with_suffix(".pstats")
        if label in merged:
            merged[label].add(str(stats_file))
        else:
            merged[label] = pstats.Stats(str(stats_file))
        calls[label] += int(units)
    for label in sorted(merged, key=lambda name: (not name.startswith("POST"), name)):
        if label.endswith("other") or "_bench" in label or "noop" in label:
            continue
        stats = merged[label]
        count = calls[label]
        total = stats.total_tt / count * 1000  # type: ignore[attr-defined]
        print(
            f"\nprofile: {label}: {count} calls profiled, {total:.2f} ms of CPU each (cProfile inflates it)"
        )
        stats.sort_stats("cumulative")
        ours = [f for f in stats.fcn_list if f[0].startswith(OUR_CODE)]  # type: ignore[attr-defined]
        views = (
            ("by cumulative time", stats.sort_stats("cumulative").fcn_list[:top]),  # type: ignore[attr-defined]
            ("of the project's own functions by cumulative time", ours[:top]),
            ("by own time", stats.sort_stats("tottime").fcn_list[:top]),  # type: ignore[attr-defined]
        )
        for heading, functions in views:
            print(f"  top {top} {heading}, per call:")
            print(f"  {'calls':>8} {'own ms':>8} {'cum ms':>8}  function")
            for function in functions:
                _, ncalls, own, cumulative, _ = stats.stats[function]  # type: ignore[attr-defined]
                print(
                    f"  {ncalls / count:8.1f} {own / count * 1000:8.3f} {cumulative / count * 1000:8.3f}  "
                    f"{where(function)}"
                )


def where(function: tuple[str, int, str]) -> str:
    path, line, name = function
    for prefix in (str(ROOT) + "/", "site-packages/", "lib/python3.11/"):
        if prefix in path:
            path = path.split(prefix, 1)[1]
    return f"{path}:{line}({name})" if line else name


# ---------------------------------------------------------------- the runs


def measure(stack: Stack, args: argparse.Namespace) -> None:
    target = TARGETS[args.mode]
    rate = args.rate or target.rate
    # Imports, caches, and pools as full as the measured rate keeps them: a warm-up below that rate leaves
    # the first measured seconds opening database connections.
    stack.quiz_step(args.warmup_rate or rate, args.warmup_seconds)
    fixed = stack.quiz_step(rate, args.seconds)
    describe_step(fixed, title="step")
    best: Step | None = None
    if args.find_max:
        first = args.find_max_from or target.saturation / 10
        offered = first
        for _ in range(args.max_steps):
            step = stack.quiz_step(offered, args.seconds)
            describe_step(step, title="find-max step")
            print(f"  -> {'sustained' if step.sustained else 'NOT sustained'}")
            if not step.sustained:
                break
            best = step
            offered = round(offered * args.step, 1)
        if best is None:
            print(f"find-max: not even {first:g}/s was sustained (start lower with --find-max-from)")
        else:
            print(
                f"find-max: highest sustained rate {best.rate:g}/s offered, {best.achieved:.1f} graded/s "
                f"(p99 {ms(best.latency(0.99)).strip()} ms)"
            )
    anchor = stack.http_anchor(args.anchor_seconds)
    http_rate = anchor["requests"] / anchor["seconds"]
    anchor_p50 = ms(percentile(anchor["latencies"], 0.5)).strip()
    client_cores = anchor["client_cpu"] / anchor["seconds"]
    print(
        f"anchor: GET {anchor['path']}, closed loop, {anchor['threads']} client threads for "
        f"{anchor['seconds']:.1f} s: {http_rate:.0f} req/s, p50 {anchor_p50} ms, "
        f"errors {sum(anchor['errors'].values())}, client CPU {client_cores:.2f} cores"
    )
    noop = stack.noop_anchor(args.noop_tasks)
    print(
        f"anchor: Celery no-op, {noop['tasks']} tasks on queue {QUIZ_QUEUE!r}: {noop['rate']:.0f} tasks/s "
        f"from first send to last ack ({noop['send_seconds']:.2f} s to send them)"
    )
    print_targets(args.mode, fixed, best, anchor, noop, searched=args.find_max)


def profile(stack: Stack, args: argparse.Namespace) -> None:
    # First calls (imports, caches) stay out of the profile.
    stack.quiz_step(args.warmup_rate or args.profile_rate, args.warmup_seconds)
    (stack.count_dir / PROFILE_SWITCH).touch()
    step = stack.quiz_step(args.profile_rate, args.seconds)
    (stack.count_dir / PROFILE_SWITCH).unlink()
    describe_step(step, title="profiled step (timings inflated by cProfile)")
    time.sleep(1.5)  # profiles are written every second
    print_profiles(stack.count_dir, args.top)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mode", choices=["queue", "inline"], default="queue", help="GRADER_QUIZ_GRADING")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="offered submissions/s (default: the target's)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    parser.add_argument("--learners", type=int, default=3000, help="accounts with API tokens")
    parser.add_argument(
        "--find-max", action="store_true", help="raise the rate until it is no longer sustained"
    )
    parser.add_argument(
        "--find-max-from", type=float, default=0.0, help="first find-max rate (default target/10)"
    )
    parser.add_argument("--step", type=float, default=1.25, help="find-max: factor between rates")
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn workers (compose.yaml: 4)")
    parser.add_argument("--web-threads", type=int, default=8, help="gthread threads each (compose.yaml: 8)")
    parser.add_argument(
        "--worker-concurrency", type=int, default=4, help="prefork children (compose.yaml: 4)"
    )
    parser.add_argument("--client-threads", type=int, default=256, help="requests the client keeps in flight")
    parser.add_argument(
        "--prefer-wait",
        action="store_true",
        help="queue mode: each POST asks `Prefer: wait=30` (the result in its answer, no status GET)",
    )
    parser.add_argument("--warmup-rate", type=float, default=0.0, help="default: the measured step's rate")
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--anchor-seconds", type=float, default=5.0)
    parser.add_argument("--noop-tasks", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="a profiling run instead (cProfile)")
    parser.add_argument("--profile-rate", type=float, default=3.0, help="low: cProfile slows every call")
    parser.add_argument("--top", type=int, default=15, help="functions shown per profile")
    return parser.parse_args()


def tree_state() -> str:
    """The commit measured, and whether the working tree (shared with others) differs from it."""
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def main() -> None:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # figures as they come
    # A stopped bench (timeout, kill) still stops the processes it started and drops its database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="quiz-bench-") as tmp_name, ExitStack() as services:
        tmp = Path(tmp_name)
        database_url = services.enter_context(postgres_database())
        redis = services.enter_context(compose_redis(tmp / "redis"))
        stack = Stack(args, tmp, database_url, redis)
        prepared = stack.prepare()
        print(
            f"quiz throughput, {args.mode} mode: gunicorn {args.web_workers} gthread workers x "
            f"{args.web_threads} threads, celery prefork x {args.worker_concurrency}, PostgreSQL, "
            f"redis-server (AOF everysec); {args.learners} learners with tokens made in {prepared:.1f} s; "
            f"client: one process, {args.client_threads} threads"
            f"{', POST with Prefer: wait=30' if args.prefer_wait else ''}; tree {tree_state()}"
        )
        with stack.running(profile=args.profile):
            if args.profile:
                profile(stack, args)
            else:
                measure(stack, args)
        stack.engine.dispose()


if __name__ == "__main__":
    main()
