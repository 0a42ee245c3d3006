"""Scoring a repository report: a tampered run fails even when manual criteria are still open."""

from __future__ import annotations

from grader.services.repository import RepositoryReport, TestOutcome, compile_glob, score

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


def report(tampered: bool) -> RepositoryReport:
    tests = (TestOutcome("t::a", "hidden", True, 1.0, 1.0, "", "hidden"),)
    return RepositoryReport(tests=tests, tampered=tampered, notes=(), files=frozenset({"app.py"}))


def test_open_manual_criteria_leave_the_verdict_to_a_reviewer() -> None:
    scored = score(report(tampered=False), RUBRIC)
    assert scored["passed"] is None and scored["needs_review"] is True and scored["score"] == 10


def test_tampering_fails_at_once_and_asks_no_reviewer() -> None:
    scored = score(report(tampered=True), RUBRIC)
    assert scored["passed"] is False and scored["needs_review"] is False


def test_globs_stay_within_a_folder_unless_doubled() -> None:
    assert compile_glob("*.py").match("app.py") and not compile_glob("*.py").match("pkg/app.py")
    assert compile_glob("**/*.py").match("pkg/sub/app.py") and compile_glob("**/*.py").match("app.py")
    assert not compile_glob("src/*.py").match("src/a/b.py")
