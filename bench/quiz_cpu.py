"""CPU per quiz hand-in, by step, in one process: the app's own work without gunicorn, Celery or load.

Makes `--learners` learners with API tokens on a fresh PostgreSQL database (the bench's quiz with
unlimited attempts, as `bench/quiz_throughput.py` loads it), then for each learner: POST
/api/v1/submissions through Flask's test client, the worker's `process_run` for its run (queue mode), and
the status GET. Prints the median and mean CPU time (`time.process_time`) per step, leaving out the first
fifth (imports, caches, the pool's first connections). What the same steps cost under load, with the
servers around them, is `bench/quiz_throughput.py`'s "CPU per submission".

    .venv/bin/python bench/quiz_cpu.py [--mode queue|inline] [--learners 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._production import make_learners  # noqa: E402
from bench.quiz_throughput import UNLIMITED  # noqa: E402
from grader.catalog.loader import read_catalog  # noqa: E402
from grader.config import Settings  # noqa: E402
from grader.db import make_engine, make_session_factory, session_scope  # noqa: E402
from grader.interfaces import RecordingQueue  # noqa: E402
from grader.kinds import default_graders  # noqa: E402
from grader.migrate import upgrade  # noqa: E402
from grader.services.catalog import load_catalog  # noqa: E402
from grader.services.grading import process_run  # noqa: E402
from tests.support.catalogs import BASICS_ANSWERS, PROGRAM, TIMED_QUIZ, write_catalog  # noqa: E402
from tests.support.services import postgres_database  # noqa: E402


def measure(mode: str, learners: int, database_url: str, scratch: Path) -> dict[str, list[float]]:
    from grader.web import create_app

    settings = Settings(
        data_dir=scratch / "var",
        database_url=database_url,
        secret_key="bench",
        catalog_path=scratch / "catalog",
        submissions_per_hour=10**9,
        queue_admission_limit=10**9,
        quiz_grading=mode,
    )
    engine = make_engine(settings)
    upgrade(engine)
    sessions = make_session_factory(engine)
    files = {
        "assessments/basics.yaml": UNLIMITED,
        "assessments/timed.yaml": TIMED_QUIZ,
        "programs/test-program.yaml": PROGRAM,
    }
    with session_scope(sessions) as session:
        load_catalog(session, read_catalog(write_catalog(settings.catalog_path, files)))
    tokens = make_learners(sessions, learners, "test-program")
    queue = RecordingQueue()
    client = create_app(settings, queue=queue).test_client()
    graders = default_graders(settings)
    body = {"assessment": "basics", "answers": BASICS_ANSWERS}
    steps = ("POST /api/v1/submissions", "worker: grade_run", "GET status")
    spent: dict[str, list[float]] = {step: [] for step in steps}
    for token in tokens:
        headers = {"Authorization": f"Bearer {token}"}
        started = time.process_time()
        response = client.post("/api/v1/submissions", json=body, headers=headers)
        spent["POST /api/v1/submissions"].append(time.process_time() - started)
        assert response.status_code in (201, 202), response.get_json()
        submission_id = response.get_json()["id"]
        if mode == "queue":
            ((run_id, _queue),) = queue.sent
            queue.sent.clear()
            started = time.process_time()
            process_run(sessions, run_id, graders, worker="bench", lease_seconds=60)
            spent["worker: grade_run"].append(time.process_time() - started)
        started = time.process_time()
        response = client.get(f"/api/v1/submissions/{submission_id}", headers=headers)
        spent["GET status"].append(time.process_time() - started)
        assert response.get_json()["status"] == "graded", response.get_json()
    engine.dispose()
    return {step: values[len(values) // 5 :] for step, values in spent.items() if values}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mode", choices=["queue", "inline"], default="queue")
    parser.add_argument("--learners", type=int, default=300, help="one hand-in each")
    args = parser.parse_args()
    with postgres_database() as database_url, tempfile.TemporaryDirectory() as scratch:
        spent = measure(args.mode, args.learners, database_url, Path(scratch))
    print(f"CPU per quiz hand-in in one process ({args.mode} mode, PostgreSQL, {args.learners} learners)")
    for step, values in spent.items():
        print(
            f"  {step:<28} median {statistics.median(values) * 1000:5.2f} ms  "
            f"mean {statistics.mean(values) * 1000:5.2f} ms  ({len(values)} measured)"
        )


if __name__ == "__main__":
    main()
