"""Scoring: `evaluate(rubric, evidence, reviews) -> RubricResult`, and review validation.

The formula, for criteria i with raw points p_i, maximum m_i (`Criterion.top_points`) and weight w_i:

    score     = min(sum(w_i * p_i), max_score)        # extra credit cannot exceed 100%
    max_score = sum(w_i * m_i)
    fraction  = score / max_score
    passed    = fraction >= pass_mark and every minimum (minimum_level / minimum_points) is met

A weight multiplies a criterion's points, so with every weight at 1 the score is the plain sum of
points. Raw points per criterion are rounded to 4 decimals, so results are stable across runs.
A manual criterion without a review is *pending*: it counts 0 points, `needs_review` is True and
`passed` is None (the verdict waits for the reviewer even when it already looks lost or won).
A criterion below its minimum makes the rubric fail whatever the total, and its explanation says so.

`evaluate` is a pure function: no I/O, no clock, no randomness; the same inputs give the same result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rubrics.criteria import fmt, percent
from rubrics.evidence import Evidence, Review
from rubrics.model import Criterion, Rubric

_DIGITS = 4
_EPSILON = 1e-9


class ReviewError(ValueError):
    """A review does not fit the rubric (unknown criterion or level, points out of bounds, ...)."""


@dataclass(frozen=True)
class CriterionResult:
    """How one criterion scored. `points`/`max_points` are before weighting."""

    id: str
    title: str
    points: float
    max_points: float
    weight: float
    level: str | None
    explanation: str
    manual: bool
    pending: bool
    below_minimum: bool = False

    @property
    def weighted_points(self) -> float:
        return round(self.points * self.weight, _DIGITS)

    @property
    def weighted_max(self) -> float:
        return round(self.max_points * self.weight, _DIGITS)


@dataclass(frozen=True)
class RubricResult:
    """The outcome of one rubric on one submission; records which rubric version produced it."""

    rubric_id: str
    rubric_version: int | None
    content_hash: str
    score: float
    max_score: float
    fraction: float
    pass_mark: float
    passed: bool | None
    needs_review: bool
    criteria: tuple[CriterionResult, ...]
    explanation: str

    def criterion(self, criterion_id: str) -> CriterionResult:
        for result in self.criteria:
            if result.id == criterion_id:
                return result
        raise KeyError(criterion_id)


def validate_review(rubric: Rubric, reviews: Iterable[Review]) -> None:
    """Raise `ReviewError` naming the criterion if any review does not fit `rubric`."""
    _index_reviews(rubric, reviews)


def _index_reviews(rubric: Rubric, reviews: Iterable[Review]) -> dict[str, Review]:
    by_id: dict[str, Review] = {}
    for review in reviews:
        criterion = rubric.criterion(review.criterion_id)
        if criterion is None:
            known = ", ".join(c.id for c in rubric.criteria)
            raise ReviewError(
                f"review for unknown criterion {review.criterion_id!r} (rubric {rubric.id!r} has: {known})"
            )
        if review.criterion_id in by_id:
            raise ReviewError(f"criterion {criterion.id!r} has more than one review")
        _check_review(criterion, review)
        by_id[criterion.id] = review
    return by_id


def _check_review(c: Criterion, review: Review) -> None:
    name = f"criterion {c.id!r}"
    if c.auto is not None:
        raise ReviewError(f"{name} is scored automatically from evidence and cannot be reviewed")
    given = [
        key
        for key, value in (
            ("level", review.level),
            ("points", review.points),
            ("items", review.items or None),
        )
        if value is not None
    ]
    expected = {"levels": "level", "items": "items", "points": "points"}[c.scoring]
    wrong = [key for key in given if key != expected]
    if wrong:
        raise ReviewError(f"{name} is scored by {expected}, not by {' or '.join(wrong)}")
    if c.scoring == "levels":
        labels = ", ".join(lv.label for lv in c.levels)
        if review.level is None:
            raise ReviewError(f"{name} needs a level (one of: {labels})")
        if c.level(review.level) is None:
            raise ReviewError(f"{name} has no level {review.level!r} (levels: {labels})")
    elif c.scoring == "items":
        known = {item.id for item in c.items}
        for item_id in review.items:
            if item_id not in known:
                raise ReviewError(
                    f"{name} has no item {item_id!r} (items: {', '.join(i.id for i in c.items)})"
                )
        if len(set(review.items)) != len(review.items):
            raise ReviewError(f"{name}: an item is checked more than once")
    else:
        points = review.points
        if points is None:
            raise ReviewError(f"{name} needs points between 0 and {fmt(c.top_points)}")
        if (
            isinstance(points, bool)
            or not isinstance(points, int | float)
            or not math.isfinite(points)
            or not 0 <= points <= c.top_points
        ):
            raise ReviewError(f"points {points!r} for {name} are out of bounds (0 to {fmt(c.top_points)})")


def evaluate(rubric: Rubric, evidence: Evidence, reviews: Iterable[Review] = ()) -> RubricResult:
    """Score `rubric` from `evidence` and `reviews` (see the module docstring for the formula).

    Raises `ReviewError` if a review does not fit the rubric.
    """
    by_id = _index_reviews(rubric, reviews)
    results = tuple(_score(c, evidence, by_id) for c in rubric.criteria)
    max_score = round(rubric.max_score, _DIGITS)
    total = round(math.fsum(r.points * r.weight for r in results), _DIGITS)
    score = min(total, max_score)
    fraction = round(score / max_score, 6) if max_score > 0 else 0.0
    pending = [r.id for r in results if r.pending]
    below = [r for r in results if r.below_minimum]
    summary = f"{fmt(score)} of {fmt(max_score)} points ({percent(fraction)})"
    passed: bool | None
    if pending:
        passed = None
        explanation = f"Awaiting review of {', '.join(pending)}; {summary} so far."
    elif below:
        passed = False
        names = ", ".join(r.id for r in below)
        verb = "is" if len(below) == 1 else "are"
        explanation = (
            f"Failed: {names} {verb} below the required minimum, which fails the rubric "
            f"regardless of the total; {summary}."
        )
    elif fraction >= rubric.pass_mark - _EPSILON:
        passed = True
        explanation = f"Passed: {summary}; pass mark {percent(rubric.pass_mark)}."
    else:
        passed = False
        explanation = f"Failed: {summary}, below the pass mark of {percent(rubric.pass_mark)}."
    return RubricResult(
        rubric_id=rubric.id,
        rubric_version=rubric.version,
        content_hash=rubric.content_hash,
        score=score,
        max_score=max_score,
        fraction=fraction,
        pass_mark=rubric.pass_mark,
        passed=passed,
        needs_review=bool(pending),
        criteria=results,
        explanation=explanation,
    )


def _score(c: Criterion, evidence: Evidence, reviews: Mapping[str, Review]) -> CriterionResult:
    top = c.top_points
    level: str | None = None
    review = reviews.get(c.id)
    if c.auto is not None:
        measure = c.auto.measure(evidence)
        points = measure.fraction * top
        what = measure.explanation
    elif review is None:
        return CriterionResult(
            c.id,
            c.title,
            0.0,
            top,
            c.weight,
            None,
            f"awaiting review: 0 of {fmt(top)} points counted so far",
            manual=True,
            pending=True,
        )
    elif c.scoring == "levels":
        assert review.level is not None  # checked by _check_review
        chosen = c.level(review.level)
        assert chosen is not None
        points, level = chosen.points, chosen.label
        what = f"level {chosen.label!r}"
    elif c.scoring == "items":
        points, what = _score_items(c, review.items)
    else:
        assert review.points is not None
        points = float(review.points)
        what = "reviewer's points"
    points = round(points, _DIGITS)
    explanation = f"{what}: {fmt(points)} of {fmt(top)} points"
    below = False
    if c.minimum_level is not None and level is not None:
        required = c.level(c.minimum_level)
        assert required is not None  # guaranteed by the model's rules
        if points < required.points:
            below = True
            explanation += (
                f"; below the required level {required.label!r}, "
                f"which fails the rubric regardless of the total"
            )
    if c.minimum_points is not None and points < c.minimum_points - _EPSILON:
        below = True
        explanation += (
            f"; below the required {fmt(c.minimum_points)} points, "
            f"which fails the rubric regardless of the total"
        )
    return CriterionResult(
        c.id,
        c.title,
        points,
        top,
        c.weight,
        level,
        explanation,
        manual=c.auto is None,
        pending=False,
        below_minimum=below,
    )


def _score_items(c: Criterion, checked: tuple[str, ...]) -> tuple[float, str]:
    chosen = [item for item in c.items if item.id in set(checked)]
    start = c.top_points if c.mode == "negative" else 0.0
    raw = start + math.fsum(item.points for item in chosen)
    points = c.clamp(raw)
    parts = [f"{item.id} ({'+' if item.points >= 0 else ''}{fmt(item.points)})" for item in chosen]
    what = f"from {fmt(start)}, " if c.mode == "negative" else ""
    what += f"checked {', '.join(parts)}" if parts else "no items checked"
    if points > raw:
        what += f"; {fmt(raw)} raised to the floor of {fmt(points)}"
    elif points < raw:
        what += f"; {fmt(raw)} capped at the ceiling of {fmt(points)}"
    return points, what
