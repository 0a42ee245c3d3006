"""SQL statements and commits per quiz submission, by step, in one process: the quick loop of the hot path.

Hands in the bench's quiz through the real app (Flask's test client, no server), grades its run as a
worker does (`process_run`), and reads the result as the learner's page does, counting every statement
SQLAlchemy sends. The learner has a history (earlier graded attempts), as at a deadline. Prints the
counts per step for queue and inline mode; `--sql` lists the statements.

    .venv/bin/python bench/quiz_statements.py [--postgres URL] [--history 3] [--sql]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from grader.catalog.loader import read_catalog  # noqa: E402
from grader.config import Settings  # noqa: E402
from grader.db import make_engine, make_session_factory, session_scope  # noqa: E402
from grader.interfaces import RecordingQueue  # noqa: E402
from grader.kinds import default_graders  # noqa: E402
from grader.migrate import upgrade  # noqa: E402
from grader.services import accounts  # noqa: E402
from grader.services.catalog import load_catalog  # noqa: E402
from grader.services.grading import process_run  # noqa: E402
from tests.support.catalogs import BASICS_ANSWERS, write_catalog  # noqa: E402
from tests.support.services import postgres_database  # noqa: E402
from tests.support.statements import StatementLog  # noqa: E402

TARGETS = {"queue": 12, "inline": 6}


def measure(mode: str, database_url: str, history: int) -> dict[str, tuple[int, int, list[str]]]:
    from grader.web import create_app

    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(
            data_dir=Path(scratch) / "var",
            database_url=database_url,
            secret_key="bench",
            catalog_path=Path(scratch) / "catalog",
            submissions_per_hour=1000,
            quiz_grading=mode,
        )
        engine = make_engine(settings)
        upgrade(engine)
        sessions = make_session_factory(engine)
        with session_scope(sessions) as session:
            load_catalog(session, read_catalog(write_catalog(settings.catalog_path)))
            user = accounts.create_user(
                session, email=f"{mode}@example.org", name="Ada", password="correct horse battery"
            )
            accounts.enroll(session, user.id, "test-program")
            token = accounts.create_token(session, user.id).secret
        queue = RecordingQueue()
        app = create_app(settings, queue=queue)
        client = app.test_client()
        graders = default_graders(settings)
        headers = {"Authorization": f"Bearer {token}"}
        body = {"assessment": "basics", "answers": BASICS_ANSWERS}

        def hand_in_and_grade() -> tuple[str, Any]:
            response = client.post("/api/v1/submissions", json=body, headers=headers)
            assert response.status_code in (201, 202), response.get_json()
            submission_id = response.get_json()["id"]
            return submission_id, response

        for _ in range(history):  # earlier attempts: the learner's history the award update reads
            hand_in_and_grade()
            for run_id, _queue in queue.sent:
                process_run(sessions, run_id, graders, worker="bench", lease_seconds=60)
            queue.sent.clear()

        log = StatementLog()
        log.attach()
        report: dict[str, tuple[int, int, list[str]]] = {}
        with log.step("POST /api/v1/submissions", report):
            submission_id, _ = hand_in_and_grade()
        if mode == "queue":
            (run_id, _queue), *_ = queue.sent
            with log.step("worker: grade_run", report):
                process_run(sessions, run_id, graders, worker="bench", lease_seconds=60)
        with log.step("GET /api/v1/submissions/<id>", report):
            response = client.get(f"/api/v1/submissions/{submission_id}", headers=headers)
            assert response.get_json()["status"] == "graded", response.get_json()
        log.detach()
        engine.dispose()
        return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres", action="store_true", help="on a fresh PostgreSQL database (else SQLite)"
    )
    parser.add_argument(
        "--history", type=int, default=2, help="graded attempts before the measured one (the quiz allows 3)"
    )
    parser.add_argument("--sql", action="store_true", help="list the statements")
    args = parser.parse_args()
    with postgres_database() if args.postgres else nullcontext("") as database_url:
        report_all(database_url, args)


def report_all(database_url: str, args: argparse.Namespace) -> None:
    print(
        f"SQL statements per quiz submission ({'PostgreSQL' if args.postgres else 'SQLite'}, "
        f"{args.history} earlier attempts)"
    )
    for mode in ("queue", "inline"):
        report = measure(mode, database_url, args.history)
        hand_in = sum(n for name, (n, _, _) in report.items() if not name.startswith("GET"))
        commits = sum(c for name, (_, c, _) in report.items() if not name.startswith("GET"))
        print(
            f"\n{mode}: {hand_in} statements, {commits} commits from hand-in to result "
            f"(target ≤ {TARGETS[mode]}); the result's GET is counted apart"
        )
        for name, (count, commits, statements) in report.items():
            print(f"  {count:3d} statements {commits} commits  {name}")
            if args.sql:
                for statement in statements:
                    print(f"        {statement[:160]}")


if __name__ == "__main__":
    main()
