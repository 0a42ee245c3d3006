"""What a rubric is scored from: evidence gathered by the graders, and reviews written by people.

This module owns the plain, frozen values that cross the boundary into the rubric engine:
`Evidence` (test results, files present, lint warnings, quiz score) and `Review` (a reviewer's
verdict on one manual criterion). They are dataclasses, not pydantic models, because they are built
by our own code (workers, services) rather than parsed from files; they still check their invariants
on construction so that a bad value fails where it is made, not deep inside scoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _check_amount(what: str, value: float) -> None:
    # NaN compares false with everything, so it would slip through every bound check later on.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")


@dataclass(frozen=True)
class TestEvidence:
    """The result of one test: whether it passed and the points it earned out of its maximum."""

    __test__ = False  # keep pytest from collecting this class because its name starts with "Test"

    id: str
    passed: bool
    points: float
    max_points: float

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a test result needs an id")
        _check_amount(f"points of test {self.id!r}", self.points)
        _check_amount(f"max_points of test {self.id!r}", self.max_points)


@dataclass(frozen=True)
class Evidence:
    """Everything the automatic criteria may look at. A value left as None means "not measured"."""

    tests: tuple[TestEvidence, ...] = ()
    files: frozenset[str] = frozenset()
    lint_warnings: int | None = None
    quiz_fraction: float | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for test in self.tests:
            # Criteria look tests up by id; two results under one id would make that ambiguous.
            if test.id in seen:
                raise ValueError(f"duplicate test id {test.id!r} in evidence")
            seen.add(test.id)
        if self.lint_warnings is not None and (
            isinstance(self.lint_warnings, bool)
            or not isinstance(self.lint_warnings, int)
            or self.lint_warnings < 0
        ):
            raise ValueError(f"lint_warnings must be a count >= 0, got {self.lint_warnings!r}")
        if self.quiz_fraction is not None:
            _check_amount("quiz_fraction", self.quiz_fraction)
            if self.quiz_fraction > 1:
                raise ValueError(f"quiz_fraction must be between 0 and 1, got {self.quiz_fraction!r}")


@dataclass(frozen=True)
class Review:
    """A reviewer's verdict on one manual criterion.

    Exactly one way of scoring applies, decided by the criterion: pick a `level` (criteria with
    levels), check point `items` by id (criteria with items), or give `points` within bounds
    (criteria with only `max_points`). `validate_review` enforces this against the rubric.
    """

    criterion_id: str
    level: str | None = None
    points: float | None = None
    items: tuple[str, ...] = ()
    comment: str = ""
