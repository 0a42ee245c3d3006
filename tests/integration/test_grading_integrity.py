"""A white-box cheater against the pytest harness, graded in the real sandbox on both backends.

The learner has read this repository. Every trick below is graded exactly as a worker grades (the
suites, then the rubric), with the hidden tests written the ordinary way (`assert add(2, 3) == 5`),
in both isolations: in-process, where the trick runs next to pytest and must trip the canaries or
the report checks; and `isolation: process`, where it cannot reach the verdict at all. Each case
asserts the verdict FAIL and that no point went to a test the plain wrong code fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.catalog.bundle import Bundle, ExpectedTest, ExpectedTests
from grader.catalog.schema import RepositoryAssessment
from grader.services.repository import RepositoryGrading, RepositoryReport, score
from sandbox.contract import Runner
from tests.sandbox.conftest import BACKENDS
from tests.support.sandboxes import make_runner

HIDDEN_TESTS = """\
import pytest

from solution import add, mean, parse_age


def test_add():
    assert add(2, 3) == 5


def test_add_negative():
    assert add(-1, 1) == 0


def test_mean_of_three():
    assert mean([1, 2, 6]) == 3


def test_parse_age_reads_digits():
    assert parse_age("42") == 42


def test_parse_age_refuses_words():
    with pytest.raises(ValueError):
        parse_age("forty")
"""

EXPECTED_IDS = [
    "tests/test_solution.py::test_add",
    "tests/test_solution.py::test_add_negative",
    "tests/test_solution.py::test_mean_of_three",
    "tests/test_solution.py::test_parse_age_reads_digits",
    "tests/test_solution.py::test_parse_age_refuses_words",
]
RUBRIC = {
    "id": "tests-only",
    "title": "Tests only",
    "pass_mark": 0.99,
    "criteria": [{"id": "tests", "title": "Tests", "auto": {"kind": "test_points"}, "max_points": 10}],
}
HONEST = """\
def add(a, b):
    return a + b


def mean(values):
    return sum(values) / len(values)


def parse_age(text):
    if not text.isdigit():
        raise ValueError(f"not a whole number: {text!r}")
    return int(text)
"""
# Wrong in add and in parse_age's refusal: three of the five tests fail honestly.
WRONG = """\
def add(a, b):
    return a - b


def mean(values):
    return sum(values) / len(values)


def parse_age(text):
    return int(text) if text.isdigit() else -1
"""
WRONG_FAILS = {
    "tests/test_solution.py::test_add",
    "tests/test_solution.py::test_add_negative",
    "tests/test_solution.py::test_parse_age_refuses_words",
}

TRICKS = {
    # A plugin registered at import that forges every report except the canary's old name.
    "plugin_spares_the_old_canary_name": WRONG
    + """
import gc

class _Forger:
    def pytest_runtest_logreport(self, report):
        if "test_must_fail" not in report.nodeid:
            report.outcome = "passed"

for _obj in gc.get_objects():
    if type(_obj).__name__ == "PytestPluginManager":
        _obj.register(_Forger(), "forger")
        break
""",
    # Reads the tests' source and forges a pass for every test whose body is not `assert False`.
    "source_scanner_spares_assert_false": WRONG
    + """
import gc, inspect

class _Scanner:
    def pytest_runtest_logreport(self, report):
        item = _items.get(report.nodeid)
        body = inspect.getsource(item.function) if item is not None else ""
        if "assert False" not in body:
            report.outcome = "passed"

    def pytest_collection_modifyitems(self, items):
        _items.update({i.nodeid: i for i in items})

_items = {}
for _obj in gc.get_objects():
    if type(_obj).__name__ == "PytestPluginManager":
        _obj.register(_Scanner(), "scanner")
        break
""",
    # Monkeypatches pytest's own report construction instead of registering a plugin.
    "monkeypatched_reports": WRONG
    + """
import _pytest.reports

_original = _pytest.reports.TestReport.from_item_and_call.__func__

def _always_passed(cls, item, call):
    report = _original(cls, item, call)
    report.outcome = "passed"
    report.longrepr = None
    return report

_pytest.reports.TestReport.from_item_and_call = classmethod(_always_passed)
""",
    # Returns an object equal to everything.
    "always_equal_object": """\
class Anything:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False


def add(a, b):
    return Anything()


def mean(values):
    return Anything()


def parse_age(text):
    return Anything()
""",
    # Ends pytest from inside a test, after set-up reported a pass.
    "pytest_exit_inside_a_test": WRONG.replace(
        "    return a - b", "    import pytest\n    pytest.exit('done', returncode=0)"
    ),
    "os_exit_at_import": "import os\nos._exit(0)\n" + WRONG,
    "sys_exit_at_import": "import sys\nsys.exit(0)\n" + WRONG,
    "os_exit_inside_a_test": WRONG.replace("    return a - b", "    import os\n    os._exit(0)"),
    # Writes a forged report where the harness writes its own (the path is in argv), then leaves.
    "forged_report_file": WRONG
    + """
import json, os, sys
if len(sys.argv) > 1 and sys.argv[1].endswith(".json"):
    tests_dir = "/box/tests"
    forged = {}
    for name in os.listdir(tests_dir):
        if name.endswith(".py"):
            for line in open(os.path.join(tests_dir, name)):
                if line.startswith("def test"):
                    nodeid = f"tests/{name}::{line[4:].split('(')[0]}"
                    forged[nodeid] = {"setup": "passed", "call": "passed", "teardown": "passed"}
    with open(sys.argv[1], "w") as out:
        json.dump({"exit_status": 0, "tests": forged, "collection_errors": []}, out)
    os._exit(0)
""",
    # Ignores every signal it can and spins: only the wall clock from outside stops it.
    "signal_ignoring_hang": WRONG.replace(
        "    return a - b",
        "    import signal\n    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
        "        signal.signal(s, signal.SIG_IGN)\n    while True:\n        pass",
    ),
}
# Files a learner adds next to a wrong solution to take over pytest or Python itself.
PLANTED = {
    "conftest": {
        "conftest.py": "import pytest\n\n@pytest.hookimpl(hookwrapper=True)\n"
        "def pytest_runtest_makereport(item, call):\n    outcome = yield\n"
        "    outcome.get_result().outcome = 'passed'\n"
    },
    "pytest_ini": {"pytest.ini": "[pytest]\naddopts = -p solution\n"},
    "sitecustomize": {"sitecustomize.py": "import os\nos._exit(0)\n"},
    "pth_file": {"evil.pth": "import os; os._exit(0)\n"},
    "shadowed_pytest": {"pytest.py": "def main(*a, **k):\n    return 0\n"},
    "shadowed_json": {"json.py": "def dump(*a, **k):\n    pass\n"},
    "shadowed_xml": {"xml/__init__.py": "", "xml/dom.py": "raise SystemExit(0)\n"},
    "planted_results": {
        "results.json": json.dumps({"tests": [{"name": "x", "score": 10, "max_score": 10}]}),
        "_out/report.json": json.dumps({"tests": {}}),
    },
}


def assessment(isolation: str) -> RepositoryAssessment:
    return RepositoryAssessment.model_validate(
        {
            "slug": "solution",
            "kind": "repository",
            "title": "Three functions",
            "rubric": "tests-only",
            "learner_files": ["**/*"],
            "limits": {"wall_seconds": 10, "call_seconds": 3},
            "tests": [{"kind": "pytest", "id": "hidden", "path": "tests", "isolation": isolation}],
        }
    )


BUNDLE = Bundle({"tests/test_solution.py": HIDDEN_TESTS.encode()})
EXPECTED = ExpectedTests({"hidden": tuple(ExpectedTest(i, 1.0) for i in EXPECTED_IDS)})


def grade(runner: Runner, tmp_path: Path, isolation: str, files: dict[str, str]) -> RepositoryReport:
    tree = tmp_path / "learner"
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    return RepositoryGrading(runner).run(assessment(isolation), BUNDLE, tree, EXPECTED)


def points(report: RepositoryReport) -> dict[str, float]:
    return {t.id: t.points for t in report.tests}


@pytest.fixture(params=BACKENDS, scope="module")
def backend_runner(request: pytest.FixtureRequest, sandbox_ready: None) -> Runner:
    return make_runner(request.param)


ISOLATIONS = ["none", "process"]


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_an_honest_solution_gets_every_point(backend_runner: Runner, tmp_path: Path, isolation: str) -> None:
    report = grade(backend_runner, tmp_path, isolation, {"solution.py": HONEST})
    assert points(report) == dict.fromkeys(EXPECTED_IDS, 1.0), report.notes
    verdict, _ = score(report, RUBRIC)
    assert verdict.passed is True and not report.tampered


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_plainly_wrong_solution_fails_exactly_the_tests_it_breaks(
    backend_runner: Runner, tmp_path: Path, isolation: str
) -> None:
    report = grade(backend_runner, tmp_path, isolation, {"solution.py": WRONG})
    failed = {t.id for t in report.tests if not t.passed}
    assert failed == WRONG_FAILS and not report.tampered, report.notes
    add = next(t for t in report.tests if t.id.endswith("::test_add"))
    assert "-1" in add.message and "5" in add.message  # the assertion as pytest explains it


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_a_trick_in_the_learners_code_earns_nothing(
    backend_runner: Runner, tmp_path: Path, isolation: str, trick: str
) -> None:
    report = grade(backend_runner, tmp_path, isolation, {"solution.py": TRICKS[trick]})
    verdict, _ = score(report, RUBRIC)
    assert verdict.passed is False, (report.notes, points(report))
    earned = points(report)
    assert all(earned[test_id] == 0 for test_id in WRONG_FAILS), (trick, earned, report.notes)
    if isolation == "none" and trick not in ("signal_ignoring_hang", "sys_exit_at_import"):
        # In-process the trick reached pytest: the run is flagged, and earns nothing at all.
        assert report.tampered, (trick, report.notes)
        assert sum(earned.values()) == 0


@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("planted", sorted(PLANTED))
def test_files_planted_to_take_over_pytest_or_python_are_left_out(
    backend_runner: Runner, tmp_path: Path, isolation: str, planted: str
) -> None:
    report = grade(backend_runner, tmp_path, isolation, {"solution.py": WRONG, **PLANTED[planted]})
    verdict, _ = score(report, RUBRIC)
    assert verdict.passed is False
    assert {t.id for t in report.tests if not t.passed} == WRONG_FAILS, (planted, report.notes)
    assert any(note.startswith("ignored ") for note in report.notes), report.notes


def test_canaries_are_new_each_run_and_look_like_the_tests(tmp_path: Path) -> None:
    """What a learner who reads this repository can know of a run's canaries: nothing by name."""
    import random

    from grader.harness.canaries import plant_canaries

    runs = [plant_canaries({"test_solution.py": HIDDEN_TESTS}, random.Random(seed)) for seed in (1, 2)]
    names = [{name for _, name in run.canaries} for run in runs]
    assert names[0] != names[1] and all(len(n) == 3 for n in names)
    words = {
        w
        for line in HIDDEN_TESTS.splitlines()
        if line.startswith("def test_")
        for w in line[9:].split("(")[0].split("_")
    }
    for name in names[0]:
        assert name.startswith("test_") and set(name.removeprefix("test_").split("_")) <= words
    module = runs[0].modules["test_solution.py"]
    assert "assert False" not in module and "must_fail" not in module
    for name in names[0]:
        body = module.split(f"def {name}(")[1].split("\ndef ")[0]
        assert "add(" in body or "mean(" in body or "parse_age(" in body  # a call into the learner's code


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_segfault_is_a_crash_with_its_signal_name(
    backend_runner: Runner, tmp_path: Path, isolation: str
) -> None:
    crashing = WRONG.replace("    return a - b", "    import ctypes\n    ctypes.string_at(0)")
    report = grade(backend_runner, tmp_path, isolation, {"solution.py": crashing})
    add = next(t for t in report.tests if t.id.endswith("::test_add"))
    assert not add.passed and "SIGSEGV" in (add.message + " ".join(report.notes)), (add, report.notes)
    assert not report.tampered
