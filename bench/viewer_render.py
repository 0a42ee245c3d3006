"""Submission viewer render time: the reviewer's task page for a repository of 50 files, 5,000 lines.

A learner hands in two attempts of a generated repository (50 Python and text files, 5,000 lines, plus
a binary and a 680 KB data file over the display limit) as archives through the API; both are graded
(fixed test results with the real rubric, the files kept as the evidence bundle) and wait for review.
A reviewer claims both tasks, then the task page is requested repeatedly, per scenario:

  * default file: attempt 1's page as it opens (file tree, the first file highlighted, tests, rubric);
  * largest file: attempt 1's page showing its largest file (600 lines);
  * over the limit: attempt 1's page on the 680 KB file (listed with its size, not rendered);
  * diff: attempt 2's page, which adds the diff to attempt 1 (9 files changed, added or removed).

Two ways in: the Flask test client in this process, and the real app under gunicorn (one sync worker)
on loopback with an HTTP client. Cold is the first request of a scenario with every cache empty: in
process, a fresh app (templates not compiled) with the viewer's caches cleared; over HTTP, a freshly
started gunicorn (imports, templates, database connections and caches all start empty). In both the
reviewer logs in first, which renders the login page. Warm is every request after one warm-up; "every
file once" opens each file's page in turn in a warm app whose viewer caches were emptied (a reviewer
reading the submission). Prints p50/p95/max per scenario (and, in process, the median CPU time and the
SQL statements of one warm request; over HTTP, the gunicorn worker's mean CPU time per request, which
other load on the host hardly moves); `--profile SCENARIO` prints where warm requests spend their time.

    .venv/bin/python bench/viewer_render.py [--requests 100] [--cold 5] [--postgres] [--no-http]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from sqlalchemy import event, select  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from grader.catalog.loader import read_catalog  # noqa: E402
from grader.config import Settings  # noqa: E402
from grader.db import make_engine, make_session_factory, session_scope  # noqa: E402
from grader.interfaces import RecordingQueue  # noqa: E402
from grader.kinds.base import Grade, GradingJob, KindGrader  # noqa: E402
from grader.kinds.quiz import QuizGrader  # noqa: E402
from grader.migrate import upgrade  # noqa: E402
from grader.models import ReviewTask, StaffRole, User  # noqa: E402
from grader.services import (  # noqa: E402
    access,
    accounts,
    review_queue,
    viewer,
)
from grader.services.catalog import load_catalog  # noqa: E402
from grader.services.evidence import capture_tree  # noqa: E402
from grader.services.grading import process_run  # noqa: E402
from grader.services.repository import (  # noqa: E402
    RepositoryReport,
    TestOutcome,
    report_feedback,
    rubric_feedback,
    score,
)
from grader.services.workspace import materialise  # noqa: E402
from grader.storage import file_store  # noqa: E402
from grader.web import code, create_app  # noqa: E402
from tests.support.reviewed import write_repository_catalog  # noqa: E402
from tests.support.services import free_port, postgres_database  # noqa: E402

REVIEWER = "rui.reviewer@example.org"
PASSWORD = "bench-password-long"
LARGEST = "src/todo/models.py"
OVER_LIMIT = "data/events.csv"
TEXT_FILES = 50
TEXT_LINES = 5000


# ---------------------------------------------------------------- the learner's repository


def _python(name: str, count: int, rng: random.Random) -> list[str]:
    lines = [
        f'"""{name}: the {name.rsplit("/", 1)[-1][:-3]} part of the to-do service."""',
        "",
        "from __future__ import annotations",
        "",
        "import json",
        "from dataclasses import dataclass, field",
        "",
    ]
    block = 0
    while len(lines) < count:
        weight = rng.randint(2, 97)
        lines += [
            "",
            "@dataclass",
            f"class Record{block}:",
            f'    """One stored record of kind {block}, with its tags."""',
            "",
            "    title: str",
            f"    weight: int = {weight}",
            "    tags: list[str] = field(default_factory=list)",
            "",
            "    def score(self, factor: float = 1.5) -> float:",
            "        # Titles count for a little, so equal weights still sort apart.",
            "        return self.weight * factor + len(self.title) / 100",
            "",
            "",
            f"def load_{block}(path: str) -> list[Record{block}]:",
            f'    """Records of kind {block} from a JSON file (a list of objects)."""',
            '    with open(path, encoding="utf-8") as handle:',
            f"        rows = [row for row in json.load(handle) if row.get('weight', 0) > {weight}]",
            f"        return [Record{block}(**row) for row in rows]",
        ]
        block += 1
    return lines[:count]


def _prose(name: str, count: int) -> list[str]:
    lines = [f"# {name}", ""]
    while len(lines) < count:
        n = len(lines)
        lines += [
            f"## Part {n}",
            "",
            f"The service keeps to-do items in a store; part {n} says how `load_{n}` reads them and why",
            "a record's weight decides the order (see `models.py`).",
            "",
            f"- step {n}: read the file",
            f"- step {n + 1}: keep the records above their weight",
            "",
        ]
    return lines[:count]


def _data(name: str, count: int) -> list[str]:
    if name.endswith(".json"):
        body = [
            f'  {{"title": "item {i}", "weight": {i % 90}, "tags": ["a", "b"]}},' for i in range(count - 2)
        ]
        return ["[", *body, '  {"title": "last", "weight": 1, "tags": []}', "]"][:count]
    return [f"option_{i} = {i * 7 % 13}" for i in range(count)]


def text_files() -> dict[str, list[str]]:
    """Attempt 1: 50 text files of 5,000 lines in all, each a list of lines."""
    rng = random.Random(20261201)
    fixed = {
        "README.md": 80,
        "pyproject.toml": 40,
        "requirements.txt": 10,
        ".gitignore": 12,
        "docs/design.md": 120,
        "docs/api.md": 90,
        "docs/changelog.md": 60,
        "config/settings.ini": 30,
        "config/logging.json": 45,
        "data/fixtures.json": 150,
        LARGEST: 600,
    }
    modules = [f"src/todo/{name}.py" for name in ("__init__", "api", "store", "views", "forms", "auth")]
    modules += [f"src/todo/part_{i:02d}.py" for i in range(18)]
    modules += [f"tests/test_part_{i:02d}.py" for i in range(14)] + ["scripts/old_migrate.py"]
    left = TEXT_LINES - sum(fixed.values())
    sizes = [rng.randint(60, 130) for _ in modules[:-1]]
    sizes.append(left - sum(sizes))
    assert sizes[-1] > 10, sizes
    files: dict[str, list[str]] = {}
    for path, count in [*fixed.items(), *zip(modules, sizes, strict=True)]:
        if path.endswith(".py"):
            files[path] = _python(path, count, rng)
        elif path.endswith((".md", ".txt", ".gitignore")):
            files[path] = _prose(path, count)
        else:
            files[path] = _data(path, count)
    assert len(files) == TEXT_FILES and sum(map(len, files.values())) == TEXT_LINES
    return files


def second_attempt(first: dict[str, list[str]]) -> dict[str, list[str]]:
    """Attempt 2: 7 files edited in places (the largest among them), one removed, one added."""
    rng = random.Random(7)
    files = {path: list(lines) for path, lines in first.items()}
    edited = [LARGEST, "src/todo/api.py", "src/todo/store.py", "README.md"]
    edited += ["src/todo/part_03.py", "tests/test_part_02.py", "tests/test_part_05.py"]
    for path in edited:
        lines = files[path]
        for _ in range(max(3, len(lines) // 25)):
            at = rng.randrange(len(lines))
            lines[at] = lines[at] + "  # reviewed: kept for the weight ordering"
    removed = files.pop("scripts/old_migrate.py")
    files["src/todo/cache.py"] = _python("src/todo/cache.py", len(removed), rng)
    return files


def archive(files: dict[str, list[str]]) -> bytes:
    rng = random.Random(3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path, lines in files.items():
            bundle.writestr(path, "\n".join(lines) + "\n")
        # A binary (NUL bytes: listed with its size, never rendered) and a text file over the
        # viewer's 512 KB display limit (kept, offered as a download).
        bundle.writestr("assets/logo.png", b"\x89PNG\r\n\x1a\n\x00\x00" + rng.randbytes(40_000))
        rows = [f"{i},2026-12-{1 + i % 28:02d},item {i},{i % 90},open" for i in range(20_000)]
        bundle.writestr(OVER_LIMIT, "id,day,title,weight,status\n" + "\n".join(rows) + "\n")
    return buffer.getvalue()


# ---------------------------------------------------------------- grading without a sandbox


class BenchGrader:
    """The repository grader's verdict logic on fixed results (24 tests, 3 failing with output); the
    learner's files are kept as the evidence bundle exactly as a worker keeps them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def grade(self, job: GradingJob) -> Grade:
        output = "\n".join(f"E   assert load_{i}('fixtures.json') == expected  # line {i}" for i in range(20))
        tests = tuple(
            TestOutcome(
                f"tests/test_it.py::test_case_{i:02d}",
                "hidden",
                i % 8 != 3,
                1.0,
                1.0,
                output if i % 8 == 3 else "",
                "visible",
            )
            for i in range(24)
        )
        report = RepositoryReport(tests=tests, tampered=False, notes=(), files=frozenset({"README.md"}))
        assert job.rubric_definition is not None
        verdict, result = score(report, job.rubric_definition, ())
        feedback: dict[str, Any] = {**report_feedback(report), "rubric": rubric_feedback(result)}
        with tempfile.TemporaryDirectory() as scratch:
            tree = materialise(self.settings, job.payload, Path(scratch) / "tree")
            feedback["evidence"] = capture_tree(file_store(self.settings), tree)
        return Grade(verdict.score, verdict.max_score, verdict.passed, feedback, verdict.needs_review)


@dataclass(frozen=True)
class Scenario:
    name: str
    url: str
    expect: str  # text the page must contain, so a refusal or an empty page is never timed as a page


@dataclass(frozen=True)
class Built:
    scenarios: list[Scenario]
    browse: list[Scenario]  # attempt 1's page on each of its files in turn


def build(settings: Settings) -> Built:
    """The database, the file store and two graded attempts waiting for review; the scenarios."""
    catalog = write_repository_catalog(settings.catalog_path)
    engine = make_engine(settings)
    upgrade(engine)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        load_catalog(session, read_catalog(catalog))
        learner = accounts.create_user(
            session, email="lena.learner@example.org", name="Lena Learner", password=PASSWORD
        )
        accounts.enroll(session, learner.id, "repo-program")
        token = accounts.create_token(session, learner.id).secret
        reviewer = accounts.create_user(
            session, email=REVIEWER, name="Rui", password=PASSWORD, role="reviewer"
        )
        access.add_staff(session, reviewer, "repo-program", StaffRole.REVIEWER)
    queue = RecordingQueue()
    client = create_app(settings, queue=queue).test_client()
    first = text_files()
    for files in (first, second_attempt(first)):
        response = client.post(
            "/api/v1/submissions",
            data={"assessment": "reviewed-repo", "archive": (io.BytesIO(archive(files)), "todo.zip")},
            headers={"Authorization": f"Bearer {token}"},
            content_type="multipart/form-data",
        )
        assert response.status_code == 202, response.get_json()
        graders: dict[str, KindGrader] = {"quiz": QuizGrader(), "repository": BenchGrader(settings)}
        while queue.sent:
            run_id, _ = queue.sent.pop(0)
            process_run(factory, run_id, graders, worker="bench", lease_seconds=60)
    with session_scope(factory) as session:
        task_ids = list(session.scalars(select(ReviewTask.id).order_by(ReviewTask.id)))
    engine.dispose()
    assert len(task_ids) == 2, task_ids
    one, two = (f"/review/tasks/{task_id}" for task_id in task_ids)
    scenarios = [
        Scenario("default file", one, 'id="files-heading"'),
        Scenario("largest file (600 lines)", f"{one}?file={LARGEST}", 'id="L600"'),
        Scenario("over the limit (680 KB)", f"{one}?file={OVER_LIMIT}", "Too large to show here"),
        Scenario("diff (attempt 2)", two, "Changes since attempt 1"),
    ]
    paths = sorted([*first, "assets/logo.png", OVER_LIMIT])
    browse = [Scenario(path, f"{one}?file={quote(path)}", 'id="file-heading"') for path in paths]
    return Built(scenarios, browse)


def claim_all(settings: Settings) -> None:
    """The reviewer holds both tasks (a claim lasts an hour: renewed before each phase)."""
    engine = make_engine(settings)
    with session_scope(make_session_factory(engine)) as session:
        reviewer = session.scalars(select(User).where(User.email == REVIEWER)).one()
        for task_id in session.scalars(select(ReviewTask.id)):
            review_queue.claim(session, reviewer, task_id)
    engine.dispose()


# ---------------------------------------------------------------- measuring


def csrf(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "the login page has no CSRF token"
    return match.group(1)


def log_in_client(client: FlaskClient) -> None:
    token = csrf(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": REVIEWER, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.status_code


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float  # this process's CPU time: the request's own work in process, only the client's over HTTP


def timed(fetch: Callable[[], tuple[int, str]], scenario: Scenario) -> Sample:
    started, started_cpu = time.perf_counter(), time.process_time()
    status, body = fetch()
    sample = Sample(time.perf_counter() - started, time.process_time() - started_cpu)
    assert status == 200 and scenario.expect in body, (scenario.name, status, body[:500])
    return sample


def empty_caches() -> None:
    code.clear_cache()
    viewer.clear_cache()


def in_process_client(settings: Settings) -> FlaskClient:
    empty_caches()
    client = create_app(settings, queue=RecordingQueue()).test_client()
    log_in_client(client)
    return client


def get_in_process(client: FlaskClient, url: str) -> Callable[[], tuple[int, str]]:
    def fetch() -> tuple[int, str]:
        response = client.get(url)
        return response.status_code, response.get_data(as_text=True)

    return fetch


@dataclass(frozen=True)
class Http:
    session: requests.Session  # holds the reviewer's login cookie
    base: str
    master_pid: int

    def server_cpu(self) -> float:
        """CPU seconds the gunicorn worker has used so far: the server's own work, whatever else runs."""
        children = Path(f"/proc/{self.master_pid}/task/{self.master_pid}/children").read_text().split()
        ticks = 0
        for child in children:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def gunicorn(settings: Settings) -> Iterator[Http]:
    """The production app (`grader.entrypoints.wsgi:app`) under one sync gunicorn worker, the
    reviewer logged in; the first request after this is the server's first page after start."""
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "grader.entrypoints.wsgi:app",
        ],
        cwd=ROOT,
        env={**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.05)
        http = requests.Session()
        base = f"http://127.0.0.1:{port}"
        token = csrf(http.get(f"{base}/login", timeout=60).text)
        answer = http.post(
            f"{base}/login",
            data={"email": REVIEWER, "password": PASSWORD, "csrf_token": token},
            allow_redirects=False,
            timeout=60,
        )
        assert answer.status_code == 302, answer.status_code
        yield Http(http, base, process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def get_http(http: Http, url: str) -> Callable[[], tuple[int, str]]:
    def fetch() -> tuple[int, str]:
        response = http.session.get(http.base + url, timeout=60)
        return response.status_code, response.text

    return fetch


def figures(samples: list[Sample], *, cpu: bool = False) -> str:
    ordered = sorted(sample.wall for sample in samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    text = (
        f"p50 {statistics.median(ordered) * 1000:6.1f}  p95 {p95 * 1000:6.1f}  "
        f"max {ordered[-1] * 1000:6.1f} ms"
    )
    if cpu:
        text += f"  cpu p50 {statistics.median(s.cpu for s in samples) * 1000:6.1f} ms"
    return text + f"  (n={len(ordered)})"


@contextmanager
def counting_statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def measure_in_process(settings: Settings, built: Built, requests_n: int, cold_n: int) -> None:
    claim_all(settings)
    print("  in process (Flask test client):")
    for scenario in built.scenarios:
        cold = [
            timed(get_in_process(in_process_client(settings), scenario.url), scenario) for _ in range(cold_n)
        ]
        fetch = get_in_process(in_process_client(settings), scenario.url)
        timed(fetch, scenario)
        warm = [timed(fetch, scenario) for _ in range(requests_n)]
        with counting_statements() as statements:
            timed(fetch, scenario)
        print(f"    {scenario.name:<26} cold {figures(cold, cpu=True)}")
        print(f"    {'':<26} warm {figures(warm, cpu=True)}  {len(statements)} SQL statements")
    # A reviewer reading the submission: a warm app, each file's page opened for the first time.
    client = in_process_client(settings)
    timed(get_in_process(client, built.scenarios[2].url), built.scenarios[2])
    empty_caches()
    browsed = [timed(get_in_process(client, s.url), s) for s in built.browse]
    print(f"    {'every file once':<26} warm {figures(browsed, cpu=True)}")


def measure_http(settings: Settings, built: Built, requests_n: int, cold_n: int) -> None:
    claim_all(settings)
    print("  over HTTP (gunicorn, 1 sync worker, loopback, requests):")
    for scenario in built.scenarios:
        cold: list[Sample] = []
        for _ in range(cold_n):
            with gunicorn(settings) as http:
                cold.append(timed(get_http(http, scenario.url), scenario))
        with gunicorn(settings) as http:
            fetch = get_http(http, scenario.url)
            timed(fetch, scenario)
            started = http.server_cpu()
            warm = [timed(fetch, scenario) for _ in range(requests_n)]
            server = (http.server_cpu() - started) / requests_n
        print(f"    {scenario.name:<26} cold {figures(cold)}")
        print(f"    {'':<26} warm {figures(warm)}  server cpu mean {server * 1000:5.1f} ms")
    with gunicorn(settings) as http:
        timed(get_http(http, built.scenarios[2].url), built.scenarios[2])  # warms all but the files
        started = http.server_cpu()
        browsed = [timed(get_http(http, s.url), s) for s in built.browse]
        server = (http.server_cpu() - started) / len(browsed)
    print(f"    {'every file once':<26} warm {figures(browsed)}  server cpu mean {server * 1000:5.1f} ms")


def profile(settings: Settings, scenario: Scenario, requests_n: int, order: str) -> None:
    claim_all(settings)
    fetch = get_in_process(in_process_client(settings), scenario.url)
    timed(fetch, scenario)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests_n):
        timed(fetch, scenario)
    profiler.disable()
    print(f"  where {requests_n} warm requests of '{scenario.name}' spend their time ({order}):")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats(order).print_stats(30)


def run(args: argparse.Namespace, database_url: str, tmp: Path) -> None:
    settings = Settings(
        data_dir=tmp / "var",
        database_url=database_url,
        secret_key="bench",
        catalog_path=tmp / "catalog",
        submissions_per_hour=10**6,
    )
    built = build(settings)
    backend = "postgresql" if database_url else "sqlite"
    print(
        f"viewer render: reviewer's task page, {TEXT_FILES} text files of {TEXT_LINES:,} lines + a binary "
        f"+ a 680 KB file, 24 tests, {backend}; warm n={args.requests}, cold n={args.cold}"
    )
    if args.profile:
        chosen = [s for s in built.scenarios if s.name.startswith(args.profile)]
        profile(settings, chosen[0] if chosen else built.scenarios[0], args.requests, args.sort)
        return
    measure_in_process(settings, built, args.requests, args.cold)
    if not args.no_http:
        measure_http(settings, built, args.requests, args.cold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="warm requests per scenario")
    parser.add_argument("--cold", type=int, default=5, help="cold starts per scenario")
    parser.add_argument("--postgres", action="store_true", help="a fresh PostgreSQL database (not SQLite)")
    parser.add_argument("--no-http", action="store_true", help="only the in-process test client")
    parser.add_argument("--profile", metavar="SCENARIO", help="cProfile warm requests of one scenario")
    parser.add_argument(
        "--sort", default="cumulative", choices=["cumulative", "tottime"], help="of --profile"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="viewer-bench-") as tmp:
        if args.postgres:
            with postgres_database() as url:
                run(args, url, Path(tmp))
        else:
            run(args, "", Path(tmp))


if __name__ == "__main__":
    main()
