"""Repository grading: hidden tests in the sandbox, evidence checked outside it, then the rubric.

Three kinds of test suites, mixable in one assessment:

* `pytest`: the hidden tests run against the learner's allow-listed files in one box. The harness owns
  pytest's configuration; the verdict is computed here from the harness's report, which is believed
  only if the must-fail canary failed and the report exists (else the run is marked tampered).
  Expected test ids that did not run count as failed.
* `io`: each case runs the learner's command in its own box; stdout is compared here, outside the box,
  so the learner's process cannot forge the comparison.
* `command`: the course team's grader writes a Gradescope or PrairieLearn `results.json`, read through
  `sandbox.adapters`.

Only `sandbox_error` (a fault on our side) raises `SandboxUnavailable`; everything the learner's code
does (fail, crash, time out, exhaust memory) is a result.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from grader.catalog.schema import (
    CommandSuite,
    IoCase,
    IoCompare,
    PytestSuite,
    RepositoryAssessment,
    SandboxLimits,
    Visibility,
)
from grader.errors import SandboxUnavailable
from grader.harness import script
from rubrics import Evidence, Review, RubricResult, TestEvidence, evaluate, rubric_from_dict
from sandbox.adapters import ResultsFormatError, parse_results_json
from sandbox.contract import BoxFile, JobSpec, Limits, Outcome, Runner, RunResult

# Files a learner may never place next to the tests: each can change how pytest or Python behave.
FORBIDDEN_NAMES = frozenset(
    {
        "conftest.py",
        "sitecustomize.py",
        "usercustomize.py",
        "pytest.ini",
        "pyproject.toml",
        "setup.cfg",
        "tox.ini",
        "results.json",
    }
)
FORBIDDEN_SUFFIXES = (".pth", ".pyc")
MAX_LEARNER_FILE_BYTES = 1024 * 1024
MAX_LEARNER_FILES = 500
CANARY_TEST = "def test_must_fail():\n    assert False, 'the canary must fail'\n"


@dataclass(frozen=True)
class TestOutcome:
    """One test's verdict, as the learner may (partly) see it."""

    __test__ = False  # a domain class whose name only looks like a pytest test class

    id: str
    suite: str
    passed: bool
    points: float
    max_points: float
    message: str
    visibility: str
    detail: Mapping[str, str] = field(default_factory=dict)  # io: stdin/expected/actual


@dataclass(frozen=True)
class RepositoryReport:
    tests: tuple[TestOutcome, ...]
    tampered: bool
    notes: tuple[str, ...]
    files: frozenset[str]


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A glob where `*` stays within one folder and `**/` spans any number of folders."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def list_tree(tree: Path) -> list[str]:
    """Relative paths of the regular files in a work tree; symlinks are never followed."""
    found: list[str] = []
    for path in sorted(tree.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        found.append(path.relative_to(tree).as_posix())
    return found


def allowed_learner_files(tree: Path, patterns: Sequence[str]) -> tuple[dict[str, bytes], list[str]]:
    """The learner files the assessment allows, minus anything that could take over the harness."""
    compiled = [compile_glob(p) for p in patterns]
    chosen: dict[str, bytes] = {}
    dropped: list[str] = []
    for relative in list_tree(tree):
        name = PurePosixPath(relative).name
        if not any(c.match(relative) for c in compiled):
            continue
        if name in FORBIDDEN_NAMES or name.endswith(FORBIDDEN_SUFFIXES) or "__pycache__" in relative:
            dropped.append(relative)
            continue
        path = tree / relative
        if path.stat().st_size > MAX_LEARNER_FILE_BYTES or len(chosen) >= MAX_LEARNER_FILES:
            dropped.append(relative)
            continue
        chosen[relative] = path.read_bytes()
    return chosen, dropped


def _limits(limits: SandboxLimits) -> Limits:
    return Limits(
        wall_seconds=limits.wall_seconds,
        cpu_seconds=max(1, math.ceil(limits.wall_seconds)),
        memory_mb=limits.memory_mb,
        pids=limits.pids,
        output_bytes=limits.output_bytes,
    )


def _learner_fault(result: RunResult) -> str:
    return {
        Outcome.TIMEOUT: "the tests ran out of time",
        Outcome.MEMORY_LIMIT: "the tests used more memory than allowed",
        Outcome.OUTPUT_LIMIT: "the tests printed more output than allowed",
        Outcome.KILLED: "the tests were killed",
    }.get(result.outcome, "")


def _check_sandbox(result: RunResult) -> None:
    if result.outcome is Outcome.SANDBOX_ERROR:
        raise SandboxUnavailable(f"the sandbox failed: {result.error or 'unknown error'}")


class RepositoryGrading:
    """Runs an assessment's suites against one learner work tree."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def run(
        self,
        assessment: RepositoryAssessment,
        bundle: Mapping[str, str],
        tree: Path,
        expected_tests: Sequence[str] | None = None,
    ) -> RepositoryReport:
        learner, dropped = allowed_learner_files(tree, assessment.learner_files)
        notes = [f"ignored {name}: not allowed next to the tests" for name in dropped]
        outcomes: list[TestOutcome] = []
        tampered = False
        for suite in assessment.tests:
            if isinstance(suite, PytestSuite):
                found, suite_tampered, suite_notes = self._pytest(
                    assessment, suite, bundle, learner, expected_tests
                )
                tampered = tampered or suite_tampered
                notes.extend(suite_notes)
                outcomes.extend(found)
            elif isinstance(suite, IoCase):
                outcomes.append(self._io(assessment, suite, learner))
            else:
                found, suite_notes = self._command(assessment, suite, bundle, learner)
                outcomes.extend(found)
                notes.extend(suite_notes)
        if tampered:
            outcomes = [
                TestOutcome(
                    o.id,
                    o.suite,
                    False,
                    0.0,
                    o.max_points,
                    "not trusted: the run was tampered with",
                    o.visibility,
                )
                if o.suite in {s.id for s in assessment.tests if isinstance(s, PytestSuite)}
                else o
                for o in outcomes
            ]
        return RepositoryReport(tuple(outcomes), tampered, tuple(notes), frozenset(list_tree(tree)))

    # ---------------------------------------------------------------- pytest

    def _pytest(
        self,
        assessment: RepositoryAssessment,
        suite: PytestSuite,
        bundle: Mapping[str, str],
        learner: Mapping[str, bytes],
        expected_tests: Sequence[str] | None,
    ) -> tuple[list[TestOutcome], bool, list[str]]:
        nonce = secrets.token_hex(8)
        canary_id = f"tests/test_{nonce}.py::test_must_fail"
        report_name = f"_out/{secrets.token_hex(8)}.json"
        prefix = suite.path.rstrip("/") + "/"
        files = [BoxFile(f"submission/{name}", content) for name, content in learner.items()]
        files += [
            BoxFile("tests/" + name.removeprefix(prefix), text.encode())
            for name, text in bundle.items()
            if name.startswith(prefix)
        ]
        files += [
            BoxFile(f"tests/test_{nonce}.py", CANARY_TEST.encode()),
            BoxFile("_harness/pytest_runner.py", script("pytest_runner.py")),
            BoxFile("_harness/pytest.ini", script("pytest.ini")),
            BoxFile("_out/.keep", b""),
        ]
        result = self.runner.run(
            JobSpec(
                command=("python3", "-I", "_harness/pytest_runner.py", f"/box/{report_name}"),
                files=tuple(files),
                limits=_limits(assessment.limits),
                collect=(report_name,),
            )
        )
        _check_sandbox(result)
        notes: list[str] = []
        fault = _learner_fault(result)
        report = _parse_report(result.files.get(report_name))

        # Test ids are reported relative to the assessment folder, as course teams write them.
        def public_id(nodeid: str) -> str:
            return prefix + nodeid.removeprefix("tests/") if nodeid.startswith("tests/") else nodeid

        if report is None:
            reason = fault or "the test run ended without a report (did the code exit at import?)"
            notes.append(f"{suite.id}: {reason}")
            ran: dict[str, Any] = {}
            tampered = not fault  # a timeout or OOM is the learner's fault, not tampering
        else:
            ran = report["tests"]
            canary = ran.get(f"tests/test_{nonce}.py::test_must_fail", {}).get("outcome")
            tampered = canary != "failed"
            if tampered:
                notes.append(f"{suite.id}: the canary test did not fail; results were manipulated")
            for error in report.get("collection_errors", [])[:5]:
                notes.append(
                    f"{suite.id}: could not collect {public_id(error['nodeid'])}: {error['message'][-300:]}"
                )
        ids = [public_id(n) for n in ran if n != canary_id]
        wanted = list(expected_tests) if expected_tests else []
        all_ids = list(dict.fromkeys(wanted + ids))
        outcomes = []
        for test_id in all_ids:
            entry = (
                ran.get("tests/" + test_id.removeprefix(prefix))
                if test_id.startswith(prefix)
                else ran.get(test_id)
            )
            points = float(suite.points.get(test_id, 1.0))
            if entry is None:
                passed, message = False, fault or "did not run"
            else:
                passed = entry.get("outcome") == "passed"
                message = "" if passed else str(entry.get("message", ""))[-2000:]
            outcomes.append(
                TestOutcome(
                    test_id, suite.id, passed, points if passed else 0.0, points, message, suite.visibility
                )
            )
        return outcomes, tampered, notes

    # ---------------------------------------------------------------- io

    def _io(
        self, assessment: RepositoryAssessment, case: IoCase, learner: Mapping[str, bytes]
    ) -> TestOutcome:
        result = self.runner.run(
            JobSpec(
                command=tuple(case.command),
                files=tuple(BoxFile(name, content) for name, content in learner.items()),
                stdin=case.stdin.encode(),
                limits=_limits(assessment.limits),
            )
        )
        _check_sandbox(result)
        actual = result.stdout.decode("utf-8", errors="replace")
        fault = _learner_fault(result)
        passed = not fault and _compare(case, actual)
        message = fault or ("" if passed else "the output differs from the expected output")
        detail = {"stdin": case.stdin, "expected": case.expected, "actual": actual[-4000:]}
        return TestOutcome(
            case.id,
            case.id,
            passed,
            case.points if passed else 0.0,
            case.points,
            message,
            case.visibility,
            detail,
        )

    # ---------------------------------------------------------------- command

    def _command(
        self,
        assessment: RepositoryAssessment,
        suite: CommandSuite,
        bundle: Mapping[str, str],
        learner: Mapping[str, bytes],
    ) -> tuple[list[TestOutcome], list[str]]:
        prefix = suite.path.rstrip("/") + "/"
        files = [BoxFile(f"submission/{name}", content) for name, content in learner.items()]
        files += [
            BoxFile("grader/" + name.removeprefix(prefix), text.encode(), 0o755)
            for name, text in bundle.items()
            if name.startswith(prefix)
        ]
        files.append(BoxFile("results/.keep", b""))
        result = self.runner.run(
            JobSpec(
                command=tuple(suite.command),
                files=tuple(files),
                limits=_limits(assessment.limits),
                collect=("results/results.json",),
            )
        )
        _check_sandbox(result)
        raw = result.files.get("results/results.json")
        fault = _learner_fault(result)
        if raw is None:
            return [
                TestOutcome(
                    suite.id,
                    suite.id,
                    False,
                    0.0,
                    0.0,
                    fault or "the grader wrote no results.json",
                    suite.visibility,
                )
            ], [f"{suite.id}: no results.json"]
        try:
            forced = None if suite.results == "auto" else suite.results
            adapted = parse_results_json(raw, format=forced)
        except ResultsFormatError as exc:
            return [
                TestOutcome(
                    suite.id, suite.id, False, 0.0, 0.0, f"unreadable results.json: {exc}", suite.visibility
                )
            ], []
        outcomes = [
            TestOutcome(
                f"{suite.id}::{test.name}",
                suite.id,
                test.passed,
                test.points,
                test.max_points,
                test.message[-2000:],
                _adapted_visibility(test.visibility, suite.visibility),
            )
            for test in adapted.tests
        ]
        return outcomes, []


def _adapted_visibility(reported: str, default: Visibility) -> str:
    return {
        "hidden": Visibility.HIDDEN,
        "after_due_date": Visibility.AFTER_DUE,
        "after_published": Visibility.AFTER_DUE,
    }.get(reported, default)


def _parse_report(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("tests"), dict):
        return None
    return data


def _compare(case: IoCase, actual: str) -> bool:
    expected = case.expected
    if case.compare is IoCompare.EXACT:
        return actual == expected
    if case.compare is IoCompare.WHITESPACE:
        return actual.split() == expected.split()
    if case.compare is IoCompare.REGEX:
        return re.fullmatch(expected, actual.strip(), re.DOTALL) is not None
    numbers_actual, numbers_expected = actual.split(), expected.split()
    if len(numbers_actual) != len(numbers_expected):
        return False
    try:
        return all(
            math.isclose(float(a), float(e), rel_tol=0, abs_tol=case.tolerance)
            for a, e in zip(numbers_actual, numbers_expected, strict=True)
        )
    except ValueError:
        return False


def evidence_from(report: RepositoryReport) -> Evidence:
    return Evidence(
        tests=tuple(TestEvidence(o.id, o.passed, o.points, o.max_points) for o in report.tests),
        files=report.files,
    )


def score(
    report: RepositoryReport, rubric_definition: Mapping[str, Any], reviews: Iterable[Review] = ()
) -> dict[str, Any]:
    """Apply the rubric to the evidence; the dict is what a `Result` stores as feedback."""
    rubric = rubric_from_dict(dict(rubric_definition), "rubric")
    result = evaluate(rubric, evidence_from(report), reviews)
    return {
        "score": result.score,
        "max_score": result.max_score,
        # A tampered run fails outright, even while manual criteria wait for a reviewer.
        "passed": False if report.tampered else result.passed,
        "needs_review": result.needs_review and not report.tampered,
        "rubric": rubric_feedback(result),
    }


def rubric_feedback(result: RubricResult) -> dict[str, Any]:
    """The rubric part of a result's feedback: one line of explanation per criterion."""
    return {
        "id": result.rubric_id,
        "version": result.rubric_version,
        "content_hash": result.content_hash,
        "explanation": result.explanation,
        "criteria": [
            {
                "id": c.id,
                "title": c.title,
                "points": c.points,
                "max_points": c.max_points,
                "level": c.level,
                "explanation": c.explanation,
                "manual": c.manual,
                "pending": c.pending,
            }
            for c in result.criteria
        ],
    }


def report_feedback(report: RepositoryReport) -> dict[str, Any]:
    return {
        "tests": [
            {
                "id": o.id,
                "suite": o.suite,
                "passed": o.passed,
                "points": o.points,
                "max_points": o.max_points,
                "message": o.message,
                "visibility": o.visibility,
                "detail": dict(o.detail),
            }
            for o in report.tests
        ],
        "tampered": report.tampered,
        "notes": list(report.notes),
        # Kept so a reviewer's scores can be combined with the same evidence later.
        "files": sorted(report.files)[:MAX_LEARNER_FILES],
    }


def visible_tests(
    tests: Sequence[Mapping[str, Any]], due: datetime | None, now: datetime
) -> list[dict[str, Any]]:
    """What a learner may see of each test: everything, or only name and status while hidden."""
    shown = []
    for test in tests:
        visibility = test.get("visibility", Visibility.VISIBLE)
        open_now = visibility == Visibility.VISIBLE or (
            visibility == Visibility.AFTER_DUE and due is not None and now >= due
        )
        item = {
            "id": test["id"],
            "passed": test["passed"],
            "points": test["points"],
            "max_points": test["max_points"],
        }
        if open_now:
            item["message"] = test.get("message", "")
            item["detail"] = test.get("detail", {})
        else:
            item["hidden"] = True
        shown.append(item)
    return shown
