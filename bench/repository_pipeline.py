"""Repository grading overhead: the whole pipeline against running the same tests directly.

In one run, for the sample `wsgi-todo-api` assignment (hidden tests take about two seconds):
  * bare: `pytest` on the host over the hidden tests and the passing sample submission;
  * pipeline: the learner's repository is served by a git server on loopback, submitted through the
    HTTP API, queued in a real Redis, cloned and graded by a real Celery worker in the sandbox, and
    scored by the rubric; measured from POST to result available, for each sandbox backend.

    .venv/bin/python bench/repository_pipeline.py [--runs 5] [--backends bwrap,docker]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
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
from tests.support.gitserver import GitServer  # noqa: E402
from tests.support.services import redis_server  # noqa: E402

CATALOG = ROOT / "examples" / "catalog"
ASSESSMENT = CATALOG / "assessments" / "wsgi-todo-api"
SUBMISSION = ROOT / "examples" / "submissions" / "wsgi-todo-api-passing"


def bare_run(scratch: Path) -> float:
    work = scratch / "bare"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ASSESSMENT / "tests", work / "tests")
    shutil.copytree(SUBMISSION, work / "submission")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(work / "submission")},
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stdout[-2000:]
    return elapsed


def pipeline_runs(backend: str, runs: int, scratch: Path) -> list[float]:
    files = {
        p.relative_to(SUBMISSION).as_posix(): p.read_text() for p in SUBMISSION.rglob("*") if p.is_file()
    }
    with redis_server(scratch / f"redis-{backend}") as redis, GitServer(scratch / f"git-{backend}") as git:
        settings = Settings(
            data_dir=scratch / f"var-{backend}",
            broker_url=redis.url,
            secret_key="bench",
            git_allow_insecure_loopback=True,
            sandbox_backend=backend,
            submissions_per_hour=10**6,
        )
        engine = make_engine(settings)
        upgrade(engine)
        tokens = []
        with session_scope(make_session_factory(engine)) as session:
            load_catalog(session, read_catalog(CATALOG))
            # One learner per run: the assignment's own rate limit (4 an hour) applies per learner.
            for run in range(runs + 1):
                user = accounts.create_user(
                    session, email=f"bench{run}@example.org", name="Bench", password="bench-password"
                )
                accounts.enroll(session, user.id, "python-web-developer")
                tokens.append(accounts.create_token(session, user.id).secret)
        samples = []
        with serve(settings, scratch / f"worker-{backend}.log") as base:
            for run, token in enumerate(tokens):  # the first run warms the worker (imports, sandbox probe)
                git.commit("todo", {**files, "RUN.txt": f"{run}\n"})
                started = time.perf_counter()
                _, accepted = call(
                    "POST",
                    f"{base}/api/v1/submissions",
                    token,
                    {"assessment": "wsgi-todo-api", "git_url": git.url("todo")},
                )
                while True:
                    _, view = call("GET", base + accepted["status_url"], token)
                    if view["result"] is not None:
                        break
                    if view["status"] == "error":
                        raise RuntimeError(f"grading failed; see {scratch}/worker-{backend}.log")
                    time.sleep(0.02)
                elapsed = time.perf_counter() - started
                assert all(t["passed"] for t in view["result"]["feedback"]["tests"]), view
                if run:
                    samples.append(elapsed)
                time.sleep(1.0)  # idle time between submissions, as on a real grading host
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="bwrap,docker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="repo-bench-") as tmp:
        scratch = Path(tmp)
        bare = statistics.median(bare_run(scratch) for _ in range(args.runs))
        print(f"repository pipeline: wsgi-todo-api (22 hidden tests + 1 io case), median of {args.runs} runs")
        print(f"  {'bare pytest on the host':<28} {bare:7.2f} s")
        for backend in args.backends.split(","):
            samples = pipeline_runs(backend, args.runs, scratch)
            median = statistics.median(samples)
            print(
                f"  {'pipeline, ' + backend:<28} {median:7.2f} s  ratio {median / bare:4.2f}x  "
                f"(min {min(samples):.2f}, max {max(samples):.2f})"
            )


if __name__ == "__main__":
    main()
