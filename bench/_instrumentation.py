"""Bench-only instrumentation of the service's own processes: SQL statements and commits counted per
process and per request kind (or task), and cProfile of each request or task under GRADER_BENCH_PROFILE=1.

Only the bench composition roots (`bench/_counting_wsgi.py`, `bench/_counting_worker.py`) install it;
the service never imports this module. Each process writes what it counted to
`$GRADER_BENCH_COUNT_DIR/<role>-<pid>.json` (and its profiles beside it) every fifth of a second, and
the bench sums the files before and after a measured step.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

COUNT_DIR_ENV = "GRADER_BENCH_COUNT_DIR"
PROFILE_ENV = "GRADER_BENCH_PROFILE"
# Under GRADER_BENCH_PROFILE=1, requests and tasks are profiled while this file exists in the count
# folder: the bench creates it after its warm-up, so first calls (imports, pools) stay out of profiles.
PROFILE_SWITCH = "profile.on"
WRITE_EVERY_SECONDS = 0.2
# Dumping a profile costs milliseconds: less often than the counts, and only in a profiling run.
PROFILE_WRITE_EVERY_SECONDS = 1.0
_ID_SEGMENT = re.compile(r"^(?:[0-9a-f]{16,}|\d+)$")


class ProcessCounts:
    """What one process did, by label ("POST /api/v1/submissions", "task grader.grade_run", ...)."""

    def __init__(self, role: str, directory: Path, *, profile: bool) -> None:
        self.role = role
        self.directory = directory
        self.profile = profile
        self.statements: Counter[str] = Counter()
        self.commits: Counter[str] = Counter()
        self.units: Counter[str] = Counter()
        self.profiles: dict[str, pstats.Stats] = {}
        self.profiled: Counter[str] = Counter()
        self._lock = threading.Lock()
        # Dumping a profile takes a while: statements are never counted behind it.
        self._profile_lock = threading.Lock()
        self._local = threading.local()
        self._writer_lock = threading.Lock()
        self._pid = 0
        self._changed = False
        self._profiles_changed = False

    def profiling_now(self) -> bool:
        return self.profile and (self.directory / PROFILE_SWITCH).exists()

    @staticmethod
    def profiler() -> cProfile.Profile:
        """A profiler of this thread's CPU time: where the CPU goes, not the waits on PostgreSQL."""
        return cProfile.Profile(time.thread_time)

    # -- labels: which request or task the current thread is serving

    @property
    def label(self) -> str:
        return getattr(self._local, "label", None) or f"{self.role} other"

    def begin(self, label: str) -> None:
        self._ensure_writer()
        self._local.label = label
        with self._lock:
            self.units[label] += 1
            self._changed = True

    def end(self) -> None:
        self._local.label = None

    # -- SQLAlchemy events

    def on_statement(self, *_: Any) -> None:
        self._ensure_writer()
        label = self.label
        with self._lock:
            self.statements[label] += 1
            self._changed = True

    def on_commit(self, *_: Any) -> None:
        self._ensure_writer()
        label = self.label
        with self._lock:
            self.commits[label] += 1
            self._changed = True

    def add_profile(self, label: str, profiler: cProfile.Profile) -> None:
        with self._profile_lock:
            self.profiled[label] += 1
            if label in self.profiles:
                self.profiles[label].add(profiler)
            else:
                self.profiles[label] = pstats.Stats(profiler)
            self._profiles_changed = True

    # -- writing the files the bench reads

    def after_fork_in_child(self) -> None:
        # A forked child (gunicorn and prefork workers) starts from zero, with locks no thread holds:
        # its parent writes its own file, and the parent's writer thread did not survive the fork.
        self._lock = threading.Lock()
        self._writer_lock = threading.Lock()
        self._profile_lock = threading.Lock()
        self.profiled.clear()
        self.statements.clear()
        self.commits.clear()
        self.units.clear()
        self.profiles.clear()
        self._pid = 0

    def _ensure_writer(self) -> None:
        if self._pid == os.getpid():
            return
        with self._writer_lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._changed = True
            threading.Thread(target=self._write_forever, name="bench-counts", daemon=True).start()

    def _write_forever(self) -> None:
        last_profile_write = 0.0
        while True:
            time.sleep(WRITE_EVERY_SECONDS)
            try:
                self.write()
                now = time.monotonic()
                if self.profile and now - last_profile_write >= PROFILE_WRITE_EVERY_SECONDS:
                    self.write_profiles()
                    last_profile_write = now
            except FileNotFoundError:
                return  # the bench is over and took its folder with it

    def write(self) -> None:
        with self._lock:
            if not self._changed:
                return
            snapshot = {
                "role": self.role,
                "pid": self._pid,
                "statements": dict(self.statements),
                "commits": dict(self.commits),
                "units": dict(self.units),
            }
            self._changed = False
        _write_atomically(self.directory / f"{self.role}-{self._pid}.json", json.dumps(snapshot))

    def write_profiles(self) -> None:
        with self._profile_lock:
            if not self._profiles_changed:
                return
            self._profiles_changed = False
            for label, stats in self.profiles.items():
                path = self.directory / f"profile-{self.role}-{self._pid}-{_slug(label)}.pstats"
                temporary = path.with_suffix(".tmp")
                stats.dump_stats(str(temporary))
                temporary.replace(path)
                (path.with_suffix(".label")).write_text(f"{label}\n{self.profiled[label]}\n")


def install(role: str) -> ProcessCounts | None:
    """Count this process's SQL when GRADER_BENCH_COUNT_DIR is set (every engine it will ever make)."""
    directory = os.environ.get(COUNT_DIR_ENV)
    if not directory:
        return None
    counts = ProcessCounts(role, Path(directory), profile=os.environ.get(PROFILE_ENV) == "1")
    Path(directory).mkdir(parents=True, exist_ok=True)
    event.listen(Engine, "before_cursor_execute", counts.on_statement)
    event.listen(Engine, "commit", counts.on_commit)
    os.register_at_fork(after_in_child=counts.after_fork_in_child)
    return counts


def request_label(method: str, path: str) -> str:
    """The route a request took, ids replaced, so that every status request counts under one label."""
    segments = ["<id>" if _ID_SEGMENT.match(part) else part for part in path.split("/")]
    return f"{method} {'/'.join(segments)}"


def consume(body: Iterable[bytes]) -> Iterator[bytes]:
    """The whole response body, read now (inside the profile), then closed as WSGI requires."""
    try:
        chunks = list(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return iter(chunks)


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(path)
