"""Trying autograders before learners meet them: `grader grade` and the catalog's reference check.

Both grade exactly as a worker does (same intake rules, harness, sandbox and rubric) but store
nothing. The catalog check runs each repository assessment's hidden tests against its reference
solution (every test must pass) and its starter code (some must fail), and records the test ids the
reference produced in `expected_tests.json`, so a test that silently stops running is caught.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.catalog.loader import BUNDLED_FOLDERS_KEY, EXPECTED_TESTS_FILE, Catalog
from grader.catalog.schema import RepositoryAssessment
from grader.config import Settings
from grader.errors import InvalidInput, NotFound
from grader.intake.archives import extract_archive
from grader.services.repository import RepositoryGrading, list_tree, report_feedback, score
from grader.services.workspace import archive_policy
from sandbox.contract import Runner


def _repository(catalog: Catalog, slug: str) -> RepositoryAssessment:
    entry = catalog.assessments.get(slug)
    if entry is None:
        raise NotFound(f"no assessment {slug!r} in the catalog", details={"field": "assessment"})
    if not isinstance(entry.definition, RepositoryAssessment):
        raise InvalidInput(f"{slug!r} is a {entry.definition.kind}, not a repository assessment")
    return entry.definition


def grade_path(settings: Settings, catalog: Catalog, slug: str, path: Path, runner: Runner) -> dict[str, Any]:
    """Grade a local folder or archive as the service would; the result as the API would show it."""
    assessment = _repository(catalog, slug)
    entry = catalog.assessments[slug]
    with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
        tree = Path(scratch) / "tree"
        if path.is_dir():
            _copy_work_tree(path, tree)
        elif path.is_file():
            extract_archive(path.read_bytes(), path.name, tree, archive_policy(settings))
        else:
            raise NotFound(f"{path} is neither a folder nor an archive", details={"field": "path"})
        report = RepositoryGrading(runner).run(
            assessment, entry.data.get(BUNDLED_FOLDERS_KEY, {}), tree, entry.data.get("expected_tests")
        )
    scored = score(report, catalog.rubrics[assessment.rubric].data)
    return {
        "assessment": slug,
        "backend": runner.name,
        "score": scored["score"],
        "max_score": scored["max_score"],
        "passed": scored["passed"],
        "needs_review": scored["needs_review"],
        **report_feedback(report),
        "rubric": scored["rubric"],
    }


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


def check_autograders(catalog: Catalog, runner: Runner, *, record: bool = True) -> list[AutograderCheck]:
    """Run every repository assessment's tests on its reference and starter code."""
    checks = []
    for slug, entry in sorted(catalog.assessments.items()):
        assessment = entry.definition
        if not isinstance(assessment, RepositoryAssessment) or entry.folder is None:
            continue
        bundle = entry.data.get(BUNDLED_FOLDERS_KEY, {})
        grading = RepositoryGrading(runner)
        where = f"{entry.source}"
        problems: list[str] = []
        reference = grading.run(assessment, bundle, entry.folder / assessment.reference)
        failing = [t.id for t in reference.tests if not t.passed]
        if reference.tampered or not reference.tests:
            problems.append(
                f"{where}:1: the reference solution produced no trustworthy results: {list(reference.notes)}"
            )
        for test_id in failing:
            problems.append(f"{where}:1: the reference solution fails {test_id}")
        starter = grading.run(assessment, bundle, entry.folder / assessment.starter)
        starter_failed = sum(1 for t in starter.tests if not t.passed)
        if starter_failed == 0:
            problems.append(
                f"{where}:1: the starter code passes every test: the tests check nothing it lacks"
            )
        expected = tuple(
            t.id for t in reference.tests if t.suite in {s.id for s in assessment.tests if s.kind == "pytest"}
        )
        if record and not problems:
            (entry.folder / EXPECTED_TESTS_FILE).write_text(json.dumps(list(expected), indent=2) + "\n")
        checks.append(
            AutograderCheck(
                slug, tuple(problems), expected, len(reference.tests) - len(failing), starter_failed
            )
        )
    return checks
