"""`isolation: process`: the grader's end of the channel between the hidden tests and the learner's code.

The box that runs the hidden tests holds no learner code. Each time a test calls into a learner
module, its box writes a request line; `LearnerBox.serve` hands it to the learner's own box (the
learner's files and `call_server.py`, nothing else), where a fresh process serves that one call,
and passes back to the tests only what survives a strict reading of the answer: a JSON value, or an
exception's name, bases and message, each size-capped. Everything from the learner's box is
untrusted; the two boxes share nothing, and only this process joins them.
"""

from __future__ import annotations

import json
import keyword
import queue
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from grader.catalog.schema import SandboxLimits
from grader.errors import SandboxUnavailable
from grader.harness import script
from grader.harness.image import IMAGE_PACKAGES
from grader.suites.common import box_limits, learner_fault
from sandbox.contract import BoxFile, JobSpec, Outcome, Runner, RunResult

MAX_CALLS = 5000
MAX_ANSWER_BYTES = 1_000_000
MAX_NAME = 200
# How the call server says a call ended without an answer of the learner's code.
CALL_FAULTS = frozenset({"timeout", "crashed", "no_answer"})
# Never served as learner modules: the tests' own imports must reach the real thing.
RESERVED_MODULES = frozenset(sys.stdlib_module_names) | IMAGE_PACKAGES


def learner_modules(
    files: Mapping[str, bytes], test_files: Mapping[str, bytes]
) -> tuple[list[str], list[str]]:
    """Importable module names among the learner's files, and the files left out because their name
    belongs to the standard library, pytest or the hidden tests (so the tests import the real one)."""
    # Every module and package the tests' box holds, at any depth: a learner file must never stand
    # in for a course team's helper, whatever package it sits in.
    test_names: set[str] = set()
    for path in test_files:
        test_names.update(path.removesuffix(".py").split("/"))
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
        if parts[0] in RESERVED_MODULES or any(part in test_names for part in parts):
            left_out.append(path)
            continue
        for depth in range(1, len(parts) + 1):
            names.add(".".join(parts[:depth]))
    return sorted(names), left_out


class LearnerBox:
    """The learner's own box for one suite: a call server that forks a fresh process per call.

    The box runs for as long as the tests' box does, driven from a thread of its own through the
    runner's line channel: each request the tests send is handed to it, and its answer handed back.
    One box per suite, one process per call: a call costs a fork and an import, not a box."""

    def __init__(
        self,
        runner: Runner,
        learner_files: Mapping[str, bytes],
        limits: SandboxLimits,
        *,
        wall_seconds: float,
        image: str | None = None,
    ) -> None:
        self.runner = runner
        self.limits = limits
        self.calls = 0
        self.seconds = 0.0
        self.result: RunResult | None = None
        self._deadline = time.monotonic() + wall_seconds
        self._requests: queue.Queue[bytes | None] = queue.Queue()
        self._answers: queue.Queue[bytes | None] = queue.Queue()
        self._ready = False
        self._gone = False
        memory = limits.memory_mb * 1024 * 1024
        self._spec = JobSpec(
            command=("python3", "-I", "_harness/call_server.py", str(memory), f"{limits.call_seconds:g}"),
            files=(
                *(BoxFile(f"submission/{name}", content) for name, content in learner_files.items()),
                BoxFile("_harness/call_server.py", script("call_server.py")),
            ),
            limits=box_limits(limits, wall_seconds=wall_seconds),
            image=image,
        )
        self._thread = threading.Thread(target=self._run, name="learner-box", daemon=True)

    def __enter__(self) -> LearnerBox:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._requests.put(None)  # the tests are done: the call server may stop
        self._thread.join(timeout=max(5.0, self._deadline - time.monotonic() + 5.0))

    def _run(self) -> None:
        try:
            self.result = self.runner.run(self._spec, serve=self._serve_box)
        finally:
            self._answers.put(None)  # wakes a caller still waiting: the box is gone

    def _serve_box(self, line: bytes) -> bytes:
        """The learner box's side of the channel: every line it writes is an answer (the first says it
        is ready); what it gets back is the next request, or the word to stop."""
        if self._ready:
            self._answers.put(line)
        self._ready = True
        try:
            request = self._requests.get(timeout=max(0.1, self._deadline - time.monotonic()))
        except queue.Empty:
            request = None
        return request if request is not None else b'{"exit": true}\n'

    def serve(self, line: bytes) -> bytes:
        """The tests' side: answer one request line from the tests' box; raise only for our fault."""
        try:
            request = json.loads(line)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return _encode(
                {"ok": False, "fault": "channel", "message": "the test box sent an unreadable line"}
            )
        self.calls += 1
        if self.calls > MAX_CALLS:
            return _encode(
                {"ok": False, "fault": "too_many_calls", "message": f"more than {MAX_CALLS} calls"}
            )
        if self._gone:
            return _encode(self._box_gone())
        forwarded = {
            key: request[key] for key in ("describe", "call", "function", "args", "kwargs") if key in request
        }
        started = time.monotonic()
        self._requests.put(json.dumps(forwarded).encode() + b"\n")
        try:
            # The call server bounds each call itself; the margin covers a server that stopped answering.
            answer = self._answers.get(timeout=self.limits.call_seconds + 10)
        except queue.Empty:
            answer = None
        self.seconds += time.monotonic() - started
        if answer is None:
            self._gone = True  # every later call answers at once: the box will not come back
            return _encode(self._box_gone())
        return _encode(_read_answer(answer))

    def _box_gone(self) -> dict[str, Any]:
        self._thread.join(timeout=10)
        result = self.result
        if result is not None and result.outcome is Outcome.SANDBOX_ERROR:
            raise SandboxUnavailable(f"the sandbox failed running the learner's code: {result.error}")
        why = learner_fault(result, "the learner's code") if result is not None else ""
        return {"ok": False, "fault": "box_gone", "message": why or "the learner's code stopped answering"}


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
    if answer.get("fault") in CALL_FAULTS:
        return {"ok": False, "fault": answer["fault"], "message": _text(answer.get("message"), 500)}
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
