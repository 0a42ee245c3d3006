"""Trying autograders before learners meet them: `grader grade` and the catalog's reference check.

Both grade exactly as a worker does (same intake rules, harness, sandbox and rubric) but store
nothing. The catalog check runs each repository assessment's hidden tests against its reference
solution (every test must pass) and its starter code (some must fail), and records the test ids the
reference produced in `expected_tests.json`, so a test that silently stops running is caught.
The same file records the check itself (when, on which backend, how many tests the reference passed
and the starter failed) for the staff's catalog page. A check that finds the same tests and the same
figures leaves the file untouched: the file is part of the assessment's content, and rewriting only
its date would give the assessment a new version at the next load for nothing changed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grader.catalog.bundle import Bundle, ExpectedTest, ExpectedTests, SelfCheck
from grader.catalog.loader import BUNDLED_FOLDERS_KEY, EXPECTED_TESTS_FILE, Catalog
from grader.catalog.schema import CommandSuite, Isolation, PytestSuite, RepositoryAssessment
from grader.config import Settings
from grader.errors import InvalidInput, NotFound
from grader.intake.archives import extract_archive
from grader.kinds.repository import expected_tests
from grader.services.images import SetupImage, setup_image
from grader.services.repository import (
    RepositoryGrading,
    RepositoryReport,
    list_tree,
    report_feedback,
    rubric_feedback,
    score,
)
from grader.services.workspace import archive_policy
from sandbox.contract import Runner

# Builds a setup image when it is missing (`grader images build` does the same for a whole catalog).
ImageBuilder = Callable[[SetupImage], None]


def _repository(catalog: Catalog, slug: str) -> RepositoryAssessment:
    entry = catalog.assessments.get(slug)
    if entry is None:
        raise NotFound(f"no assessment {slug!r} in the catalog", details={"field": "assessment"})
    if not isinstance(entry.definition, RepositoryAssessment):
        raise InvalidInput(f"{slug!r} is a {entry.definition.kind}, not a repository assessment")
    return entry.definition


def grade_path(
    settings: Settings,
    catalog: Catalog,
    slug: str,
    path: Path,
    runner: Runner,
    *,
    ensure_image: ImageBuilder | None = None,
) -> dict[str, Any]:
    """Grade a local folder or archive as the service would; the result as the API would show it."""
    assessment = _repository(catalog, slug)
    entry = catalog.assessments[slug]
    bundle = Bundle.from_stored(entry.data.get(BUNDLED_FOLDERS_KEY))
    image = _image(assessment, bundle, settings, ensure_image)
    with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
        tree = Path(scratch) / "tree"
        if path.is_dir():
            _copy_work_tree(path, tree)
        elif path.is_file():
            extract_archive(path.read_bytes(), path.name, tree, archive_policy(settings))
        else:
            raise NotFound(f"{path} is neither a folder nor an archive", details={"field": "path"})
        grading = RepositoryGrading(runner, image=image, suites_at_once=settings.sandbox_suites_at_once)
        report = grading.run(assessment, bundle, tree, expected_tests(assessment, entry.data))
    verdict, rubric_result = score(report, catalog.rubrics[assessment.rubric].data)
    return {
        "assessment": slug,
        "backend": runner.name,
        "score": verdict.score,
        "max_score": verdict.max_score,
        "passed": verdict.passed,
        "needs_review": verdict.needs_review,
        **report_feedback(report),
        "rubric": rubric_feedback(rubric_result),
        **({"grader_error": report.grader_error} if report.grader_error else {}),
        **({"not_gradable": report.not_gradable} if report.not_gradable else {}),
    }


def _image(
    assessment: RepositoryAssessment, bundle: Bundle, settings: Settings, ensure_image: ImageBuilder | None
) -> str | None:
    image = setup_image(assessment, bundle, settings.sandbox_image)
    if image is None:
        return None
    if ensure_image is not None:
        ensure_image(image)
    return image.reference


def _copy_work_tree(source: Path, dest: Path) -> None:
    """Regular files only, never `.git`: what a clone hands on to grading."""
    for relative in list_tree(source):
        if relative.split("/")[0] == ".git":
            continue
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, target)


@dataclass(frozen=True)
class AutograderCheck:
    slug: str
    problems: tuple[str, ...]
    expected_tests: tuple[str, ...]
    reference_passed: int
    starter_failed: int


def check_autograders(
    catalog: Catalog,
    runner: Runner,
    *,
    settings: Settings,
    record: bool = True,
    ensure_image: ImageBuilder | None = None,
) -> list[AutograderCheck]:
    """Run every repository assessment's suites on its reference and starter code; pin the tests."""
    checks = []
    for slug, entry in sorted(catalog.assessments.items()):
        assessment = entry.definition
        if not isinstance(assessment, RepositoryAssessment) or entry.folder is None:
            continue
        bundle = Bundle.from_stored(entry.data.get(BUNDLED_FOLDERS_KEY))
        grading = RepositoryGrading(
            runner,
            image=_image(assessment, bundle, settings, ensure_image),
            suites_at_once=settings.sandbox_suites_at_once,
        )
        where = f"{entry.source}"
        problems: list[str] = []
        reference = grading.run(assessment, bundle, entry.folder / assessment.reference)
        failing = [t.id for t in reference.tests if not t.passed]
        if reference.grader_error:
            problems.append(
                f"{where}:1: the autograder failed on the reference solution: {reference.grader_error}"
            )
        elif reference.tampered or not reference.tests:
            problems.append(
                f"{where}:1: the reference solution produced no trustworthy results: {list(reference.notes)}"
            )
        for test_id in failing:
            problems.append(f"{where}:1: the reference solution fails {test_id}")
        for suite_id, total in reference.totals.items():
            if total.points < total.max_points:
                problems.append(
                    f"{where}:1: the reference solution scores {total.points:g} of {total.max_points:g} "
                    f"in suite {suite_id}"
                )
        problems += _maximum_problems(assessment, reference, where)
        starter = grading.run(assessment, bundle, entry.folder / assessment.starter)
        starter_failed = sum(1 for t in starter.tests if not t.passed) + sum(
            1 for t in starter.totals.values() if t.points < t.max_points
        )
        if starter_failed == 0:
            problems.append(
                f"{where}:1: the starter code passes every test: the tests check nothing it lacks"
            )
        reference_passed = len(reference.tests) - len(failing)
        expected = ExpectedTests(
            {
                suite.id: tuple(
                    ExpectedTest(t.id, t.max_points, _slow(suite, t.seconds))
                    for t in reference.tests
                    if t.suite == suite.id
                )
                for suite in assessment.tests
                if isinstance(suite, PytestSuite | CommandSuite)
            },
            self_check=SelfCheck(
                datetime.now(UTC).replace(microsecond=0), runner.name, reference_passed, starter_failed
            ),
        )
        if record and not problems:
            _record(entry.folder / EXPECTED_TESTS_FILE, expected, assessment)
        checks.append(
            AutograderCheck(
                slug,
                tuple(problems),
                tuple(t.id for tests in expected.suites.values() for t in tests),
                reference_passed,
                starter_failed,
            )
        )
    return checks


def _record(path: Path, expected: ExpectedTests, assessment: RepositoryAssessment) -> None:
    """Write expected_tests.json, unless it already says the same (see the module docstring)."""
    pytest_folders = {s.id: s.path for s in assessment.tests if isinstance(s, PytestSuite)}
    try:
        previous = ExpectedTests.from_file_data(json.loads(path.read_text(encoding="utf-8")), pytest_folders)
    except (OSError, ValueError, UnicodeDecodeError):
        previous = None  # missing or unreadable: written afresh
    if (
        previous is not None
        and previous.same_tests(expected)
        and expected.self_check is not None
        and expected.self_check.same_outcome(previous.self_check)
    ):
        return
    path.write_text(json.dumps(expected.to_file_data(), indent=2) + "\n")


def _maximum_problems(assessment: RepositoryAssessment, reference: RepositoryReport, where: str) -> list[str]:
    """A command suite's declared maximum must be what its reference run can reach."""
    problems = []
    for suite in assessment.tests:
        if not isinstance(suite, CommandSuite) or suite.max_points is None or suite.id in reference.totals:
            continue
        reported = sum(t.max_points for t in reference.tests if t.suite == suite.id)
        if abs(reported - suite.max_points) > 1e-6:
            problems.append(
                f"{where}:1: suite {suite.id} declares max_points {suite.max_points:g}, but its tests on the "
                f"reference solution total {reported:g} and results.json gives no score"
            )
    return problems


def _slow(suite: PytestSuite | CommandSuite, seconds: float) -> bool:
    """Whether the reference run found a test too slow to copy into canaries (in-process pytest only)."""
    return (
        isinstance(suite, PytestSuite)
        and suite.isolation is Isolation.NONE
        and suite.canary_max_seconds is not None
        and seconds > suite.canary_max_seconds
    )
