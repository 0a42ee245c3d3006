"""Scoring a repository report: a tampered run fails even when manual criteria are still open."""

from __future__ import annotations

from grader.services.repository import RepositoryReport, TestOutcome, compile_glob, evidence_from, score
from grader.suites.common import SuiteTotal
from rubrics import Review

RUBRIC = {
    "id": "mixed",
    "title": "Tests and review",
    "pass_mark": 0.5,
    "criteria": [
        {"id": "tests", "title": "Tests", "auto": {"kind": "tests_passed"}, "max_points": 10},
        {
            "id": "style",
            "title": "Style",
            "manual": True,
            "levels": [{"label": "poor", "points": 0}, {"label": "good", "points": 10}],
        },
    ],
}


def report(tampered: bool, totals: dict[str, SuiteTotal] | None = None) -> RepositoryReport:
    tests = (
        TestOutcome("t::a", "hidden", True, 1.0, 1.0, "", "hidden"),
        TestOutcome("grader::b", "grader", True, 2.0, 2.0, "", "visible"),
    )
    return RepositoryReport(
        tests=tests, tampered=tampered, notes=(), files=frozenset({"app.py"}), totals=totals or {}
    )


def test_open_manual_criteria_leave_the_verdict_to_a_reviewer() -> None:
    verdict, _ = score(report(tampered=False), RUBRIC)
    assert verdict.passed is None and verdict.needs_review is True and verdict.score == 10


def test_tampering_fails_at_once_and_asks_no_reviewer() -> None:
    verdict, _ = score(report(tampered=True), RUBRIC)
    assert verdict.passed is False and verdict.needs_review is False


def test_a_suite_total_replaces_its_tests_in_the_evidence() -> None:
    """Gradescope's top-level score overrides the sum of the tests it reports."""
    evidence = evidence_from(report(tampered=False, totals={"grader": SuiteTotal(3.0, 10.0)}))
    assert {(t.id, t.points, t.max_points, t.passed) for t in evidence.tests} == {
        ("t::a", 1.0, 1.0, True),
        ("grader", 3.0, 10.0, False),
    }


def test_a_late_penalty_comes_off_the_score_and_the_pass_is_decided_after_it() -> None:
    review = [Review("style", level="good")]
    on_time, _ = score(report(tampered=False), RUBRIC, review)
    late, _ = score(report(tampered=False), RUBRIC, review, late_penalty=0.6)
    assert (on_time.score, on_time.passed) == (20, True)
    assert (late.score, late.score_before_penalty, late.passed) == (8, 20, False)  # 8 of 20 < 0.5


def test_globs_stay_within_a_folder_unless_doubled() -> None:
    assert compile_glob("*.py").match("app.py") and not compile_glob("*.py").match("pkg/app.py")
    assert compile_glob("**/*.py").match("pkg/sub/app.py") and compile_glob("**/*.py").match("app.py")
    assert not compile_glob("src/*.py").match("src/a/b.py")


def test_a_hidden_suites_own_total_holds_the_whole_total_back() -> None:
    from datetime import UTC, datetime

    from grader.services.repository import Release, visible_tests

    now = datetime.now(UTC)
    tests = [{"id": "a", "passed": True, "points": 1, "max_points": 1, "visibility": "visible"}]
    _, open_total = visible_tests(tests, Release(None, None, now), {"shown": {"visibility": "visible"}})
    _, hidden_total = visible_tests(tests, Release(None, None, now), {"secret": {"visibility": "hidden"}})
    assert (open_total, hidden_total) == (False, True)
