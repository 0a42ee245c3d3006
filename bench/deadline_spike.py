"""A deadline spike: 200 repositories by git URL within 10 s while quizzes keep arriving, 2 sandbox slots.

As production runs it: gunicorn (compose.yaml's 4 gthread workers x 8 threads), a sandbox worker
(`sandbox,checks`, prefork x 2: the 2 slots) and a quiz worker (`quiz,credentials`, prefork x 2), both
real Celery on a compose-configured Redis, PostgreSQL, and the learners' repositories on a git server on
loopback (one repository each, the passing sample `wsgi-todo-api` submission). A separate client process
(`bench/_load_client.py`) sends quizzes as Poisson arrivals at --quiz-rate from the spike's start; this
process sends the --count repository hand-ins at uniformly random moments within --window seconds, each
a POST (a 503 is retried after its Retry-After) and, right after, a GET that reads the ETA shown.
Before the spike, --warmup hand-ins give the queue its history (the ETA reads it) and warm the boxes,
and --quiz-warmup seconds of quizzes warm the web processes (a service is warm when a deadline comes).
The git server runs in this process, on the same cores; --git-host-nice lowers its priority, standing in
for a forge that is not on the grading hosts (default 0: it competes as it is).

It prints: the drain time (first hand-in of the spike to the last result) against the ideal, the sum of
the runs' own run times (claimed to finished) divided by the slots (target <= 1.2x); quiz p50/p99 from
arrival to result during the spike (target p99 <= 300 ms); how many repository POSTs were accepted,
refused first (503) and when the last was accepted; quiz p50/p99 per 5 s of the spike, of the POST's
answer and of the result; and for each hand-in queued with an ETA, whether that ETA was within 25 % of
its real time to the result (share within 25 %, median error, by place in the queue).

    .venv/bin/python bench/deadline_spike.py [--count 200] [--window 10] [--quiz-rate 20] [--backend bwrap]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from bench._production import CeleryWorker, Gunicorn, compose_redis, make_learners  # noqa: E402
from grader.catalog.loader import read_catalog  # noqa: E402
from grader.config import Settings  # noqa: E402
from grader.db import make_engine, make_session_factory, session_scope  # noqa: E402
from grader.migrate import upgrade  # noqa: E402
from grader.models import Enrollment, GradingRun, Program, RunStatus, User  # noqa: E402
from grader.services.catalog import load_catalog  # noqa: E402
from tests.support.catalogs import BASICS_ANSWERS, BASICS_QUIZ, write_catalog  # noqa: E402
from tests.support.gitserver import GitServer  # noqa: E402
from tests.support.services import postgres_database  # noqa: E402

SLUG = "wsgi-todo-api"
REPO_PROGRAM = "python-web-developer"
SUBMISSION = ROOT / "examples" / "submissions" / "wsgi-todo-api-passing"
SANDBOX_SLOTS = 2
TARGET_DRAIN_RATIO = 1.2
TARGET_QUIZ_P99_MS = 300.0
ETA_TOLERANCE = 0.25
PLACE_BANDS = (("1-10", 10), ("11-50", 50), ("51-100", 100), ("101+", 10**9))
UNLIMITED_QUIZ = BASICS_QUIZ.replace(
    "attempts: {max: 3, cooldown_seconds: 0}", "attempts: {max: null, cooldown_seconds: 0}"
)


def _utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back naive; they were written in UTC (kept for a --database sqlite run)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def request(method: str, url: str, token: str, body: object | None = None) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    call = urllib.request.Request(url, data=data, method=method)
    call.add_header("Authorization", f"Bearer {token}")
    if data:
        call.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(call, timeout=120) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), dict(error.headers)


@dataclass
class HandIn:
    due: float  # seconds after the spike's start
    accepted_at: float | None = None  # wall clock (time.time())
    refusals: int = 0
    submission_id: str = ""
    eta_seconds: float | None = None
    eta_read_at: float | None = None  # wall clock of the GET that showed it
    position: int | None = None
    error: str = ""


def hand_in(base: str, token: str, url: str, spike_start: float, item: HandIn) -> None:
    pause = spike_start + item.due - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    while True:
        status, answer, headers = request(
            "POST", f"{base}/api/v1/submissions", token, {"assessment": SLUG, "git_url": url}
        )
        if status == 503:
            item.refusals += 1
            time.sleep(float(headers.get("Retry-After", "1")))
            continue
        break
    if status != 202:
        item.error = f"POST {status}: {str(answer)[:200]}"
        return
    item.accepted_at = time.time()
    item.submission_id = answer["id"]
    status, view, _ = request("GET", f"{base}{answer['status_url']}", token)
    item.eta_read_at = time.time()
    if status == 200:
        item.eta_seconds = view.get("eta_seconds")
        item.position = view.get("queue_position")


def quiz_client(base: str, tokens: list[str], rate: float, seconds: float) -> subprocess.Popen[str]:
    spec = {
        "kind": "quiz",
        "base": base,
        "tokens": tokens,
        "assessment": "basics",
        "answers": BASICS_ANSWERS,
        "rate": rate,
        "seconds": seconds,
        "mode": "queue",
        "threads": 64,
    }
    spec_path = Path(tempfile.mkstemp(prefix="quiz-spec-", suffix=".json")[1])
    spec_path.write_text(json.dumps(spec))
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._load_client"],
        stdin=spec_path.open(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    spec_path.unlink()  # the child holds it open
    return process


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--count", type=int, default=200, help="repository hand-ins in the spike")
    parser.add_argument("--window", type=float, default=10.0, help="seconds the hand-ins arrive within")
    parser.add_argument("--quiz-rate", type=float, default=20.0, help="quiz arrivals per second")
    parser.add_argument("--warmup", type=int, default=4, help="hand-ins graded before the spike")
    parser.add_argument(
        "--web-threads", type=int, default=0, help="gthread threads per web process (0: compose's)"
    )
    parser.add_argument(
        "--git-host-nice",
        type=int,
        default=0,
        help="nice value of the bench's git server, the learners' git host (0: as the service)",
    )
    parser.add_argument(
        "--quiz-warmup", type=float, default=5.0, help="seconds of quizzes at --quiz-rate before the spike"
    )
    parser.add_argument("--backend", choices=("bwrap", "docker"), default="bwrap")
    parser.add_argument("--quiz-learners", type=int, default=1000)
    parser.add_argument("--git-slots", type=int, default=Settings.intake_git_slots, help="per web process")
    parser.add_argument(
        "--sandbox-nice",
        type=int,
        default=0,
        help="nice value of the sandbox worker and its boxes (a host shared with the web tier)",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    files = {
        p.relative_to(SUBMISSION).as_posix(): p.read_text() for p in SUBMISSION.rglob("*") if p.is_file()
    }
    with tempfile.TemporaryDirectory(prefix="deadline-spike-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        database_url = stack.enter_context(postgres_database())
        redis = stack.enter_context(compose_redis(tmp / "redis"))
        git = stack.enter_context(GitServer(tmp / "git", nice=args.git_host_nice))
        catalog = tmp / "catalog"
        shutil.copytree(ROOT / "examples" / "catalog", catalog)
        write_catalog(catalog)
        (catalog / "assessments" / "basics.yaml").write_text(UNLIMITED_QUIZ)
        settings = Settings(
            data_dir=tmp / "var",
            database_url=database_url,
            broker_url=redis.url,
            secret_key="bench",
            catalog_path=catalog,
            git_allow_insecure_loopback=True,
            sandbox_backend=args.backend,
            submissions_per_hour=10**6,
            queue_admission_limit=10**6,
            intake_git_slots=args.git_slots,
        )
        engine = make_engine(settings)
        upgrade(engine)
        sessions = make_session_factory(engine)
        with session_scope(sessions) as session:
            load_catalog(session, read_catalog(catalog))
        repo_learners = args.count + args.warmup
        tokens = make_learners(sessions, repo_learners + args.quiz_learners, "test-program")
        with sessions() as session, session.begin():
            program_id = session.scalar(select(Program.id).where(Program.slug == REPO_PROGRAM))
            # The first accounts hand in repositories: they are enrolled in its program too.
            user_ids = list(session.scalars(select(User.id).order_by(User.id).limit(repo_learners)))
            if user_ids:
                enrolments = [{"user_id": u, "program_id": program_id} for u in user_ids]
                session.execute(insert(Enrollment), enrolments)
        repo_tokens, quiz_tokens = tokens[:repo_learners], tokens[repo_learners:]
        urls = []
        for n in range(repo_learners):
            git.commit(f"learner{n}", {**files, "AUTHOR.txt": f"learner {n}\n"})
            urls.append(git.url(f"learner{n}"))

        env = settings.to_env()
        gunicorn = Gunicorn(
            env=env, log_dir=tmp / "logs", **({"threads": args.web_threads} if args.web_threads else {})
        )
        sandbox_worker = CeleryWorker(
            env=env,
            log_path=tmp / "logs" / "sandbox-worker.log",
            concurrency=SANDBOX_SLOTS,
            queues="sandbox,checks",
            app="workers.main",
        )
        quiz_worker = CeleryWorker(
            env=env, log_path=tmp / "logs" / "quiz-worker.log", concurrency=2, queues="quiz,credentials"
        )
        for process in (gunicorn, sandbox_worker, quiz_worker):
            process.start()
            stack.callback(process.stop)
        if args.sandbox_nice and sandbox_worker.process is not None:
            # The worker's process group: its prefork children, and the boxes they start inherit it.
            os.setpriority(os.PRIO_PGRP, sandbox_worker.process.pid, args.sandbox_nice)
        base = gunicorn.base_url
        print(
            f"deadline spike: {args.count} repositories ({SLUG}, {args.backend}) within {args.window:g} s, "
            f"quizzes at {args.quiz_rate:g}/s; gunicorn {gunicorn.workers}x{gunicorn.threads} gthread, "
            f"{SANDBOX_SLOTS} sandbox slots, PostgreSQL, Redis; git slots per web process "
            f"{settings.intake_git_slots} (+{settings.intake_git_waiting} waiting); "
            f"sandbox worker nice {args.sandbox_nice}, git host nice {args.git_host_nice}"
        )

        # Warm-up: the queue's history for the ETA, warm boxes; graded two at a time as the slots are.
        warm = [HandIn(due=0.0) for _ in range(args.warmup)]
        with ThreadPoolExecutor(max_workers=SANDBOX_SLOTS) as pool:
            for n, item in enumerate(warm):
                pool.submit(hand_in, base, repo_tokens[args.count + n], urls[args.count + n], 0.0, item)
        wait_drained(sessions, timeout=600)
        if args.quiz_warmup:
            # Warm web processes, connection pools and caches, as a service is when a deadline comes.
            warming = quiz_client(base, quiz_tokens, args.quiz_rate, args.quiz_warmup)
            warming.communicate(timeout=600)
        print(f"warm-up: {args.warmup} hand-ins graded, quizzes for {args.quiz_warmup:g} s")

        rng = random.Random(20261203)
        spike = [HandIn(due=rng.uniform(0, args.window)) for _ in range(args.count)]
        quiz_seconds = args.window + 10.0
        spike_wall = time.time()
        spike_start = time.monotonic()
        quizzes = quiz_client(base, quiz_tokens, args.quiz_rate, quiz_seconds)
        with ThreadPoolExecutor(max_workers=64) as pool:
            for n, item in enumerate(spike):
                pool.submit(hand_in, base, repo_tokens[n], urls[n], spike_start, item)
        posted_seconds = time.monotonic() - spike_start
        quiz_out, quiz_err = quizzes.communicate(timeout=600)
        if quizzes.returncode != 0:
            print(f"quiz client failed:\n{quiz_err[-2000:]}")
            return 1
        quiz = json.loads(quiz_out)
        finished_at = wait_drained(sessions, timeout=3600)
        report(args, sessions, spike, spike_wall, posted_seconds, finished_at, quiz)
    return 0


def wait_drained(sessions: Any, timeout: float) -> float:
    """Wait until no repository run is queued or running; the wall clock of the last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions() as session:
            open_runs = session.scalar(
                select(func.count(GradingRun.id)).where(
                    GradingRun.queue == "sandbox",
                    GradingRun.status.in_((RunStatus.QUEUED, RunStatus.RUNNING)),
                )
            )
            last = session.scalar(
                select(func.max(GradingRun.finished_at)).where(GradingRun.queue == "sandbox")
            )
        if not open_runs:
            return _utc(last).timestamp() if last is not None else time.time()
        time.sleep(0.5)
    raise TimeoutError("the sandbox queue did not drain")


def report(
    args: argparse.Namespace,
    sessions: Any,
    spike: list[HandIn],
    spike_wall: float,
    posted_seconds: float,
    last_result: float,
    quiz: dict[str, Any],
) -> None:
    accepted = [item for item in spike if item.accepted_at is not None]
    errors = Counter(item.error.split(":")[0] for item in spike if item.error)
    ids = [item.submission_id for item in accepted]
    with sessions() as session:
        rows = session.execute(
            select(
                GradingRun.submission_id, GradingRun.status, GradingRun.started_at, GradingRun.finished_at
            ).where(GradingRun.submission_id.in_(ids))
        ).all()
    by_submission = {row.submission_id: row for row in rows}
    run_seconds = [
        (_utc(r.finished_at) - _utc(r.started_at)).total_seconds()
        for r in rows
        if r.started_at is not None and r.finished_at is not None
    ]
    statuses = Counter(str(r.status) for r in rows)
    arriving = [
        (_utc(r.finished_at) - _utc(r.started_at)).total_seconds()
        for r in rows
        if r.started_at is not None
        and r.finished_at is not None
        and _utc(r.started_at).timestamp() - spike_wall < posted_seconds
    ]
    drain = last_result - spike_wall
    ideal = sum(run_seconds) / SANDBOX_SLOTS
    ratio = drain / ideal if ideal else float("nan")
    last_accepted = max((item.accepted_at or 0.0) - spike_wall for item in accepted) if accepted else 0.0
    print(
        f"repository POSTs: {len(accepted)}/{len(spike)} accepted, the last {last_accepted:.1f} s after the "
        f"spike began; {sum(i.refusals for i in spike)} answers 503 first (retried after Retry-After), "
        f"{sum(1 for i in spike if i.refusals)} hand-ins refused at least once; "
        f"errors {dict(errors) or 'none'}"
    )
    mean_run = statistics.mean(run_seconds) if run_seconds else 0.0
    print(
        f"runs: {dict(statuses)}; mean run time {mean_run:.2f} s (claimed to finished); of the "
        f"{len(arriving)} started while hand-ins still arrived "
        f"{statistics.mean(arriving) if arriving else float('nan'):.2f} s"
    )
    print(
        f"drain: {drain:.1f} s from the spike's start to the last result; ideal {ideal:.1f} s "
        f"(sum of run times {sum(run_seconds):.1f} s / {SANDBOX_SLOTS} slots): {ratio:.2f}x "
        f"(target <= {TARGET_DRAIN_RATIO}x: {'met' if ratio <= TARGET_DRAIN_RATIO else 'NOT met'})"
    )
    latencies_ms = [1000 * s for s in quiz["latencies"]]
    p99 = percentile(latencies_ms, 0.99)
    print(
        f"quizzes during the spike: {quiz['arrivals']} arrivals at {args.quiz_rate:g}/s over "
        f"{quiz['offered_seconds']:g} s, {len(latencies_ms)} graded, errors {quiz['errors'] or 'none'}; "
        f"arrival to result p50 {percentile(latencies_ms, 0.5):.0f} ms, "
        f"p95 {percentile(latencies_ms, 0.95):.0f} ms, p99 {p99:.0f} ms "
        f"(target <= {TARGET_QUIZ_P99_MS:.0f} ms: "
        f"{'met' if p99 <= TARGET_QUIZ_P99_MS else 'NOT met'}); POST p99 "
        f"{1000 * percentile(quiz['post_latencies'], 0.99):.0f} ms"
    )
    slices: dict[int, list[tuple[float, float]]] = {}
    for due, posted, done in quiz["timeline"]:
        slices.setdefault(int(due // 5), []).append((1000 * posted, 1000 * done))
    print("  quizzes by 5 s of the spike, p50 / p99 of the POST's answer, then of the result:")
    for n, pairs in sorted(slices.items()):
        posts, results = [p for p, _ in pairs], [d for _, d in pairs]
        print(
            f"    {5 * n:>3}-{5 * n + 5} s: POST {percentile(posts, 0.5):.0f} / "
            f"{percentile(posts, 0.99):.0f} ms, result {percentile(results, 0.5):.0f} / "
            f"{percentile(results, 0.99):.0f} ms ({len(pairs)})"
        )
    errors_eta: list[float] = []
    shown_over_real: list[float] = []
    by_place: dict[str, list[float]] = {}
    over_by_place: dict[str, list[float]] = {}
    without_eta = 0
    for item in accepted:
        row = by_submission.get(item.submission_id)
        if row is None or row.finished_at is None or item.eta_read_at is None or item.position is None:
            continue  # not graded, or already being graded when the GET came (no place, no ETA)
        if item.eta_seconds is None:
            without_eta += 1
            continue
        real = _utc(row.finished_at).timestamp() - item.eta_read_at
        errors_eta.append(abs(item.eta_seconds - real) / max(real, 0.001))
        band = next(b for b, top in PLACE_BANDS if item.position <= top)
        by_place.setdefault(band, []).append(errors_eta[-1])
        shown_over_real.append(item.eta_seconds / max(real, 0.001))
        over_by_place.setdefault(band, []).append(shown_over_real[-1])
    within = sum(1 for e in errors_eta if e <= ETA_TOLERANCE)
    if errors_eta:
        print(
            f"ETA shown right after the POST against the real time to the result: {within}/{len(errors_eta)} "
            f"({100 * within / len(errors_eta):.0f} %) within {100 * ETA_TOLERANCE:.0f} %, median error "
            f"{100 * statistics.median(errors_eta):.0f} %, "
            f"p90 error {100 * percentile(errors_eta, 0.9):.0f} %, "
            f"median shown/real {statistics.median(shown_over_real):.2f}; "
            f"{without_eta} shown without an ETA (target: every ETA within 25 %: "
            f"{'met' if within == len(errors_eta) and not without_eta else 'NOT met'})"
        )
    for place, _ in PLACE_BANDS:
        errors_here = by_place.get(place, [])
        if not errors_here:
            continue
        inside = sum(1 for e in errors_here if e <= ETA_TOLERANCE)
        print(
            f"  ETA at places {place}: {inside}/{len(errors_here)} within 25 %, "
            f"median error {100 * statistics.median(errors_here):.0f} %, "
            f"median shown/real {statistics.median(over_by_place[place]):.2f}"
        )
    print(f"all {len(spike)} hand-ins were posted within {posted_seconds:.1f} s of the spike's start")


if __name__ == "__main__":
    sys.exit(main())
