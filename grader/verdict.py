"""The verdict: the one place that says whether a score passes, and what overrides the score.

Every kind of grade ends here: a rubric's result, a quiz's score, a reviewer's scores. In order:
a tampered run fails outright and waits for no reviewer; a late penalty takes its fraction off the
score, and a pass must still meet the pass mark after it; a result with manual criteria pending has
no verdict yet (`passed` is None).
"""

from __future__ import annotations

from dataclasses import dataclass

# Scores are sums of floats: 0.7 of the points must pass a 0.7 pass mark.
PASS_EPSILON = 1e-9


def meets(fraction: float, mark: float) -> bool:
    """Does `fraction` of the points reach `mark` (a fraction too)?"""
    return fraction >= mark - PASS_EPSILON


@dataclass(frozen=True)
class Verdict:
    score: float
    max_score: float
    passed: bool | None
    needs_review: bool
    late_penalty: float = 0.0
    score_before_penalty: float | None = None


def settle(
    score: float,
    max_score: float,
    passed: bool | None,
    *,
    pass_mark: float,
    needs_review: bool = False,
    tampered: bool = False,
    late_penalty: float = 0.0,
) -> Verdict:
    """The final verdict from a grader's raw one (see the module docstring for the order)."""
    if tampered:
        return Verdict(score, max_score, False, False)
    if not late_penalty:
        return Verdict(score, max_score, passed, needs_review)
    penalised = round(score * (1.0 - late_penalty), 4)
    if passed is True:
        passed = meets(penalised / max_score if max_score else 0.0, pass_mark)
    return Verdict(penalised, max_score, passed, needs_review, late_penalty, score)
