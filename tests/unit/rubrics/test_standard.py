"""The rubrics shipped in rubrics/standard/ load and score as documented."""

from __future__ import annotations

from rubrics import (
    Evidence,
    Review,
    TestEvidence,
    evaluate,
    load_rubric,
    standard_rubric_paths,
)


def test_standard_rubrics_are_shipped_and_load() -> None:
    paths = standard_rubric_paths()
    assert {p.name for p in paths} >= {"code-review.yaml", "portfolio-review.yaml"}
    for path in paths:
        rubric = load_rubric(path)
        assert rubric.id == path.stem
        assert rubric.version is not None


def test_code_review_end_to_end() -> None:
    rubric = load_rubric(next(p for p in standard_rubric_paths() if p.name == "code-review.yaml"))
    evidence = Evidence(
        tests=tuple(TestEvidence(f"t{i}", i < 8, float(i < 8), 1.0) for i in range(10)),
        files=frozenset({"README.md", "requirements.txt", "app.py"}),
    )
    pending = evaluate(rubric, evidence)
    assert pending.needs_review is True and pending.passed is None
    reviews = [
        Review("readability", level="good"),
        Review("design", level="adequate"),
        Review("deductions", items=("no-docstrings",)),
    ]
    result = evaluate(rubric, evidence, reviews)
    # tests 3 * 8 + files 2 + readability 4 + design 2 + deductions 5 - 1 = 36 of 45
    assert (result.score, result.max_score) == (36, 45)
    assert result.passed is True
    assert result.explanation == "Passed: 36 of 45 points (80%); pass mark 60%."


def test_portfolio_review_is_all_manual() -> None:
    rubric = load_rubric(next(p for p in standard_rubric_paths() if p.name == "portfolio-review.yaml"))
    assert all(c.manual for c in rubric.criteria)
    result = evaluate(
        rubric,
        Evidence(),
        [
            Review("evidence", level="missing"),
            Review("reflection", level="exemplary"),
            Review("communication", level="compelling"),
        ],
    )
    assert result.passed is False  # evidence below its minimum level, whatever the total
    assert result.criterion("evidence").below_minimum is True
