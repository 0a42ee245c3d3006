"""`isolation: process`: the grader's end of the channel between the hidden tests and the learner's code.

The box that runs the hidden tests holds no learner code. Each time a test calls into a learner
module, its box writes a request line; `LearnerCalls.serve` runs that one call in a fresh box of its
own (the learner's files and `call_runner.py`, nothing else), reads the single answer line that box
printed, and passes back to the tests only what survives a strict reading: a JSON value, or an
exception's name, bases and message, each size-capped. Everything from the call's box is untrusted.
"""

from __future__ import annotations

import json
import keyword
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grader.catalog.schema import SandboxLimits
from grader.errors import SandboxUnavailable
from grader.harness import script
from grader.suites.common import box_limits, learner_fault
from sandbox.contract import BoxFile, JobSpec, Outcome, Runner

MAX_CALLS = 5000
MAX_ANSWER_BYTES = 1_000_000
MAX_NAME = 200
# Never served as learner modules: the tests' own imports must reach the real thing.
RESERVED_MODULES = frozenset(sys.stdlib_module_names) | {
    "pytest",
    "_pytest",
    "pluggy",
    "iniconfig",
    "packaging",
    "py",
    "conftest",
    "remote_modules",
    "pytest_runner",
    "call_runner",
}


def learner_modules(
    files: Mapping[str, bytes], test_files: Mapping[str, bytes]
) -> tuple[list[str], list[str]]:
    """Importable module names among the learner's files, and the files left out because their name
    belongs to the standard library, pytest or the hidden tests (so the tests import the real one)."""
    test_names = {path.split("/")[0].removesuffix(".py") for path in test_files}
    names: set[str] = set()
    left_out: list[str] = []
    for path in files:
        if not path.endswith(".py"):
            continue
        parts = path.removesuffix(".py").split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not parts or not all(part.isidentifier() and not keyword.iskeyword(part) for part in parts):
            continue
        if parts[0] in RESERVED_MODULES or parts[0] in test_names:
            left_out.append(path)
            continue
        for depth in range(1, len(parts) + 1):
            names.add(".".join(parts[:depth]))
    return sorted(names), left_out


@dataclass
class LearnerCalls:
    """Serves the hidden tests' calls into the learner's code, one fresh box per call."""

    runner: Runner
    learner_files: Mapping[str, bytes]
    limits: SandboxLimits
    deadline: float  # time.monotonic() when the whole suite's wall clock runs out
    calls: int = 0
    seconds: float = 0.0
    _files: tuple[BoxFile, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        self._files = (
            *(BoxFile(f"submission/{name}", content) for name, content in self.learner_files.items()),
            BoxFile("_harness/call_runner.py", script("call_runner.py")),
        )

    def serve(self, line: bytes) -> bytes:
        """Answer one request line from the tests' box; raise only for a fault on our side."""
        try:
            request = json.loads(line)
        except ValueError:
            return _encode(
                {"ok": False, "fault": "channel", "message": "the test box sent an unreadable line"}
            )
        if not isinstance(request, dict):
            return _encode(
                {"ok": False, "fault": "channel", "message": "the test box sent an unreadable line"}
            )
        self.calls += 1
        if self.calls > MAX_CALLS:
            return _encode(
                {"ok": False, "fault": "too_many_calls", "message": f"more than {MAX_CALLS} calls"}
            )
        remaining = self.deadline - time.monotonic()
        if remaining <= 0.1:
            return _encode({"ok": False, "fault": "timeout", "message": "the suite ran out of time"})
        wall = min(self.limits.call_seconds, remaining)
        forwarded = {
            key: request[key] for key in ("describe", "call", "function", "args", "kwargs") if key in request
        }
        started = time.monotonic()
        result = self.runner.run(
            JobSpec(
                command=("python3", "-I", "_harness/call_runner.py"),
                files=self._files,
                stdin=json.dumps(forwarded).encode() + b"\n",
                limits=box_limits(self.limits, wall_seconds=wall),
            )
        )
        self.seconds += time.monotonic() - started
        if result.outcome is Outcome.SANDBOX_ERROR:
            raise SandboxUnavailable(f"the sandbox failed running a call: {result.error or 'unknown error'}")
        fault = learner_fault(result, "the call")
        if fault:
            return _encode({"ok": False, "fault": result.outcome.value, "message": fault})
        return _encode(_read_answer(result.stdout))


def _read_answer(stdout: bytes) -> dict[str, Any]:
    """The call box's answer, checked field by field; anything else is the learner's broken answer."""
    unreadable = {"ok": False, "fault": "no_answer", "message": "the learner's code gave no readable answer"}
    lines = stdout.rstrip(b"\n").rsplit(b"\n", 1)
    if not lines or len(lines[-1]) > MAX_ANSWER_BYTES:
        return unreadable
    try:
        answer = json.loads(lines[-1])
    except (ValueError, RecursionError):
        return unreadable
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        return unreadable
    if answer["ok"]:
        return {"ok": True, "value": answer.get("value")}
    error = answer.get("error")
    if not isinstance(error, dict):
        return unreadable
    bases = error.get("bases")
    bases = bases if isinstance(bases, list) else []
    return {
        "ok": False,
        "error": {
            "type": _text(error.get("type"), MAX_NAME) or "Exception",
            "module": _text(error.get("module"), MAX_NAME),
            "bases": [_text(b, MAX_NAME) for b in bases[:20] if isinstance(b, str)],
            "message": _text(error.get("message"), 2000),
        },
    }


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _encode(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, separators=(",", ":")).encode() + b"\n"
