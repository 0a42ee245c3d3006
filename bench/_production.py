"""The service as production runs it, for the benches: gunicorn with gthread workers and real Celery
prefork workers (both through the bench composition roots that count SQL), a private redis-server
configured as compose.yaml configures it, thousands of learners made in bulk, and the measurements
taken around a step: SQL counts, Redis commands, CPU per process group, and what else ran on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from grader.models import ApiToken, Enrollment, Program, User, utcnow
from grader.services import accounts
from tests.support.services import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
COMPOSE_REDIS_FLAGS: tuple[str, ...] = ("--appendonly", "yes", "--appendfsync", "everysec", "--save", "")
COMPOSE_REDIS_FLAGS += ("--maxmemory-policy", "noeviction")
BACKENDS_OF_THIS_DATABASE = text(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


# ---------------------------------------------------------------- processes


@dataclass(frozen=True)
class RedisProcess:
    url: str
    pid: int


@contextmanager
def compose_redis(directory: Path) -> Iterator[RedisProcess]:
    """A private redis-server with compose.yaml's flags (AOF, fsync every second, no eviction)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: apt-get install redis-server")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), *COMPOSE_REDIS_FLAGS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield RedisProcess(url=f"redis://127.0.0.1:{port}/0", pid=process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _process_env(env: Mapping[str, str]) -> dict[str, str]:
    return {**os.environ, **env, "PYTHONPATH": str(ROOT)}


@dataclass
class Gunicorn:
    """gunicorn as compose.yaml runs it (its config module, gthread workers and threads), serving the
    bench's WSGI root."""

    env: Mapping[str, str]
    log_dir: Path
    workers: int = 4
    threads: int = 8
    app: str = "bench._counting_wsgi:app"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "gunicorn", "-c", "python:grader.entrypoints.gunicorn_conf"]
        command += ["--bind", f"127.0.0.1:{self.port}"]
        command += [
            "--workers",
            str(self.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(self.threads),
        ]
        command += ["--access-logfile", str(self.log_dir / "access.log")]
        command += ["--error-logfile", str(self.log_dir / "gunicorn.log"), self.app]
        with open(self.log_dir / "gunicorn.log", "ab") as log:
            self.process = subprocess.Popen(
                command,
                env=_process_env(self.env),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/_bench/ping", timeout=2):
                    pass
                if len(descendants(self.process.pid)) >= self.workers:
                    return
            except (urllib.error.URLError, OSError):
                pass  # workers still booting: the connection waits in the backlog or is refused
            time.sleep(0.1)
        raise TimeoutError(f"gunicorn not serving after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        _stop_group(self.process)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_dir / "gunicorn.log", lines)


@dataclass
class CeleryWorker:
    """A `celery worker` as compose.yaml's worker-quiz runs it: prefork, its queues, INFO logs."""

    env: Mapping[str, str]
    log_path: Path
    concurrency: int = 4
    queues: str = "quiz,credentials"
    app: str = "bench._counting_worker"
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "celery", "-A", self.app, "worker", "-Q", self.queues]
        command += ["--pool", "prefork", "--concurrency", str(self.concurrency), "--loglevel", "INFO"]
        command += ["--hostname", f"bench-{uuid.uuid4().hex[:6]}@%h"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                env=_process_env(self.env),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_tail()}")
            if " ready." in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        _stop_group(self.process)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)


def _stop_group(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


# ---------------------------------------------------------------- learners


def make_learners(sessions: sessionmaker[Session], count: int, program_slug: str) -> list[str]:
    """`count` enrolled learners with one API token each; returns the tokens.

    One account goes through `accounts.create_user`; the rest are inserted in bulk with its password
    hash, because hashing thousands of passwords with argon2 would take minutes and the bench never
    logs in with them. Tokens come from `accounts.create_token`, so they are what the API checks.
    """
    with sessions() as session, session.begin():
        first = accounts.create_user(
            session, email="learner-0@bench.example.org", name="Learner 0", password="bench-password-0"
        )
        program_id = session.scalar(select(Program.id).where(Program.slug == program_slug))
        if count > 1:
            session.execute(
                insert(User),
                [
                    {
                        "email": f"learner-{i}@bench.example.org",
                        "name": f"Learner {i}",
                        "password_hash": first.password_hash,
                    }
                    for i in range(1, count)
                ],
            )
        user_ids = list(session.scalars(select(User.id).order_by(User.id)))
        session.execute(insert(Enrollment), [{"user_id": uid, "program_id": program_id} for uid in user_ids])
        tokens = [accounts.create_token(session, uid, "bench").secret for uid in user_ids]
        # As if each learner had just opened the quiz page: a token in use records its use at most once
        # a minute, so a hand-in does not pay the first use's write.
        session.execute(update(ApiToken).values(last_used_at=utcnow()))
        return tokens


# ---------------------------------------------------------------- measurements around a step


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields_ = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(int(fields_[1]), []).append(int(entry.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User plus system CPU of each live process, in seconds."""
    times: dict[int, float] = {}
    for pid in pids:
        try:
            fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        times[pid] = (int(fields_[11]) + int(fields_[12])) / CLOCK_TICKS
    return times


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine spent busy since boot (every core, every process)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def process_groups(
    gunicorn: Gunicorn, worker: CeleryWorker, engine: Engine, redis_pid: int
) -> dict[str, list[int]]:
    """The processes whose CPU a step is charged with: web, worker, this database's backends, Redis."""
    assert gunicorn.process is not None and worker.process is not None
    with engine.connect() as connection:
        backends = list(connection.scalars(BACKENDS_OF_THIS_DATABASE))
    return {
        "web": [gunicorn.process.pid, *descendants(gunicorn.process.pid)],
        "worker": [worker.process.pid, *descendants(worker.process.pid)],
        "postgres": backends,
        "redis": [redis_pid],
    }


@dataclass
class Snapshot:
    at: float
    machine_busy: float
    cpu: dict[str, dict[int, float]]
    statements: Counter[str]
    commits: Counter[str]
    units: Counter[str]
    redis_calls: int


def read_counts(directory: Path) -> tuple[Counter[str], Counter[str], Counter[str]]:
    statements: Counter[str] = Counter()
    commits: Counter[str] = Counter()
    units: Counter[str] = Counter()
    for path in directory.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, FileNotFoundError):
            continue  # replaced while read: the next snapshot has it
        statements.update(data["statements"])
        commits.update(data["commits"])
        units.update(data["units"])
    return statements, commits, units


def redis_command_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    # The bench's own INFO calls are not the service's.
    return sum(int(value["calls"]) for key, value in stats.items() if key != "cmdstat_info")


def snapshot(groups: dict[str, list[int]], count_dir: Path, redis_client: redis.Redis) -> Snapshot:
    # Counts are written every fifth of a second: wait for the last of them to land.
    time.sleep(0.6)
    statements, commits, units = read_counts(count_dir)
    return Snapshot(
        at=time.monotonic(),
        machine_busy=machine_busy_seconds(),
        cpu={name: cpu_seconds(pids) for name, pids in groups.items()},
        statements=statements,
        commits=commits,
        units=units,
        redis_calls=redis_command_calls(redis_client),
    )


@dataclass
class StepUsage:
    """What a step cost, from two snapshots."""

    seconds: float
    cpu: dict[str, float]
    machine_busy: float
    statements: Counter[str]
    commits: Counter[str]
    units: Counter[str]
    redis_calls: int

    def others_busy(self, client_cpu: float) -> float:
        """Cores that processes outside the bench kept busy on average during the step."""
        mine = sum(self.cpu.values()) + client_cpu
        return max(0.0, self.machine_busy - mine) / self.seconds


def usage(before: Snapshot, after: Snapshot) -> StepUsage:
    cpu: dict[str, float] = {}
    for name, times in after.cpu.items():
        # A process that appeared during the step is charged from zero.
        cpu[name] = sum(t - before.cpu.get(name, {}).get(pid, 0.0) for pid, t in times.items())
    return StepUsage(
        seconds=after.at - before.at,
        cpu=cpu,
        machine_busy=after.machine_busy - before.machine_busy,
        statements=after.statements - before.statements,
        commits=after.commits - before.commits,
        units=after.units - before.units,
        redis_calls=after.redis_calls - before.redis_calls,
    )
