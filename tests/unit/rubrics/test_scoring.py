"""Scoring: exact scores, verdicts and the explanation a learner or reviewer reads."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from rubrics import (
    Evidence,
    Review,
    ReviewError,
    Rubric,
    TestEvidence,
    evaluate,
    load_rubric_text,
    rubric_from_dict,
    validate_review,
)


def rubric(criteria: list[dict[str, Any]], pass_mark: float = 0.5) -> Rubric:
    return rubric_from_dict(
        {"id": "r", "title": "R", "version": 1, "pass_mark": pass_mark, "criteria": criteria},
        "test",
    )


def auto(criterion_id: str, max_points: float, weight: float = 1, **spec: Any) -> dict[str, Any]:
    return {
        "id": criterion_id,
        "title": criterion_id.title(),
        "weight": weight,
        "auto": spec,
        "max_points": max_points,
    }


def results_of(*results: tuple[str, bool, float, float]) -> tuple[TestEvidence, ...]:
    return tuple(TestEvidence(*r) for r in results)


LEVELS = {
    "id": "style",
    "title": "Style",
    "manual": True,
    "levels": [
        {"label": "poor", "points": 0},
        {"label": "adequate", "points": 2},
        {"label": "good", "points": 4},
    ],
}


# --- automatic kinds -----------------------------------------------------------------------------


def test_tests_passed_gives_the_fraction_of_tests_passed() -> None:
    r = rubric([auto("t", 10, kind="tests_passed")])
    ev = Evidence(tests=results_of(("a", True, 1, 1), ("b", False, 0, 1), ("c", True, 1, 1)))
    result = evaluate(r, ev)
    (c,) = result.criteria
    assert (c.points, c.max_points, c.pending, c.manual) == (6.6667, 10, False, False)
    assert c.explanation == "2 of 3 tests passed: 6.67 of 10 points"
    assert result.score == 6.6667 and result.max_score == 10
    assert result.passed is True
    assert result.explanation == "Passed: 6.67 of 10 points (66.6%); pass mark 50%."


def test_tests_passed_with_patterns_counts_missing_tests_as_failed() -> None:
    r = rubric([auto("t", 4, kind="tests_passed", tests=["test_api::*", "test_db::test_save"])])
    ev = Evidence(
        tests=results_of(
            ("test_api::get", True, 1, 1), ("test_api::post", True, 1, 1), ("test_other::x", False, 0, 1)
        )
    )
    (c,) = evaluate(r, ev).criteria
    assert c.points == pytest.approx(2.6667)
    assert c.explanation == ("2 of 3 tests passed (no result for test_db::test_save): 2.67 of 4 points")


def test_tests_passed_without_results_earns_nothing() -> None:
    (c,) = evaluate(rubric([auto("t", 10, kind="tests_passed")]), Evidence()).criteria
    assert c.points == 0
    assert c.explanation == "no test results: 0 of 10 points"


def test_test_points_uses_the_points_of_the_named_tests() -> None:
    r = rubric([auto("t", 10, kind="test_points", tests=["a", "b"])])
    ev = Evidence(tests=results_of(("a", True, 3, 3), ("b", False, 1, 5), ("c", False, 0, 100)))
    (c,) = evaluate(r, ev).criteria
    assert c.points == 5  # 4 of 8 test points -> half of 10
    assert c.explanation == "tests earned 4 of 8 points: 5 of 10 points"


def test_test_points_with_a_missing_named_test_earns_nothing() -> None:
    r = rubric([auto("t", 10, kind="test_points", tests=["a", "gone"])])
    (c,) = evaluate(r, Evidence(tests=results_of(("a", True, 3, 3)))).criteria
    assert c.points == 0
    assert c.explanation == "no result for gone: 0 of 10 points"


def test_lint_thresholds_pick_the_first_band_the_count_fits() -> None:
    spec = {
        "kind": "lint",
        "thresholds": [{"max_warnings": 0, "fraction": 1}, {"max_warnings": 5, "fraction": 0.5}],
    }
    r = rubric([auto("lint", 4, **spec)])
    cases = {
        0: (4, "0 lint warnings (at most 0 earns 100%): 4 of 4 points"),
        1: (2, "1 lint warning (at most 5 earns 50%): 2 of 4 points"),
        5: (2, "5 lint warnings (at most 5 earns 50%): 2 of 4 points"),
        6: (0, "6 lint warnings (more than 5 earns nothing): 0 of 4 points"),
    }
    for count, (points, text) in cases.items():
        (c,) = evaluate(r, Evidence(lint_warnings=count)).criteria
        assert (c.points, c.explanation) == (points, text)
    (c,) = evaluate(r, Evidence()).criteria
    assert (c.points, c.explanation) == (0, "no lint result: 0 of 4 points")


def test_files_present_partial_and_all_or_nothing() -> None:
    files = ["README.md", "docs/*.md", "LICENSE"]
    ev = Evidence(files=frozenset({"README.md", "docs/guide.md", "main.py"}))
    (c,) = evaluate(rubric([auto("f", 3, kind="files_present", files=files)]), ev).criteria
    assert c.points == 2
    assert c.explanation == "2 of 3 required files present (missing LICENSE): 2 of 3 points"
    strict = rubric([auto("f", 3, kind="files_present", files=files, all_or_nothing=True)])
    (c,) = evaluate(strict, ev).criteria
    assert c.points == 0
    complete = Evidence(files=frozenset({"README.md", "docs/a.md", "LICENSE"}))
    (c,) = evaluate(strict, complete).criteria
    assert c.points == 3
    assert c.explanation == "3 of 3 required files present: 3 of 3 points"


def test_quiz_score_scales_the_quiz_fraction() -> None:
    r = rubric([auto("q", 20, kind="quiz_score")])
    (c,) = evaluate(r, Evidence(quiz_fraction=0.85)).criteria
    assert (c.points, c.explanation) == (17, "quiz score 85%: 17 of 20 points")
    (c,) = evaluate(r, Evidence()).criteria
    assert (c.points, c.explanation) == (0, "no quiz score: 0 of 20 points")


# --- levels, items, free points ------------------------------------------------------------------


def test_level_review_gives_the_level_points() -> None:
    r = rubric([LEVELS])
    result = evaluate(r, Evidence(), [Review("style", level="adequate", comment="ok")])
    (c,) = result.criteria
    assert (c.points, c.max_points, c.level, c.manual, c.pending) == (2, 4, "adequate", True, False)
    assert c.explanation == "level 'adequate': 2 of 4 points"
    assert result.passed is True and result.needs_review is False


ITEMS = textwrap.dedent("""\
    id: items
    title: Items
    pass_mark: 0.5
    criteria:
      - id: deductions
        title: Deductions
        manual: true
        mode: negative
        max_points: 5
        floor: 1
        items:
          - {id: no-docs, points: -1}
          - {id: secrets, points: -3}
          - {id: crash, points: -2}
          - {id: bonus, points: 2}
      - id: extras
        title: Extras
        manual: true
        ceiling: 6
        items:
          - {id: tests, points: 2}
          - {id: ci, points: 2}
          - {id: docs, points: 3}
          - {id: typo, points: -1}
""")


def test_negative_items_start_from_the_maximum_and_stop_at_the_floor() -> None:
    r = load_rubric_text(ITEMS, "items.yaml")
    result = evaluate(r, Evidence(), [Review("deductions", items=("no-docs",)), Review("extras", items=())])
    c = result.criterion("deductions")
    assert c.points == 4
    assert c.explanation == "from 5, checked no-docs (-1): 4 of 5 points"
    result = evaluate(r, Evidence(), [Review("deductions", items=("secrets", "crash")), Review("extras")])
    c = result.criterion("deductions")
    assert c.points == 1
    assert c.explanation == (
        "from 5, checked secrets (-3), crash (-2); 0 raised to the floor of 1: 1 of 5 points"
    )


def test_negative_items_cannot_exceed_the_maximum_without_a_ceiling() -> None:
    r = load_rubric_text(ITEMS, "items.yaml")
    result = evaluate(r, Evidence(), [Review("deductions", items=("bonus",)), Review("extras")])
    c = result.criterion("deductions")
    assert c.points == 5
    assert c.explanation == "from 5, checked bonus (+2); 7 capped at the ceiling of 5: 5 of 5 points"


def test_positive_items_start_from_zero_and_allow_extra_credit_up_to_the_ceiling() -> None:
    r = load_rubric_text(ITEMS, "items.yaml")
    extras = r.criterion("extras")
    # The sum of the positive items is 7, but the ceiling caps the maximum at 6.
    assert extras is not None and extras.top_points == 6
    result = evaluate(r, Evidence(), [Review("deductions"), Review("extras", items=("tests",))])
    c = result.criterion("extras")
    assert (c.points, c.max_points) == (2, 6)
    assert c.explanation == "checked tests (+2): 2 of 6 points"
    result = evaluate(r, Evidence(), [Review("deductions"), Review("extras", items=("tests", "ci", "docs"))])
    c = result.criterion("extras")
    assert c.points == 6
    assert c.explanation == (
        "checked tests (+2), ci (+2), docs (+3); 7 capped at the ceiling of 6: 6 of 6 points"
    )
    result = evaluate(r, Evidence(), [Review("deductions"), Review("extras", items=("typo",))])
    c = result.criterion("extras")
    assert c.points == 0
    assert c.explanation == "checked typo (-1); -1 raised to the floor of 0: 0 of 6 points"


def test_extra_credit_cannot_push_the_rubric_above_its_maximum() -> None:
    r = rubric(
        [
            {
                "id": "x",
                "title": "X",
                "manual": True,
                "max_points": 4,
                "ceiling": 8,
                "items": [{"id": "wow", "points": 8}],
            }
        ]
    )
    result = evaluate(r, Evidence(), [Review("x", items=("wow",))])
    assert result.criterion("x").points == 8
    assert (result.score, result.max_score, result.fraction) == (4, 4, 1.0)


def test_free_points_review() -> None:
    r = rubric([{"id": "essay", "title": "Essay", "manual": True, "max_points": 10}])
    result = evaluate(r, Evidence(), [Review("essay", points=7.5)])
    c = result.criterion("essay")
    assert (c.points, c.explanation) == (7.5, "reviewer's points: 7.5 of 10 points")


# --- weights, pass mark, minimums, pending -------------------------------------------------------


def test_weights_multiply_points() -> None:
    r = rubric([auto("t", 10, weight=3, kind="tests_passed"), LEVELS], pass_mark=0.6)
    ev = Evidence(tests=results_of(("a", True, 1, 1), ("b", False, 0, 1)))
    result = evaluate(r, ev, [Review("style", level="good")])
    # 3 * 5 + 1 * 4 = 19 of 3 * 10 + 1 * 4 = 34
    assert (result.score, result.max_score) == (19, 34)
    assert result.fraction == pytest.approx(19 / 34)
    assert result.criterion("t").weighted_points == 15
    assert result.passed is False
    assert result.explanation == "Failed: 19 of 34 points (55.8%), below the pass mark of 60%."


def test_score_exactly_at_the_pass_mark_passes() -> None:
    r = rubric([auto("q", 10, kind="quiz_score")], pass_mark=0.6)
    assert evaluate(r, Evidence(quiz_fraction=0.6)).passed is True
    assert evaluate(r, Evidence(quiz_fraction=0.59)).passed is False


def test_minimum_level_fails_the_rubric_regardless_of_the_total() -> None:
    style = {**LEVELS, "minimum_level": "adequate"}
    r = rubric([auto("t", 100, kind="tests_passed"), style])
    ev = Evidence(tests=results_of(("a", True, 1, 1)))
    result = evaluate(r, ev, [Review("style", level="poor")])
    assert result.score == 100 and result.fraction == pytest.approx(100 / 104)
    assert result.passed is False
    c = result.criterion("style")
    assert c.below_minimum is True
    assert c.explanation == (
        "level 'poor': 0 of 4 points; below the required level 'adequate', "
        "which fails the rubric regardless of the total"
    )
    assert result.explanation == (
        "Failed: style is below the required minimum, which fails the rubric regardless of "
        "the total; 100 of 104 points (96.1%)."
    )
    assert evaluate(r, ev, [Review("style", level="adequate")]).passed is True


def test_minimum_points_on_an_automatic_criterion() -> None:
    r = rubric(
        [{**auto("t", 10, kind="tests_passed"), "minimum_points": 5}, auto("q", 90, kind="quiz_score")]
    )
    ev = Evidence(
        tests=results_of(("a", True, 1, 1), ("b", False, 0, 1), ("c", False, 0, 1)), quiz_fraction=1.0
    )
    result = evaluate(r, ev)
    assert result.passed is False
    assert result.criterion("t").explanation == (
        "1 of 3 tests passed: 3.33 of 10 points; below the required 5 points, "
        "which fails the rubric regardless of the total"
    )


def test_unreviewed_manual_criterion_is_pending() -> None:
    r = rubric([auto("t", 10, kind="tests_passed"), LEVELS])
    result = evaluate(r, Evidence(tests=results_of(("a", True, 1, 1))))
    assert result.needs_review is True
    assert result.passed is None
    c = result.criterion("style")
    assert (c.pending, c.points, c.level) == (True, 0, None)
    assert c.explanation == "awaiting review: 0 of 4 points counted so far"
    assert result.explanation == "Awaiting review of style; 10 of 14 points (71.4%) so far."
    done = evaluate(r, Evidence(tests=results_of(("a", True, 1, 1))), [Review("style", level="poor")])
    assert (done.needs_review, done.passed) == (False, True)


def test_result_records_the_rubric_version_and_hash() -> None:
    r = rubric([LEVELS])
    result = evaluate(r, Evidence(), [Review("style", level="good")])
    assert (result.rubric_id, result.rubric_version) == ("r", 1)
    assert result.content_hash == r.content_hash


def test_evaluate_is_deterministic() -> None:
    r = rubric([auto("t", 10, weight=1.5, kind="tests_passed"), LEVELS])
    ev = Evidence(tests=results_of(*((f"t{i}", i % 3 == 0, 1, 1) for i in range(30))))
    reviews = [Review("style", level="adequate")]
    assert evaluate(r, ev, reviews) == evaluate(r, ev, tuple(reviews))


# --- review validation ---------------------------------------------------------------------------

MIXED = [
    auto("t", 10, kind="tests_passed"),
    LEVELS,
    {"id": "essay", "title": "Essay", "manual": True, "max_points": 10},
    {
        "id": "ded",
        "title": "Deductions",
        "manual": True,
        "mode": "negative",
        "max_points": 3,
        "items": [{"id": "a", "points": -1}],
    },
]


@pytest.mark.parametrize(
    ("review", "message"),
    [
        (
            Review("nope", level="good"),
            "review for unknown criterion 'nope' (rubric 'r' has: t, style, essay, ded)",
        ),
        (Review("t", points=3), "criterion 't' is scored automatically from evidence and cannot be reviewed"),
        (
            Review("style", level="great"),
            "criterion 'style' has no level 'great' (levels: poor, adequate, good)",
        ),
        (Review("style"), "criterion 'style' needs a level (one of: poor, adequate, good)"),
        (Review("style", points=2), "criterion 'style' is scored by level, not by points"),
        (Review("essay", points=11), "points 11 for criterion 'essay' are out of bounds (0 to 10)"),
        (Review("essay", points=-1), "points -1 for criterion 'essay' are out of bounds (0 to 10)"),
        (
            Review("essay", points=float("nan")),
            "points nan for criterion 'essay' are out of bounds (0 to 10)",
        ),
        (Review("essay"), "criterion 'essay' needs points between 0 and 10"),
        (Review("ded", items=("b",)), "criterion 'ded' has no item 'b' (items: a)"),
        (Review("ded", items=("a", "a")), "criterion 'ded': an item is checked more than once"),
        (Review("ded", level="x"), "criterion 'ded' is scored by items, not by level"),
    ],
)
def test_invalid_reviews_name_the_criterion(review: Review, message: str) -> None:
    r = rubric(MIXED)
    with pytest.raises(ReviewError) as info:
        validate_review(r, [review])
    assert str(info.value) == message
    with pytest.raises(ReviewError):
        evaluate(r, Evidence(), [review])


def test_two_reviews_for_one_criterion_are_rejected() -> None:
    with pytest.raises(ReviewError, match="criterion 'style' has more than one review"):
        validate_review(rubric(MIXED), [Review("style", level="good"), Review("style", level="poor")])


def test_valid_reviews_pass_validation() -> None:
    reviews = [Review("style", level="good"), Review("essay", points=0), Review("ded")]
    validate_review(rubric(MIXED), reviews)  # does not raise
    assert evaluate(rubric(MIXED), Evidence(), reviews).needs_review is False


# --- evidence ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TestEvidence("a", True, float("nan"), 1), "points of test 'a' must be a finite"),
        (lambda: TestEvidence("a", True, -1, 1), "points of test 'a' must not be negative"),
        (lambda: Evidence(tests=results_of(("a", True, 1, 1), ("a", False, 0, 1))), "duplicate test id 'a'"),
        (lambda: Evidence(lint_warnings=-2), "lint_warnings must be a count >= 0"),
        (lambda: Evidence(quiz_fraction=1.5), "quiz_fraction must be between 0 and 1"),
        (lambda: Evidence(quiz_fraction=float("inf")), "quiz_fraction must be a finite number"),
    ],
)
def test_bad_evidence_is_rejected_where_it_is_made(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
