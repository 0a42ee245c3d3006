"""Quiz mechanics: drawing, validation and scoring of every question type."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from grader.catalog.schema import FeedbackPolicy, QuizAssessment
from grader.errors import InvalidInput
from grader.quiz import (
    draw_questions,
    feedback_allows_answers,
    present_questions,
    score_quiz,
    validate_answers,
)
from tests.support.catalogs import BASICS_ANSWERS, BASICS_QUIZ, TIMED_QUIZ

BASICS = QuizAssessment.model_validate(yaml.safe_load(BASICS_QUIZ))
TIMED = QuizAssessment.model_validate(yaml.safe_load(TIMED_QUIZ))
ALL = [q.id for q in BASICS.pools[0].questions]


def points(answers: dict[str, Any]) -> dict[str, float]:
    scored = score_quiz(BASICS, ALL, validate_answers(BASICS, ALL, answers))
    return {q.question_id: q.points for q in scored.questions}


def test_all_right_passes_with_full_marks() -> None:
    scored = score_quiz(BASICS, ALL, validate_answers(BASICS, ALL, BASICS_ANSWERS))
    assert (scored.score, scored.max_score, scored.passed) == (5.0, 5.0, True)


@pytest.mark.parametrize(
    ("picked", "expected"),
    [
        (["get", "head"], 1.0),
        (["get"], 0.5),
        (["get", "post"], 0.0),
        (["get", "head", "post"], 0.5),
        ([], 0.0),
    ],
)
def test_multiple_choice_right_minus_wrong(picked: list[str], expected: float) -> None:
    assert points({"safe-methods": picked})["safe-methods"] == expected


@pytest.mark.parametrize(
    ("answer", "right"),
    [("Content-Type", True), ("  content-TYPE ", True), ("content type:", True), ("Content-Length", False)],
)
def test_short_text_normalised_and_patterns(answer: str, right: bool) -> None:
    assert (points({"header": answer})["header"] == 1.0) is right


def test_numeric_tolerance_and_true_false() -> None:
    assert points({"port": 443.0, "idempotent-put": True}) | {} == {
        "status-created": 0,
        "safe-methods": 0,
        "idempotent-put": 1.0,
        "port": 1.0,
        "header": 0,
    }
    assert points({"port": 443.5})["port"] == 0


def test_pass_mark_is_a_fraction_of_points() -> None:
    three_of_five = {"status-created": "b", "idempotent-put": True, "port": 443}
    assert score_quiz(BASICS, ALL, validate_answers(BASICS, ALL, three_of_five)).passed is False  # 0.6 < 0.75
    four = {**three_of_five, "header": "content-type"}
    assert score_quiz(BASICS, ALL, validate_answers(BASICS, ALL, four)).passed is True  # 0.8


def test_draw_is_reproducible_from_the_seed_and_varies_between_seeds() -> None:
    assert draw_questions(TIMED, 42) == draw_questions(TIMED, 42)
    draws = {tuple(draw_questions(TIMED, seed)) for seed in range(50)}
    assert all(len(d) == 2 and len(set(d)) == 2 for d in draws)
    assert len(draws) > 3


def test_presented_questions_never_carry_answers() -> None:
    shown = present_questions(BASICS, ALL, seed=7)
    assert all(set(q) <= {"id", "type", "prompt", "points", "choices", "unit", "max_length"} for q in shown)
    assert {c["id"] for c in shown[0]["choices"]} == {"a", "b", "c"}


def test_answer_outside_the_draw_is_rejected() -> None:
    drawn = draw_questions(TIMED, 1)
    outside = ({"t1", "t2", "t3"} - set(drawn)).pop()
    with pytest.raises(InvalidInput) as caught:
        validate_answers(TIMED, drawn, {outside: True})
    assert caught.value.details["field"] == f"answers.{outside}"


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_are_rejected(value: float) -> None:
    with pytest.raises(InvalidInput):
        validate_answers(BASICS, ALL, {"port": value})


@pytest.mark.parametrize(
    ("policy", "passed", "left", "shown"),
    [
        (FeedbackPolicy.NEVER, True, 0, False),
        (FeedbackPolicy.AFTER_PASSING, False, 0, False),
        (FeedbackPolicy.AFTER_PASSING, True, 2, True),
        (FeedbackPolicy.AFTER_LAST_ATTEMPT, False, 1, False),
        (FeedbackPolicy.AFTER_LAST_ATTEMPT, False, 0, True),
        (FeedbackPolicy.AFTER_LAST_ATTEMPT, False, None, False),
    ],
)
def test_feedback_policy(policy: FeedbackPolicy, passed: bool, left: int | None, shown: bool) -> None:
    assert feedback_allows_answers(policy, passed=passed, attempts_left=left) is shown
