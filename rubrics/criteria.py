"""Automatic criterion kinds and the registry `CRITERIA` that names them.

An automatic criterion turns evidence into a fraction between 0 and 1 (the share of the criterion's
`max_points` earned) plus a short phrase saying why. Each kind is a small pydantic model holding its
parameters, as written under `auto:` in a rubric file, with a `measure(evidence)` method.

To add a kind: write a subclass of `AutoCriterion` with a `kind: Literal["name"] = "name"` field and
add it to `CRITERIA`. The rubric model builds its `auto:` field from this dict, so nothing else
changes; an unknown `kind` in a file is then reported with the list of known kinds.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator
from pydantic.types import Strict

from rubrics.evidence import Evidence, TestEvidence

# Strict numbers: YAML "3" (a string) or `yes` (a bool) is a mistake, not a number to coerce.
Number = Annotated[float, Strict()]
Fraction = Annotated[float, Strict(), Field(ge=0, le=1)]


def fmt(value: float) -> str:
    """A number for people: at most two decimals, no trailing zeros (7, 6.67, 0.5)."""
    rounded = round(value, 2)
    if rounded == 0:
        return "0"  # avoid "-0" from tiny negative floating error
    return f"{rounded:g}" if abs(rounded) < 1e15 else str(rounded)


def percent(fraction: float) -> str:
    """A fraction as a percentage, rounded down to one decimal so 0.5999 never shows as 60%."""
    tenths = int(fraction * 1000 + 1e-9) / 10
    return f"{tenths:g}%"


@dataclass(frozen=True)
class Measure:
    """What an automatic criterion found: the fraction of its points earned, and why."""

    fraction: float
    explanation: str


class AutoCriterion(BaseModel):
    """Base of every automatic kind; subclasses add a `kind` literal and their parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def measure(self, evidence: Evidence) -> Measure:
        raise NotImplementedError

    def best_fraction(self) -> float:
        """The largest fraction this kind can award; used to check a pass mark is reachable."""
        return 1.0


def _select(
    tests: tuple[TestEvidence, ...], patterns: tuple[str, ...]
) -> tuple[list[TestEvidence], list[str]]:
    """Tests matching any pattern (all tests when there are none), and patterns matching nothing."""
    if not patterns:
        return list(tests), []
    chosen = [t for t in tests if any(fnmatch.fnmatchcase(t.id, p) for p in patterns)]
    missing = [p for p in patterns if not any(fnmatch.fnmatchcase(t.id, p) for t in tests)]
    return chosen, missing


class TestsPassed(AutoCriterion):
    """Fraction of tests passed. `tests` (glob patterns on test ids) narrows the set; a pattern that
    matches no result counts as one failed test, so a crashed or skipped test never helps."""

    __test__ = False  # not a pytest test class

    kind: Literal["tests_passed"] = "tests_passed"
    tests: tuple[StrictStr, ...] = ()

    def measure(self, evidence: Evidence) -> Measure:
        chosen, missing = _select(evidence.tests, self.tests)
        total = len(chosen) + len(missing)
        if total == 0:
            return Measure(0.0, "no test results")
        passed = sum(1 for t in chosen if t.passed)
        text = f"{passed} of {total} tests passed"
        if missing:
            text += f" (no result for {', '.join(missing)})"
        return Measure(passed / total, text)


class TestPoints(AutoCriterion):
    """Points earned by the tests (or the named tests) out of their maximum. If any named test has
    no result the criterion earns nothing: its maximum is unknown, and dropping a failing test must
    not raise the score."""

    __test__ = False

    kind: Literal["test_points"] = "test_points"
    tests: tuple[StrictStr, ...] = ()

    def measure(self, evidence: Evidence) -> Measure:
        chosen, missing = _select(evidence.tests, self.tests)
        if missing:
            return Measure(0.0, f"no result for {', '.join(missing)}")
        possible = sum(t.max_points for t in chosen)
        if possible <= 0:
            return Measure(0.0, "no test points available")
        earned = sum(min(t.points, t.max_points) for t in chosen)
        return Measure(earned / possible, f"tests earned {fmt(earned)} of {fmt(possible)} points")


class LintThreshold(BaseModel):
    """At most `max_warnings` warnings earn `fraction` of the criterion's points."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_warnings: Annotated[StrictInt, Field(ge=0)]
    fraction: Fraction


class LintWarnings(AutoCriterion):
    """A warning count graded by thresholds: the first threshold the count fits decides the
    fraction; more warnings than the last threshold earn nothing."""

    kind: Literal["lint"] = "lint"
    thresholds: Annotated[tuple[LintThreshold, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _ordered(self) -> LintWarnings:
        # Out-of-order thresholds would make "first fit" pick a harsher band than intended.
        for before, after in zip(self.thresholds, self.thresholds[1:], strict=False):
            if after.max_warnings <= before.max_warnings:
                raise ValueError("thresholds must list max_warnings in increasing order")
            if after.fraction > before.fraction:
                raise ValueError("more warnings must not earn a larger fraction")
        return self

    def best_fraction(self) -> float:
        return self.thresholds[0].fraction

    def measure(self, evidence: Evidence) -> Measure:
        count = evidence.lint_warnings
        if count is None:
            return Measure(0.0, "no lint result")
        noun = "warning" if count == 1 else "warnings"
        for band in self.thresholds:
            if count <= band.max_warnings:
                return Measure(
                    band.fraction,
                    f"{count} lint {noun} (at most {band.max_warnings} earns {percent(band.fraction)})",
                )
        last = self.thresholds[-1].max_warnings
        return Measure(0.0, f"{count} lint {noun} (more than {last} earns nothing)")


class FilesPresent(AutoCriterion):
    """Required files (glob patterns on relative paths): the fraction present, or all or nothing."""

    kind: Literal["files_present"] = "files_present"
    files: Annotated[tuple[StrictStr, ...], Field(min_length=1)]
    all_or_nothing: StrictBool = False

    def measure(self, evidence: Evidence) -> Measure:
        missing = [p for p in self.files if not any(fnmatch.fnmatchcase(f, p) for f in evidence.files)]
        present = len(self.files) - len(missing)
        text = f"{present} of {len(self.files)} required files present"
        if missing:
            text += f" (missing {', '.join(missing)})"
        if self.all_or_nothing:
            return Measure(0.0 if missing else 1.0, text)
        return Measure(present / len(self.files), text)


class QuizScore(AutoCriterion):
    """The quiz score (a fraction) becomes the same fraction of the criterion's points."""

    kind: Literal["quiz_score"] = "quiz_score"

    def measure(self, evidence: Evidence) -> Measure:
        if evidence.quiz_fraction is None:
            return Measure(0.0, "no quiz score")
        return Measure(evidence.quiz_fraction, f"quiz score {percent(evidence.quiz_fraction)}")


# The one place automatic kinds are registered: `kind` in a rubric file -> parameter model.
CRITERIA: dict[str, type[AutoCriterion]] = {
    "tests_passed": TestsPassed,
    "test_points": TestPoints,
    "lint": LintWarnings,
    "files_present": FilesPresent,
    "quiz_score": QuizScore,
}
