"""The sandbox contract: what a job asks for (`JobSpec`, `Limits`) and what it gives back (`RunResult`).

Stdlib only, shared by every backend and by the grader. A job runs in a fresh box with its work
directory at `/box`; the box sees only the files the spec lists, the environment it names (plus a
fixed PATH, HOME and LANG) and nothing of the host. The `Outcome` set is closed and keeps the
learner's doing (completed, timeout, memory_limit, output_limit, killed) apart from ours
(sandbox_error, the only outcome a caller should retry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any, Protocol

WORKDIR = "/box"
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
MAX_ARGV_BYTES = 256 * 1024
MAX_ENV_BYTES = 64 * 1024


class Outcome(StrEnum):
    COMPLETED = "completed"  # the command exited (with any code) or died of a signal of its own
    TIMEOUT = "timeout"  # wall clock or CPU time ran out
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    KILLED = "killed"  # killed from outside for another reason
    SANDBOX_ERROR = "sandbox_error"  # our fault: the box could not be set up or observed

    @property
    def retryable(self) -> bool:
        return self is Outcome.SANDBOX_ERROR


@dataclass(frozen=True)
class Limits:
    """Resource limits of one job; the defaults suit a small test suite."""

    wall_seconds: float = 30.0
    cpu_seconds: int = 20
    memory_mb: int = 512
    pids: int = 64
    output_bytes: int = 1_000_000  # stdout and stderr each
    file_size_mb: int = 16
    disk_mb: int = 64  # the work dir; /tmp and /dev/shm get the same cap each
    nofile: int = 256
    collect_bytes: int = 1_000_000  # per returned file

    def __post_init__(self) -> None:
        checks = {
            "wall_seconds": (0.1, 3600.0),
            "cpu_seconds": (1, 3600),
            "memory_mb": (16, 65536),
            "pids": (4, 32768),
            "output_bytes": (1024, 1024**3),
            "file_size_mb": (1, 65536),
            "disk_mb": (1, 65536),
            "nofile": (16, 65536),
            "collect_bytes": (1, 1024**3),
        }
        for name, (low, high) in checks.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}, not {value!r}")


@dataclass(frozen=True)
class BoxFile:
    """A file placed in the box before the job starts, relative to the work dir."""

    path: str
    content: bytes
    mode: int = 0o644

    def __post_init__(self) -> None:
        relative = PurePosixPath(self.path)
        if not self.path or relative.is_absolute() or ".." in relative.parts or "\x00" in self.path:
            raise ValueError(f"box file paths are relative and stay inside the box: {self.path!r}")
        if self.mode & ~0o777:
            raise ValueError("box files cannot be setuid, setgid or sticky")


@dataclass(frozen=True)
class JobSpec:
    command: tuple[str, ...]
    files: tuple[BoxFile, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes = b""
    limits: Limits = field(default_factory=Limits)
    collect: tuple[str, ...] = ()  # work-dir-relative paths to return after the run

    def __post_init__(self) -> None:
        if not self.command or not all(isinstance(a, str) and "\x00" not in a for a in self.command):
            raise ValueError("command must be a non-empty tuple of strings without NUL bytes")
        if sum(len(a.encode()) for a in self.command) > MAX_ARGV_BYTES:
            raise ValueError(f"the command line is longer than {MAX_ARGV_BYTES} bytes")
        if sum(len(k) + len(v) for k, v in self.env.items()) > MAX_ENV_BYTES:
            raise ValueError(f"the environment is larger than {MAX_ENV_BYTES} bytes")
        for key, value in self.env.items():
            if not key or "=" in key or "\x00" in key or "\x00" in value:
                raise ValueError(f"invalid environment variable {key!r}")
        for path in self.collect:
            BoxFile(path, b"")  # same rules as files placed in the box

    def box_env(self) -> dict[str, str]:
        return {**BASE_ENV, **self.env}


@dataclass(frozen=True)
class RunResult:
    outcome: Outcome
    exit_code: int | None
    signal: int | None
    wall_seconds: float
    cpu_seconds: float | None
    peak_memory_bytes: int | None
    stdout: bytes
    stderr: bytes
    output_truncated: bool
    files: Mapping[str, bytes] = field(default_factory=dict)
    missing_files: tuple[str, ...] = ()
    error: str | None = None
    backend: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "wall_seconds": round(self.wall_seconds, 4),
            "cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 4),
            "peak_memory_bytes": self.peak_memory_bytes,
            "stdout": self.stdout.decode("utf-8", errors="replace"),
            "stderr": self.stderr.decode("utf-8", errors="replace"),
            "stdout_bytes": len(self.stdout),
            "stderr_bytes": len(self.stderr),
            "output_truncated": self.output_truncated,
            "files": {
                name: {"size": len(data), "content": data.decode("utf-8", errors="replace")}
                for name, data in self.files.items()
            },
            "missing_files": list(self.missing_files),
            "error": self.error,
        }


def sandbox_error(backend: str, message: str, wall: float = 0.0) -> RunResult:
    return RunResult(
        outcome=Outcome.SANDBOX_ERROR,
        exit_code=None,
        signal=None,
        wall_seconds=wall,
        cpu_seconds=None,
        peak_memory_bytes=None,
        stdout=b"",
        stderr=b"",
        output_truncated=False,
        error=message,
        backend=backend,
    )


class Runner(Protocol):
    name: str

    def run(self, spec: JobSpec) -> RunResult:
        """Run one job in a fresh box; never raises for anything the job's code does."""
        ...
