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
from grader.harness.canaries import PlantedSuite
from grader.services.repository import RepositoryGrading, RepositoryReport, score
from sandbox.contract import JobSpec, Runner, RunResult, Serve
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


def assessment(isolation: str, visibility: str = "visible") -> RepositoryAssessment:
    return RepositoryAssessment.model_validate(
        {
            "slug": "solution",
            "kind": "repository",
            "title": "Three functions",
            "rubric": "tests-only",
            "learner_files": ["**/*"],
            "limits": {"wall_seconds": 10, "call_seconds": 3},
            "tests": [
                {
                    "kind": "pytest",
                    "id": "hidden",
                    "path": "tests",
                    "isolation": isolation,
                    "visibility": visibility,
                }
            ],
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


# ---------------------------------------------------------------- found by a white-box review


def grade_with(
    runner: Runner,
    tmp_path: Path,
    isolation: str,
    files: dict[str, str],
    hidden: dict[str, str],
    ids: list[str],
) -> RepositoryReport:
    tree = tmp_path / "learner"
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    bundle = Bundle({f"tests/{name}": text.encode() for name, text in hidden.items()})
    expected = ExpectedTests({"hidden": tuple(ExpectedTest(i, 1.0) for i in ids)})
    return RepositoryGrading(runner).run(assessment(isolation), bundle, tree, expected)


# Spares every test whose name it was shown (name_only shows them): in the box, no test has its name.
SPARES_KNOWN_NAMES = (
    WRONG
    + """
import gc

_KNOWN = {"test_add", "test_add_negative", "test_mean_of_three", "test_parse_age_reads_digits",
          "test_parse_age_refuses_words"}

class _Forger:
    def pytest_runtest_logreport(self, report):
        if report.nodeid.split("::")[-1].split("[")[0] in _KNOWN:
            report.outcome = "passed"

for _obj in gc.get_objects():
    if type(_obj).__name__ == "PytestPluginManager":
        _obj.register(_Forger(), "forger")
        break
"""
)


def test_in_the_box_no_test_has_its_real_name_so_known_names_help_no_forger(
    backend_runner: Runner, tmp_path: Path
) -> None:
    report = grade(backend_runner, tmp_path, "none", {"solution.py": SPARES_KNOWN_NAMES})
    earned = points(report)
    assert set(earned) == set(EXPECTED_IDS)  # the names are mapped back outside the box
    assert all(earned[test_id] == 0 for test_id in WRONG_FAILS), (earned, report.staff_notes)


LEAKER = (
    WRONG
    + """
import base64, gc, os
_secret = base64.b64encode(open("/box/tests/test_solution.py", "rb").read()).decode()
for _obj in gc.get_objects():
    if type(_obj).__name__ == "Collector":
        _obj.tests["tests/test_solution.py::LEAK_" + _secret] = {
            "setup": "passed", "call": "failed", "teardown": "passed"
        }
        _obj.errors.append({"nodeid": "tests/LEAK_" + _secret, "message": "E   " + _secret})
"""
)


def test_what_the_box_reports_never_reaches_a_learner_of_a_name_only_suite(
    backend_runner: Runner, tmp_path: Path
) -> None:
    import base64

    secret = base64.b64encode(HIDDEN_TESTS.encode()).decode()[:40]
    tree = tmp_path / "learner"
    tree.mkdir()
    (tree / "solution.py").write_text(LEAKER)
    report = RepositoryGrading(backend_runner).run(assessment("none", "name_only"), BUNDLE, tree, EXPECTED)
    learner_visible = " ".join(report.notes)  # a name_only suite's messages are never shown
    assert secret not in learner_visible and "LEAK" not in learner_visible
    assert any("ignored" in note for note in report.staff_notes)  # staff still learn what happened


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_syntax_error_in_one_learner_file_fails_its_tests_only_and_is_no_tampering(
    backend_runner: Runner, tmp_path: Path, isolation: str
) -> None:
    hidden = {
        "test_a.py": "from parser_mod import parse\n\ndef test_parse():\n    assert parse('1') == 1\n",
        "test_b.py": "from calc import double\n\ndef test_double():\n    assert double(2) == 4\n",
    }
    files = {
        "parser_mod.py": "def parse(text)\n    return int(text)\n",
        "calc.py": "def double(x):\n    return 2 * x\n",
    }
    ids = ["tests/test_a.py::test_parse", "tests/test_b.py::test_double"]
    report = grade_with(backend_runner, tmp_path, isolation, files, hidden, ids)
    assert not report.tampered and points(report) == {ids[0]: 0.0, ids[1]: 1.0}, report.staff_notes
    assert any("SyntaxError" in note for note in report.notes) or isolation == "none"


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_module_that_skips_itself_is_no_tampering(
    backend_runner: Runner, tmp_path: Path, isolation: str
) -> None:
    hidden = {
        "test_s.py": "import pytest\nsolution = pytest.importorskip('solution')\n\n"
        "def test_add():\n    assert solution.add(2, 3) == 5\n",
        "test_t.py": "def test_other():\n    assert 1 + 1 == 2\n",
    }
    ids = ["tests/test_s.py::test_add", "tests/test_t.py::test_other"]
    report = grade_with(backend_runner, tmp_path, isolation, {"solution.py": "def add(a, b)\n"}, hidden, ids)
    assert not report.tampered and points(report) == {ids[0]: 0.0, ids[1]: 1.0}


def test_a_learner_file_cannot_stand_in_for_a_course_helper(backend_runner: Runner, tmp_path: Path) -> None:
    hidden = {
        "helpers.py": "def check(got, want):\n    assert got == want\n",
        "test_calc.py": "from helpers import check\nfrom solution import add\n\n"
        "def test_add():\n    check(add(2, 3), 5)\n",
    }
    files = {
        "solution.py": "def add(a, b):\n    return 0\n",
        "helpers.py": "def check(got, want):\n    return None\n",
    }
    report = grade_with(backend_runner, tmp_path, "process", files, hidden, ["tests/test_calc.py::test_add"])
    assert points(report) == {"tests/test_calc.py::test_add": 0.0}
    assert any("helpers.py is not importable" in note for note in report.notes)


def test_stop_iteration_from_the_learners_code_fails_the_test_under_process_isolation(
    backend_runner: Runner, tmp_path: Path
) -> None:
    hidden = {
        "test_m.py": "from solution import is_even\n\n"
        "def test_evens():\n    assert all(map(is_even, [2, 4, 7]))\n"
    }
    files = {"solution.py": "def is_even(n):\n    raise StopIteration\n"}
    report = grade_with(backend_runner, tmp_path, "process", files, hidden, ["tests/test_m.py::test_evens"])
    assert points(report) == {"tests/test_m.py::test_evens": 0.0}


def test_a_test_the_check_found_slow_is_copied_only_when_no_other_test_can_be() -> None:
    import random

    from grader.harness.canaries import plant_canaries

    def copied(run: PlantedSuite) -> list[str]:
        module = run.modules["test_solution.py"]
        bodies = [module.split(f"def {name}(")[1].split("\ndef ")[0] for _, name in run.canaries]
        return [next(f for f in ("mean(", "add(", "parse_age(") if f in body) for body in bodies]

    slow = {("test_solution.py", "test_mean_of_three")}
    runs = [
        plant_canaries({"test_solution.py": HIDDEN_TESTS}, random.Random(seed), slow=slow)
        for seed in range(40)
    ]
    assert all(len(run.canaries) == 3 and "mean(" not in copied(run) for run in runs)
    unmarked = [plant_canaries({"test_solution.py": HIDDEN_TESTS}, random.Random(seed)) for seed in range(40)]
    assert any("mean(" in copied(run) for run in unmarked)  # the draw does reach it when not marked
    every = {
        ("test_solution.py", t) for t in ("test_add", "test_add_negative", "test_parse_age_reads_digits")
    }
    only_slow = plant_canaries({"test_solution.py": HIDDEN_TESTS}, random.Random(1), slow=slow | every)
    assert len(only_slow.canaries) == 3  # a suite of slow tests keeps its tripwire


class SpyRunner:
    """The real runner, keeping each job's spec: what the box was given is what a learner's code sees."""

    def __init__(self, runner: Runner) -> None:
        self.runner, self.name, self.specs = runner, runner.name, []

    def run(self, spec: JobSpec, *, serve: Serve | None = None) -> RunResult:
        self.specs.append(spec)
        return self.runner.run(spec, serve=serve)


def test_gradings_never_copy_a_test_the_reference_check_found_slow(
    sandbox_ready: None, tmp_path: Path
) -> None:
    """The mark in expected_tests.json reaches the planting; each run draws 3 canaries from 4 templates,
    so 8 runs that never copy the marked one would happen by chance 1 time in 1,000."""
    spy = SpyRunner(make_runner("bwrap"))
    tree = tmp_path / "learner"
    tree.mkdir()
    (tree / "solution.py").write_text(HONEST)
    marked = ExpectedTests(
        {"hidden": tuple(ExpectedTest(i, 1.0, slow=i.endswith("mean_of_three")) for i in EXPECTED_IDS)}
    )
    for _ in range(8):
        report = RepositoryGrading(spy).run(assessment("none"), BUNDLE, tree, marked)
        assert not report.tampered and sum(points(report).values()) == len(EXPECTED_IDS)
    for spec in spy.specs:
        module = next(f.content.decode() for f in spec.files if f.path.endswith("test_solution.py"))
        assert module.count("mean([") == 1  # the test itself, renamed, and no copy of it


def test_honest_work_is_never_flagged_by_canaries_made_from_guarded_or_stateful_tests(
    backend_runner: Runner, tmp_path: Path
) -> None:
    hidden = {
        "test_s.py": """import pytest
from solution import Counter, add


@pytest.fixture(scope="module")
def counter():
    return Counter()


def test_add():
    assert add(2, 3) == 5


def test_add_big():
    if add(0, 0) == 0:
        return
    assert add(2, 2) == 4


def test_first(counter):
    assert counter.incr() == 1


def test_second(counter):
    assert counter.incr() == 2
"""
    }
    solution = (
        "def add(a, b):\n    return a + b\n\n\n"
        "class Counter:\n    def __init__(self):\n        self.n = 0\n\n"
        "    def incr(self):\n        self.n += 1\n        return self.n\n"
    )
    ids = [f"tests/test_s.py::test_{name}" for name in ("add", "add_big", "first", "second")]
    for run in range(4):  # canaries are drawn at random: several runs
        report = grade_with(
            backend_runner, tmp_path / str(run), "none", {"solution.py": solution}, hidden, ids
        )
        assert not report.tampered and sum(points(report).values()) == 4, report.staff_notes


def test_a_learner_box_that_is_gone_answers_every_later_call_at_once(
    backend_runner: Runner, tmp_path: Path
) -> None:
    import time

    hidden = {
        "test_s.py": "from solution import flood, add\n\ndef test_flood():\n    flood()\n\n"
        + "".join(f"def test_add_{i}():\n    assert add({i}, 1) == {i + 1}\n\n" for i in range(5))
    }
    files = {
        "solution.py": "import sys\n\ndef flood():\n    sys.stderr.write('x' * 3_000_000)\n\n\n"
        "def add(a, b):\n    return a + b\n"
    }
    ids = ["tests/test_s.py::test_flood", *(f"tests/test_s.py::test_add_{i}" for i in range(5))]
    started = time.monotonic()
    report = grade_with(backend_runner, tmp_path, "process", files, hidden, ids)
    assert time.monotonic() - started < 30
    assert sum(points(report).values()) == 6  # what a call prints goes nowhere: the box stays
