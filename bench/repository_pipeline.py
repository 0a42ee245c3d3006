"""Repository grading overhead: the whole pipeline against the physical limit, with the naive peers.

In one run, for the sample `wsgi-todo-api` assignment (hidden tests take about two seconds), each
of these N times, interleaved (the order rotates every round, so no way always goes first):
  * chroot (the baseline, the physical limit): the hidden tests over the passing sample submission,
    run by the grading image's own interpreter in a plain chroot of the grading root filesystem;
  * naive bwrap / naive docker: the same tests in a fresh bubblewrap box / a fresh `docker run --rm`
    per run, with our backends' isolation and limits but no service around them (bench/_chroot.py);
  * pipeline, per backend: the learner's repository is served by a git server on loopback, submitted
    through the HTTP API, queued in a real Redis, cloned and graded by a real Celery worker in the
    sandbox (the hidden tests with their canaries, then the io case), and scored by the rubric;
    measured from POST to the result available to a long-polling client.
Medians, and each as a ratio of the chroot median; targets: pipeline <= 1.05x (bwrap), <= 1.10x
(Docker). Then where the pipeline's time goes, from the client's clock and each run's grading_runs timestamps:
POST to its 202 (intake, the commit resolved with git, enqueue), 202 to claimed (Redis, Celery),
claimed to finished (clone, the sandbox jobs, rubric, result write), finished to the client seeing it;
and the worker's grading of the last run done again in this process with each step timed (the clone,
each sandbox job as the runner and as the box saw it, evidence, rubric), counting the canaries that
copy the suite's one slow test: such a canary runs its 1.5 s fixture again, so a run's grading time
depends on which tests that run's canaries copied (about 0.4 of them per run on average).

    .venv/bin/python bench/repository_pipeline.py [--runs 5] [--backends bwrap,docker]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from sqlalchemy import select  # noqa: E402

from bench._chroot import NaiveBwrap, NaiveDocker, SuiteFiles, chroot_run, grading_root  # noqa: E402
from bench._stack import call, serve  # noqa: E402
from grader.catalog.loader import read_catalog  # noqa: E402
from grader.catalog.schema import RepositoryAssessment  # noqa: E402
from grader.config import Settings  # noqa: E402
from grader.db import make_engine, make_session_factory, session_scope  # noqa: E402
from grader.harness.canaries import PlantedSuite  # noqa: E402
from grader.kinds.repository import RepositoryGrader  # noqa: E402
from grader.migrate import upgrade  # noqa: E402
from grader.models import GradingRun  # noqa: E402
from grader.services import accounts  # noqa: E402
from grader.services.catalog import load_catalog  # noqa: E402
from grader.services.grading import load_job  # noqa: E402
from grader.suites import pytest_suite  # noqa: E402
from grader.suites.common import box_limits  # noqa: E402
from sandbox.contract import JobSpec, Runner, RunResult, Serve  # noqa: E402
from tests.support.gitserver import GitServer  # noqa: E402
from tests.support.services import redis_server  # noqa: E402

CATALOG = ROOT / "examples" / "catalog"
SLUG = "wsgi-todo-api"
ASSESSMENT = CATALOG / "assessments" / SLUG
SUBMISSION = ROOT / "examples" / "submissions" / "wsgi-todo-api-passing"
TARGETS = {"bwrap": 1.05, "docker": 1.10}
# The fixture of the suite's one slow test (it sleeps 1.5 s): a canary copied from that test sleeps too.
SLOW_FIXTURE = "seeded_app"
CANARY_LABEL = "canaries copying the 1.5 s test"
IDLE_SECONDS = 1.0  # between measurements, as on a real grading host (a warm box refills meanwhile)
PHASES = (
    ("POST to 202", "intake: auth, commit resolved with git, one commit, enqueue"),
    ("202 to claimed", "Redis, Celery delivery, the claim"),
    ("claimed to finished", "clone, sandbox jobs, rubric, result written"),
    ("finished to client", "the long poll answering"),
)


@dataclass
class PipelineSample:
    elapsed: float
    phases: tuple[float, ...]  # seconds per PHASES entry


@dataclass
class Samples:
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def _utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back naive; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Pipeline:
    """The service on one sandbox backend: git server, Redis, the web app and a Celery worker."""

    def __init__(self, backend: str, runs: int, scratch: Path, stack: contextlib.ExitStack) -> None:
        self.backend = backend
        self.log = scratch / f"worker-{backend}.log"
        self.files = {
            p.relative_to(SUBMISSION).as_posix(): p.read_text() for p in SUBMISSION.rglob("*") if p.is_file()
        }
        redis = stack.enter_context(redis_server(scratch / f"redis-{backend}"))
        self.git = stack.enter_context(GitServer(scratch / f"git-{backend}"))
        settings = Settings(
            data_dir=scratch / f"var-{backend}",
            broker_url=redis.url,
            secret_key="bench",
            git_allow_insecure_loopback=True,
            sandbox_backend=backend,
            submissions_per_hour=10**6,
        )
        self.settings = settings
        self.run_ids: list[str] = []
        engine = make_engine(settings)
        upgrade(engine)
        self.sessions = make_session_factory(engine)
        self.tokens: list[str] = []
        with session_scope(self.sessions) as session:
            load_catalog(session, read_catalog(CATALOG))
            # One learner per run: the assignment's own rate limit (4 an hour) applies per learner.
            for run in range(runs + 1):
                user = accounts.create_user(
                    session, email=f"bench{run}@example.org", name="Bench", password="bench-password"
                )
                accounts.enroll(session, user.id, "python-web-developer")
                self.tokens.append(accounts.create_token(session, user.id).secret)
        self.base = stack.enter_context(serve(settings, self.log))

    def submit(self, run: int) -> PipelineSample:
        token = self.tokens[run]
        self.git.commit("todo", {**self.files, "RUN.txt": f"{run}\n"})
        posted_at = datetime.now(UTC)
        started = time.perf_counter()
        _, accepted = call(
            "POST",
            f"{self.base}/api/v1/submissions",
            token,
            {"assessment": SLUG, "git_url": self.git.url("todo")},
        )
        accepted_at = datetime.now(UTC)
        while True:
            _, view = call("GET", f"{self.base}{accepted['status_url']}?wait=30", token)
            if view["result"] is not None:
                break
            if view["status"] == "error":
                raise RuntimeError(f"grading failed; see {self.log}")
        elapsed = time.perf_counter() - started
        seen_at = datetime.now(UTC)
        assert all(t["passed"] for t in view["result"]["feedback"]["tests"]), view
        with session_scope(self.sessions) as session:
            row = session.execute(
                select(GradingRun.id, GradingRun.started_at, GradingRun.finished_at).where(
                    GradingRun.submission_id == accepted["id"]
                )
            ).one()
        self.run_ids.append(row.id)
        marks = [posted_at, accepted_at, _utc(row.started_at), _utc(row.finished_at), seen_at]
        phases = tuple((later - earlier).total_seconds() for earlier, later in itertools.pairwise(marks))
        return PipelineSample(elapsed, phases)


class TimedRunner:
    """The worker's runner, timed per job: how long `run` took here and what the box reported."""

    def __init__(self, inner: Runner, spent: dict[str, float]) -> None:
        self.inner = inner
        self.name = inner.name
        self.spent = spent

    def run(self, spec: JobSpec, *, serve: Serve | None = None) -> RunResult:
        started = time.perf_counter()
        result = self.inner.run(spec, serve=serve)
        job = "pytest box" if any("pytest_runner" in part for part in spec.command) else "io box"
        for label, seconds in (
            (f"{job}: runner.run", time.perf_counter() - started),
            (f"{job}: box's own wall", result.wall_seconds),
        ):
            self.spent[label] = self.spent.get(label, 0.0) + seconds
        return result


@contextlib.contextmanager
def counted_canaries(spent: dict[str, float]) -> Iterator[None]:
    """Counts into `spent` the canaries of each run that copy the suite's 1.5 s test."""
    original = pytest_suite.plant_canaries

    def wrapper(*args: Any, **kwargs: Any) -> PlantedSuite:
        planted = original(*args, **kwargs)
        spent[CANARY_LABEL] = spent.get(CANARY_LABEL, 0.0) + slow_canaries(planted)
        return planted

    pytest_suite.plant_canaries = wrapper  # type: ignore[assignment]
    try:
        yield
    finally:
        pytest_suite.plant_canaries = original  # type: ignore[assignment]


@contextlib.contextmanager
def timed(module: Any, name: str, label: str, spent: dict[str, float]) -> Iterator[None]:
    """`module.name` timed into `spent[label]` while inside (this process only)."""
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - started

    setattr(module, name, wrapper)
    try:
        yield
    finally:
        setattr(module, name, original)


def slow_canaries(planted: PlantedSuite) -> int:
    """How many of a run's canaries copy a test that takes SLOW_FIXTURE (and so sleep 1.5 s too)."""
    count = 0
    for module, function in planted.canaries:
        for node in ast.parse(planted.modules[module]).body:
            if isinstance(node, ast.FunctionDef) and node.name == function:
                count += any(argument.arg == SLOW_FIXTURE for argument in node.args.args)
    return count


def grading_breakdown(pipeline: Pipeline, runs: int) -> dict[str, list[float]]:
    """The worker's grading of the last measured run done again in this process, `runs` times, with
    its steps timed: the clone, each sandbox job, evidence capture and the rubric."""
    import grader.kinds.repository as repository_kind

    with session_scope(pipeline.sessions) as session:
        job = load_job(session, pipeline.run_ids[-1])
    repository_grader = RepositoryGrader(pipeline.settings)
    inner = repository_grader.runner
    figures: dict[str, list[float]] = {}
    for round_ in range(runs + 1):
        spent: dict[str, float] = {}
        repository_grader._runner = TimedRunner(inner, spent)
        with (
            timed(repository_kind, "materialise", "clone (materialise)", spent),
            timed(repository_kind, "capture_tree", "evidence capture", spent),
            timed(repository_kind, "score", "rubric (score)", spent),
            counted_canaries(spent),
        ):
            started = time.perf_counter()
            repository_grader.grade(job)
            spent["grade() in all"] = time.perf_counter() - started
        if round_:  # the first warms the runner (probe, warm pool)
            for label, seconds in spent.items():
                figures.setdefault(label, []).append(seconds)
        time.sleep(IDLE_SECONDS)
    return figures


def measure(args: argparse.Namespace, scratch: Path) -> None:
    definition = read_catalog(CATALOG).assessments[SLUG].definition
    assert isinstance(definition, RepositoryAssessment)
    limits = box_limits(definition.limits)
    suite = SuiteFiles.from_folders(ASSESSMENT / "tests", SUBMISSION)
    backends = [b for b in args.backends.split(",") if b]
    root = grading_root(scratch)
    ways: dict[str, Callable[[], float]] = {"chroot": lambda: chroot_run(root, suite)}
    if "bwrap" in backends:
        ways["naive bwrap box"] = partial(NaiveBwrap(limits, scratch).run, suite)
    if "docker" in backends:
        ways["naive docker run"] = partial(NaiveDocker(limits, scratch).run, suite)
    with contextlib.ExitStack() as stack:
        pipelines = {backend: Pipeline(backend, args.runs, scratch, stack) for backend in backends}
        results: dict[str, Samples] = {name: Samples() for name in ways}
        pipeline_samples: dict[str, list[PipelineSample]] = {backend: [] for backend in backends}
        steps: list[tuple[str, Callable[[int], None]]] = []
        for name, way in ways.items():
            steps.append((name, lambda run, name=name, way=way: results[name].times.append(way())))
        for backend, pipeline in pipelines.items():
            steps.append(
                (
                    f"pipeline, {backend}",
                    lambda run, p=pipeline: pipeline_samples[p.backend].append(p.submit(run)),
                )
            )
        # Round 0 warms everything (the worker's imports and sandbox probe, page cache, the image)
        # and is not counted.
        for round_ in range(args.runs + 1):
            shift = round_ % len(steps)
            for _, step in steps[shift:] + steps[:shift]:
                step(round_)
                time.sleep(IDLE_SECONDS)
            if round_ == 0:
                for samples in results.values():
                    samples.times.clear()
                for kept in pipeline_samples.values():
                    kept.clear()
        breakdowns = {backend: grading_breakdown(p, args.runs) for backend, p in pipelines.items()}
    report(args.runs, results, pipeline_samples)
    for backend, figures in breakdowns.items():
        print(f"  the worker's grading step by step ({backend}, again in-process, medians of {args.runs}):")
        for label, values in figures.items():
            if label == CANARY_LABEL:
                print(f"    {label:<30} {sum(values):8.0f} in {args.runs} runs")
            else:
                low, high = min(values) * 1000, max(values) * 1000
                median = statistics.median(values) * 1000
                print(f"    {label:<30} {median:8.0f} ms  ({low:.0f}-{high:.0f})")


def report(runs: int, results: dict[str, Samples], pipelines: dict[str, list[PipelineSample]]) -> None:
    baseline = results["chroot"].median
    print(f"repository pipeline: {SLUG} (22 hidden tests + 1 io case), medians of {runs} interleaved runs")
    print(f"  {'way':<30} {'median':>8} {'ratio':>7}  {'min':>6} {'max':>6}  target")

    def line(name: str, times: list[float], target: float | None) -> None:
        median = statistics.median(times)
        ratio = median / baseline
        verdict = "" if target is None else f"<= {target:.2f}x " + ("met" if ratio <= target else "NOT met")
        print(f"  {name:<30} {median:7.2f}s {ratio:6.2f}x  {min(times):6.2f} {max(times):6.2f}  {verdict}")

    for name, samples in results.items():
        line(name if name != "chroot" else "chroot (baseline)", samples.times, None)
    for backend, samples in pipelines.items():
        line(f"pipeline, {backend}", [s.elapsed for s in samples], TARGETS.get(backend))
    for backend, samples in pipelines.items():
        print(f"  where the pipeline's time goes ({backend}, medians; grading_runs timestamps):")
        for index, (phase, what) in enumerate(PHASES):
            median = statistics.median(s.phases[index] for s in samples)
            print(f"    {phase:<24} {median * 1000:8.0f} ms  ({what})")
        each = ", ".join(f"{s.phases[2]:.2f}" for s in samples)
        print(f"    {'claimed to finished, each':<24} {each} s")
        over = statistics.median(s.phases[2] for s in samples) - baseline
        print(f"    {'grading over chroot':<24} {over * 1000:8.0f} ms  (claimed to finished less the chroot)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="bwrap,docker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="repo-bench-") as tmp:
        measure(args, Path(tmp))


if __name__ == "__main__":
    main()
