"""Quiz throughput: N submissions through the HTTP API to a real Redis broker and Celery workers.

Starts a private redis-server, the web app (threaded WSGI server) and real `celery worker` processes,
then sends N quiz submissions from C concurrent clients and prints submissions per second and the
p50/p99 time from POST to result available (each client polls its status URL every 20 ms).

    .venv/bin/python bench/quiz_throughput.py [-n 300] [-c 8] [--workers 2] [--postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from bench._stack import call, serve  # noqa: E402
from grader.catalog.loader import read_catalog  # noqa: E402
from grader.config import Settings  # noqa: E402
from grader.db import make_engine, make_session_factory, session_scope  # noqa: E402
from grader.migrate import upgrade  # noqa: E402
from grader.services import accounts  # noqa: E402
from grader.services.catalog import load_catalog  # noqa: E402
from tests.support.catalogs import BASICS_ANSWERS, BASICS_QUIZ, PROGRAM, TIMED_QUIZ, write_catalog  # noqa: E402
from tests.support.services import postgres_database, redis_server  # noqa: E402

POLL_SECONDS = 0.02
UNLIMITED = BASICS_QUIZ.replace("attempts: {max: 3, cooldown_seconds: 0}", "attempts: {max: null}")


def one_submission(base: str, token: str) -> float:
    started = time.perf_counter()
    status, accepted = call(
        "POST", f"{base}/api/v1/submissions", token, {"assessment": "basics", "answers": BASICS_ANSWERS}
    )
    assert status == 202, accepted
    while True:
        _, view = call("GET", base + accepted["status_url"], token)
        if view["result"] is not None:
            assert view["result"]["passed"], view
            return time.perf_counter() - started
        time.sleep(POLL_SECONDS)


def run(n: int, concurrency: int, workers: int, database_url: str, tmp: Path) -> None:
    with redis_server(tmp / "redis") as redis:
        settings = Settings(
            data_dir=tmp / "var",
            database_url=database_url,
            broker_url=redis.url,
            secret_key="bench",
            submissions_per_hour=10**9,
            queue_admission_limit=10**9,
        )
        catalog = write_catalog(
            tmp / "catalog",
            {
                "assessments/basics.yaml": UNLIMITED,
                "assessments/timed.yaml": TIMED_QUIZ,
                "programs/test-program.yaml": PROGRAM,
            },
        )
        engine = make_engine(settings)
        upgrade(engine)
        factory = make_session_factory(engine)
        with session_scope(factory) as session:
            load_catalog(session, read_catalog(catalog))
            user = accounts.create_user(
                session, email="bench@example.org", name="Bench", password="bench-password"
            )
            accounts.enroll(session, user.id, "test-program")
            token = accounts.create_token(session, user.id).secret
        with serve(settings, tmp / "worker.log", concurrency=workers) as base:
            one_submission(base, token)  # warm-up: imports, connections
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                latencies = sorted(pool.map(lambda _: one_submission(base, token), range(n)))
            elapsed = time.perf_counter() - started
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    backend = "postgresql" if database_url else "sqlite"
    print(
        f"quiz throughput: {n} submissions, {concurrency} clients, "
        f"{workers} worker processes, {backend}, redis broker"
    )
    print(f"  submissions/s        {n / elapsed:8.1f}")
    print(f"  POST→result p50      {p50 * 1000:8.1f} ms")
    print(f"  POST→result p99      {p99 * 1000:8.1f} ms")
    print(f"  POST→result max      {latencies[-1] * 1000:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="submissions to send")
    parser.add_argument("-c", type=int, default=8, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="worker pool processes")
    parser.add_argument(
        "--postgres", action="store_true", help="use a fresh PostgreSQL database (default SQLite)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quiz-bench-") as tmp:
        if args.postgres:
            with postgres_database() as url:
                run(args.n, args.c, args.workers, url, Path(tmp))
        else:
            run(args.n, args.c, args.workers, "", Path(tmp))


if __name__ == "__main__":
    main()
