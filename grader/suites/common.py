"""What every kind of test suite shares: one test's verdict, one suite's outcome, limits and faults."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from grader.catalog.schema import SandboxLimits
from grader.errors import SandboxUnavailable
from sandbox.contract import Limits, Outcome, RunResult, signal_name

MAX_MESSAGE = 2000


@dataclass(frozen=True)
class TestOutcome:
    """One test's verdict, as staff see it; `visibility` decides what a learner may see of it."""

    __test__ = False  # a domain class whose name only looks like a pytest test class

    id: str
    suite: str
    passed: bool
    points: float
    max_points: float
    message: str
    visibility: str
    detail: Mapping[str, str] = field(default_factory=dict)  # io: stdin/expected/actual
    number: str = ""  # orders tests (Gradescope's "1.2")
    tags: tuple[str, ...] = ()
    seconds: float = 0.0  # pytest: set-up, call and teardown as the box reported them


@dataclass(frozen=True)
class SuiteTotal:
    """A suite's own total, where its grader gave one (Gradescope's top-level score)."""

    points: float
    max_points: float
    visibility: str = "visible"  # the suite's: a hidden suite's total is withheld like its tests


@dataclass(frozen=True)
class SuiteOutcome:
    """What one suite found. `tampered`: its verdict cannot be trusted (pytest in-process only).
    `grader_error`: the course team's grader failed, not the learner (staff detail). `not_gradable`:
    the grader refused the submission as ungradable (PrairieLearn), with the message for the learner."""

    tests: tuple[TestOutcome, ...] = ()
    notes: tuple[str, ...] = ()  # for the learner, too
    staff_notes: tuple[str, ...] = ()  # for staff only: may name hidden tests or quote what the box said
    tampered: bool = False
    total: SuiteTotal | None = None
    grader_error: str | None = None
    not_gradable: str | None = None
    learner_message: str = ""  # what the grader said to the learner (results.json's output)
    calls: int = 0  # isolation: process: calls made into the learner's code
    call_seconds: float = 0.0


def box_limits(limits: SandboxLimits, *, wall_seconds: float | None = None) -> Limits:
    wall = limits.wall_seconds if wall_seconds is None else wall_seconds
    return Limits(
        wall_seconds=wall,
        cpu_seconds=max(1, math.ceil(wall)),
        memory_mb=limits.memory_mb,
        pids=limits.pids,
        output_bytes=limits.output_bytes,
    )


def learner_fault(result: RunResult, what: str = "the tests") -> str:
    """Why the learner's run ended early, in words; empty when it ran to its end."""
    if result.outcome is Outcome.CRASHED and result.signal is not None:
        return f"{what} crashed: {signal_name(result.signal)}"
    return {
        Outcome.TIMEOUT: f"{what} ran out of time",
        Outcome.MEMORY_LIMIT: f"{what} used more memory than allowed",
        Outcome.OUTPUT_LIMIT: f"{what} printed more output than allowed",
        Outcome.KILLED: f"{what} were killed",
        Outcome.CRASHED: f"{what} crashed",
    }.get(result.outcome, "")


def check_sandbox(result: RunResult) -> None:
    """A fault on our side is retried by the worker, never charged to the learner."""
    if result.outcome is Outcome.SANDBOX_ERROR:
        raise SandboxUnavailable(f"the sandbox failed: {result.error or 'unknown error'}")
