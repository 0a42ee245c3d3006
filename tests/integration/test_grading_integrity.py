"""Tamper tricks against the pytest harness, io comparison and result adapters, in the real sandbox.

Each learner variant is graded exactly as a worker would (RepositoryGrading + rubric) on real
bubblewrap; one case also runs on Docker to show the harness behaves the same there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.catalog.schema import RepositoryAssessment
from grader.services.repository import RepositoryGrading, RepositoryReport, score
from sandbox.contract import Runner
from tests.support.sandboxes import make_runner

HIDDEN_TESTS = """\
from solution import add


def test_add():
    assert add(2, 3) == 5


def test_add_negative():
    result = add(-1, 1)
    # Guard against rigged objects: check the type before comparing (see docs/authoring.md).
    assert type(result) is int and result == 0
"""

GRADER_SCRIPT = """\
import json, sys
sys.path.insert(0, "submission")
from solution import add
tests = [{"name": "adds", "score": 2 if add(1, 1) == 2 else 0, "max_score": 2}]
json.dump({"tests": tests}, open("results/results.json", "w"))
"""

ASSESSMENT = RepositoryAssessment.model_validate(
    {
        "slug": "adder",
        "kind": "repository",
        "title": "Adder",
        "rubric": "tests-only",
        "learner_files": ["*.py", "**/*.py"],
        "limits": {"wall_seconds": 20},
        "tests": [
            {"kind": "pytest", "id": "hidden", "path": "tests", "visibility": "hidden"},
            {
                "kind": "io",
                "id": "cli",
                "command": ["python3", "cli.py"],
                "stdin": "2 3\n",
                "expected": "5\n",
            },
            {
                "kind": "command",
                "id": "course",
                "command": ["python3", "grader/run.py"],
                "path": "grader",
                "results": "gradescope",
            },
        ],
    }
)
BUNDLE = {"tests/test_adder.py": HIDDEN_TESTS, "grader/run.py": GRADER_SCRIPT}
EXPECTED = ["tests/test_adder.py::test_add", "tests/test_adder.py::test_add_negative"]
RUBRIC = {
    "id": "tests-only",
    "title": "Tests only",
    "pass_mark": 0.99,
    "criteria": [{"id": "tests", "title": "Tests", "auto": {"kind": "tests_passed"}, "max_points": 10}],
}
GOOD = {
    "solution.py": "def add(a, b):\n    return a + b\n",
    "cli.py": "from solution import add\na, b = map(int, input().split())\nprint(add(a, b))\n",
}


def grade(
    tmp_path: Path, files: dict[str, str], runner: Runner | None = None
) -> tuple[RepositoryReport, dict]:
    tree = tmp_path / "learner"
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    report = RepositoryGrading(runner or make_runner("bwrap")).run(ASSESSMENT, BUNDLE, tree, EXPECTED)
    return report, score(report, RUBRIC)


def outcomes(report: RepositoryReport) -> dict[str, bool]:
    return {t.id: t.passed for t in report.tests}


@pytest.mark.bwrap
def test_an_honest_solution_passes_every_suite(tmp_path: Path, sandbox_ready: None) -> None:
    report, scored = grade(tmp_path, GOOD)
    assert outcomes(report) == {**dict.fromkeys(EXPECTED, True), "cli": True, "course::adds": True}
    assert not report.tampered and scored["passed"] is True and scored["score"] == 10


@pytest.mark.bwrap
def test_a_wrong_solution_fails_with_per_test_feedback(tmp_path: Path, sandbox_ready: None) -> None:
    report, scored = grade(tmp_path, {**GOOD, "solution.py": "def add(a, b):\n    return a - b\n"})
    assert outcomes(report) == {EXPECTED[0]: False, EXPECTED[1]: False, "cli": False, "course::adds": False}
    failing = next(t for t in report.tests if t.id == EXPECTED[0])
    assert "assert -1 == 5" in failing.message
    cli = next(t for t in report.tests if t.id == "cli")
    assert cli.detail["actual"] == "-1\n" and cli.detail["expected"] == "5\n"
    assert scored["passed"] is False and not report.tampered


@pytest.mark.bwrap
def test_exit_at_import_is_tampering_not_a_pass(tmp_path: Path, sandbox_ready: None) -> None:
    report, scored = grade(tmp_path, {**GOOD, "solution.py": "import os\nos._exit(0)\n"})
    assert report.tampered and scored["passed"] is False
    assert not any(t.passed for t in report.tests if t.suite == "hidden")


@pytest.mark.bwrap
def test_a_planted_conftest_is_never_copied(tmp_path: Path, sandbox_ready: None) -> None:
    rigged = (
        "import pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    outcome.get_result().outcome = 'passed'\n"
    )
    wrong = {**GOOD, "solution.py": "def add(a, b):\n    return 0\n", "conftest.py": rigged}
    report, scored = grade(tmp_path, wrong)
    assert any("ignored conftest.py" in note for note in report.notes)
    assert outcomes(report)[EXPECTED[0]] is False and scored["passed"] is False


@pytest.mark.bwrap
def test_a_plugin_registered_at_import_trips_the_canary(tmp_path: Path, sandbox_ready: None) -> None:
    hijack = """\
import gc

def add(a, b):
    return 0

class _Rig:
    def pytest_runtest_logreport(self, report):
        report.outcome = "passed"

for obj in gc.get_objects():
    if type(obj).__name__ == "PytestPluginManager":
        obj.register(_Rig(), "rig")
        # Run first so every later reporter (the harness's own) sees the forged outcome.
        break
"""
    report, scored = grade(tmp_path, {**GOOD, "solution.py": hijack})
    assert report.tampered, report.notes
    assert scored["passed"] is False
    assert any("canary" in note for note in report.notes)


@pytest.mark.bwrap
def test_an_always_equal_object_fools_only_unguarded_asserts(tmp_path: Path, sandbox_ready: None) -> None:
    rigged = (
        "class Anything:\n    def __eq__(self, other):\n        return True\n\n"
        "def add(a, b):\n    return Anything()\n"
    )
    report, scored = grade(tmp_path, {**GOOD, "solution.py": rigged})
    results = outcomes(report)
    # test_add compares naively and is fooled; test_add_negative checks the type first and is not.
    assert results[EXPECTED[0]] is True and results[EXPECTED[1]] is False
    # The io case compares printed text outside the box, where no object can lie.
    assert results["cli"] is False
    assert scored["passed"] is False


@pytest.mark.bwrap
def test_a_planted_results_json_is_ignored(tmp_path: Path, sandbox_ready: None) -> None:
    forged = json.dumps({"tests": [{"name": "adds", "score": 2, "max_score": 2}], "score": 100})
    wrong = {
        **GOOD,
        "solution.py": "def add(a, b):\n    return 0\n",
        "results.json": forged,
        "results/results.json": forged,
    }
    report, _ = grade(tmp_path, wrong)
    assert outcomes(report)["course::adds"] is False
    adds = next(t for t in report.tests if t.id == "course::adds")
    assert adds.points == 0  # only the course grader's own results/results.json counts


@pytest.mark.docker
def test_the_harness_gives_the_same_verdicts_on_docker(tmp_path: Path, sandbox_ready: None) -> None:
    wrong = {**GOOD, "solution.py": "def add(a, b):\n    return a - b\n"}
    docker_report, _ = grade(tmp_path / "d", wrong, make_runner("docker"))
    bwrap_report, _ = grade(tmp_path / "b", wrong, make_runner("bwrap"))
    assert outcomes(docker_report) == outcomes(bwrap_report)
    assert docker_report.tampered == bwrap_report.tampered is False
