"""The sandbox contract: what a job asks for (`JobSpec`, `Limits`) and what it gives back (`RunResult`).

Stdlib only, shared by every backend and by the grader. A job runs in a fresh box with its work
directory at `/box`; the box sees only the files the spec lists, the environment it names (plus a
fixed PATH, HOME and LANG) and nothing of the host. The `Outcome` set is closed and keeps the
learner's doing (completed, crashed, timeout, memory_limit, output_limit, killed) apart from ours
(sandbox_error, the only outcome a caller should retry). `decide_outcome` is the one place where
what a backend observed of a box becomes that outcome, so both backends give the same verdicts.

How a job ended, as each backend can tell it: both run the job under the box's own init
(`sandbox.boxinit`), which waits for the job and reports its real wait status, so `exit 139`
(exit_code 139, signal None, completed) and a segfault (exit_code 139, signal 11, crashed) are told
apart on both. Only where that report is missing (the init itself was killed: by us, by the
kernel's OOM killer; the job cannot, the init being its box's pid 1 on both) does a backend
fall back to the exit code it saw, and then 128 + n can only be read as "signal n".
"""

from __future__ import annotations

import os
import re
import signal as signals
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any, Protocol

WORKDIR = "/box"
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
MAX_ARGV_BYTES = 256 * 1024
MAX_ENV_BYTES = 64 * 1024
# A Docker-style `name:tag`, no registry or path: it names a local image and a root filesystem folder.
IMAGE_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
ROOTFS_PREFIX = "microcred-"

# What a job's stdout lines are answered with in `Runner.run(spec, serve=...)`: one line in (without
# its newline), the bytes to write to the job's stdin out.
Serve = Callable[[bytes], bytes]


class Outcome(StrEnum):
    """How a job ended. Closed: every consumer can handle each member."""

    COMPLETED = "completed"  # the command exited, with any exit code
    CRASHED = "crashed"  # it died of a signal of its own (SIGSEGV, SIGABRT, a SIGKILL it sent itself...)
    TIMEOUT = "timeout"  # wall clock or CPU time ran out (SIGXCPU is a timeout, not a crash)
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"  # stdout or stderr past its cap, or a serve line past it
    KILLED = "killed"  # killed from outside for another reason
    SANDBOX_ERROR = "sandbox_error"  # our fault: the box could not be set up or observed

    @property
    def retryable(self) -> bool:
        """Only our own faults are worth running again: a learner's crash would crash again."""
        return self is Outcome.SANDBOX_ERROR


def signal_name(sig: int) -> str:
    """A signal for people: `signal_name(11) == "SIGSEGV (segmentation fault)"`."""
    try:
        name = signals.Signals(sig).name
    except ValueError:
        if signals.SIGRTMIN <= sig <= signals.SIGRTMAX:
            name = f"SIGRTMIN+{sig - signals.SIGRTMIN}"
        else:
            return f"signal {sig}"
    described = signals.strsignal(sig)
    if not described:
        return name
    return f"{name} ({described[0].lower()}{described[1:]})"


def rootfs_dirname(reference: str) -> str:
    """The root filesystem folder (next to the default one) that bubblewrap runs `reference` from:
    `microcred-python:bookworm` -> `python-bookworm`. Two references can share a folder
    (`microcred-a:b` and `a:b`); a folder built for a reference records it (see sandbox.images)."""
    if not IMAGE_REFERENCE.match(reference):
        raise ValueError(f"image references look like name:tag, not {reference!r}")
    name = reference.removeprefix(ROOTFS_PREFIX).replace(":", "-")
    if not name[:1].isalnum():
        raise ValueError(f"image reference {reference!r} does not name a root filesystem folder")
    return name


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
    image: str | None = None  # `name:tag`; None is the runner's own image (see rootfs_dirname)

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
        if self.image is not None:
            rootfs_dirname(self.image)  # raises for anything but a plain name:tag

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


@dataclass(frozen=True)
class Observation:
    """What a backend saw of one box, the input of `decide_outcome`."""

    box_started: bool  # the box's start mark was seen: anything after it is the job's doing
    killed_for: Outcome | None = None  # why we killed the box, if we did (the first reason counts)
    oom_killed: bool = False  # the kernel's OOM killer struck in the box's memory cgroup
    wait_status: int | None = None  # the job's own wait status, as the box's init reported it
    exit_code: int | None = None  # otherwise the exit code the backend saw (128 + n for signal n)
    cpu_seconds: float | None = None
    cpu_limit: int | None = None  # the job's RLIMIT_CPU soft limit; the hard one sends SIGKILL
    setup_detail: str = ""  # what the box said when it did not start


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    exit_code: int | None  # 128 + n when the job died of signal n, as Docker reports it
    signal: int | None  # the signal it died of; None when it exited
    error: str | None = None  # for sandbox_error only


def decide_outcome(seen: Observation) -> Verdict:
    """The outcome of a box, the same way for every backend.

    Our kill wins (we know why we did it), then a box that never started is our error, then the
    OOM killer, then the CPU rlimit (SIGXCPU at the soft limit, SIGKILL at the hard one for a job
    that ignores SIGXCPU), then any other signal is the job's own crash; otherwise it exited.
    """
    if seen.wait_status is not None:
        exit_code, sig = _decode_wait_status(seen.wait_status)
    else:
        exit_code = seen.exit_code
        # Only an exit code: 128 + n is read as signal n, which an `exit 139` cannot be told from.
        sig = exit_code - 128 if exit_code is not None and 128 < exit_code <= 128 + 64 else None
    if seen.killed_for is not None:
        return Verdict(seen.killed_for, exit_code, sig)
    if not seen.box_started:
        detail = seen.setup_detail.strip() or f"exit code {exit_code}"
        return Verdict(Outcome.SANDBOX_ERROR, None, None, f"the box did not start: {detail}")
    if seen.oom_killed:
        return Verdict(Outcome.MEMORY_LIMIT, exit_code, sig)
    cpu_rlimit_hit = (
        seen.cpu_seconds is not None and seen.cpu_limit is not None and seen.cpu_seconds >= seen.cpu_limit
    )
    if sig == signals.SIGXCPU or (sig == signals.SIGKILL and cpu_rlimit_hit):
        return Verdict(Outcome.TIMEOUT, exit_code, sig)
    if sig is not None:
        return Verdict(Outcome.CRASHED, exit_code, sig)
    return Verdict(Outcome.COMPLETED, exit_code, None)


def _decode_wait_status(status: int) -> tuple[int | None, int | None]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return 128 + sig, sig
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None
    return None, None


class Runner(Protocol):
    name: str

    def run(self, spec: JobSpec, *, serve: Serve | None = None) -> RunResult:
        """Run one job in a fresh box; never raises, whatever the job (or `serve`) does.

        With `serve`, the job's stdout is a line channel: each complete line it writes (without
        the newline) is passed to `serve`, whose reply is written to the job's stdin (after
        `spec.stdin`), which then stays open until the job ends. `RunResult.stdout` is only what
        followed the last newline; a line longer than `limits.output_bytes` is an output_limit.
        Time inside `serve` counts against the job's wall clock; `serve` may run jobs of its own on
        the same runner. If `serve` raises, the box is killed and the result is a sandbox_error
        naming the exception.
        """
        ...
