"""pytest suites: the course team's hidden tests against the learner's code, in one of two isolations.

* `isolation: none` (the default): the tests and the learner's code share pytest's process, so the
  learner's code can reach pytest. The report is believed only if every planted canary failed
  (`grader.harness.canaries`), every expected test reported all three phases, and nothing excuses a
  missing report but a collection error, a failed set-up or the run hitting a limit; otherwise the run
  is tampered and the suite earns nothing. A test passes only if set-up, call and teardown all passed.
* `isolation: process`: the tests run in a box without learner code; every call into the learner's
  modules runs in a fresh process in a box apart (`grader.suites.isolation`), and only plain data
  comes back. The report then comes from trusted code only, so no canary is needed.

Test ids are pytest node ids relative to the assessment folder (`tests/test_x.py::test_y`), as
course teams write them in `points`.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from grader.catalog.bundle import ExpectedTest
from grader.catalog.schema import Isolation, PytestSuite, RepositoryAssessment, Visibility
from grader.harness import script
from grader.harness.canaries import PlantedSuite, plant_canaries
from grader.suites.common import (
    MAX_MESSAGE,
    SuiteOutcome,
    TestOutcome,
    box_limits,
    check_sandbox,
    learner_fault,
)
from grader.suites.isolation import LearnerBox, learner_modules
from sandbox.contract import BoxFile, JobSpec, Runner, RunResult

BOX_TESTS = "tests"
PHASES = ("setup", "call", "teardown")  # a test passed only if each of them reported a pass
FILES_REQUEST = b"learner-files"  # the harness's one line asking for the learner's files
# How long a box started ahead of the fetch waits for the files (at most a tenth of its wall clock,
# which the wait is part of) before it is dropped and the tests run in a box of their own.
MAX_PATIENCE_SECONDS = 2.0


@dataclass(frozen=True)
class _Report:
    """The harness's report, read defensively: in-process, the learner's code could have written it."""

    tests: dict[str, dict[str, Any]]
    collection_errors: list[dict[str, str]]
    skipped_collectors: list[dict[str, str]]


def run_pytest_suite(
    runner: Runner,
    assessment: RepositoryAssessment,
    suite: PytestSuite,
    hidden: Mapping[str, bytes],
    learner: Mapping[str, bytes] | Future[Mapping[str, bytes]],
    expected: Sequence[ExpectedTest] | None,
    *,
    image: str | None = None,
    rng: random.Random | None = None,
) -> SuiteOutcome:
    """Run `suite`'s hidden tests (`hidden`: path inside the suite folder -> content) on `learner`.

    `learner` may still be on its way (a future, while the repository is fetched): in-process, the box
    then starts at once and the harness asks for the files once pytest is imported (see `_LateFiles`).
    """
    rng = rng or random.Random(secrets.randbits(64))
    report_name = f"_out/{secrets.token_hex(8)}.json"
    command = ["python3", "-I", "_harness/pytest_runner.py", f"/box/{report_name}"]
    files = [
        BoxFile("_harness/pytest_runner.py", script("pytest_runner.py")),
        BoxFile("_harness/pytest.ini", script("pytest.ini")),
        BoxFile("_out/.keep", b""),
    ]
    notes: list[str] = []
    staff_notes: list[str] = []
    canaries: set[str] = set()
    box_names: PlantedSuite | None = None  # every test is renamed in the box, in-process
    learner_box: LearnerBox | None = None
    limits = box_limits(assessment.limits)
    if suite.isolation is Isolation.PROCESS:
        # Its learner box is started with the files, so nothing here can start before they exist.
        learner = learner.result() if isinstance(learner, Future) else learner
        modules, left_out = learner_modules(learner, hidden)
        notes += [
            f"{suite.id}: {path} is not importable by the tests: its name is taken" for path in left_out
        ]
        files += [BoxFile(f"{BOX_TESTS}/{name}", content) for name, content in hidden.items()]
        files += [
            BoxFile("_harness/remote_modules.py", script("remote_modules.py")),
            BoxFile("_harness/isolation.json", json.dumps({"modules": modules}).encode()),
        ]
        command += ["--isolated", "/box/_harness/isolation.json"]
        learner_box = LearnerBox(
            runner, learner, assessment.limits, wall_seconds=limits.wall_seconds, image=image
        )
    else:
        texts = {
            name: content.decode("utf-8", "replace")
            for name, content in hidden.items()
            if name.endswith(".py")
        }
        planted = plant_canaries(texts, rng, slow=_slow_tests(expected, suite.path))
        canaries = {f"{BOX_TESTS}/{module}::{function}" for module, function in planted.canaries}
        box_names = planted
        for name, content in hidden.items():
            body = planted.modules[name].encode() if name in planted.modules else content
            files.append(BoxFile(f"{BOX_TESTS}/{name}", body))
    spec = JobSpec(
        command=tuple(command), files=tuple(files), limits=limits, collect=(report_name,), image=image
    )
    result: RunResult | None = None
    if learner_box is not None:
        with learner_box:
            result = runner.run(spec, serve=learner_box.serve)
    elif isinstance(learner, Future):
        handing = _LateFiles(learner, patience=min(MAX_PATIENCE_SECONDS, limits.wall_seconds / 10))
        early = replace(spec, command=(*spec.command, "--learner-files-on-channel"))
        result = runner.run(early, serve=handing.serve)
        if not handing.handed:
            result = None  # the files came too late (or never): that box is dropped, not judged
    if result is None:
        learner = learner.result() if isinstance(learner, Future) else learner
        learner_files = [BoxFile(f"submission/{name}", content) for name, content in learner.items()]
        result = runner.run(replace(spec, files=(*spec.files, *learner_files)))
    check_sandbox(result)
    fault = learner_fault(result)
    report = _read_report(result.files.get(report_name))
    prefix = suite.path.rstrip("/") + "/"

    def public_id(nodeid: str) -> str:
        return prefix + nodeid.removeprefix(f"{BOX_TESTS}/")

    # What the box reported is learner-controlled in-process, so its text reaches the learner only for
    # a visible suite (whose failure messages show the tests' code anyway); the rest is for staff.
    shown = suite.visibility == Visibility.VISIBLE
    if report is None:
        reason = fault or "the test run ended without a report (did the code exit while the tests ran?)"
        notes.append(f"{suite.id}: {reason}")
        report = _Report({}, [], [])
        tampered = not fault  # a timeout or a crash is the learner's fault, not tampering
    else:
        tampered = False
    broken = [error["nodeid"] for error in report.collection_errors]
    skipped = [entry["nodeid"] for entry in report.skipped_collectors]
    if report.collection_errors:
        notes.append(f"{suite.id}: {len(broken)} test module(s) could not be collected")
    for error in report.collection_errors[:5]:
        detail = f"{suite.id}: could not collect {public_id(error['nodeid'])}: {_last_line(error['message'])}"
        (notes if shown else staff_notes).append(detail)

    def within(nodeid: str, collectors: list[str]) -> bool:
        return any(nodeid == c or nodeid.startswith((c + "::", c + "/")) for c in collectors if c)

    def excuse(nodeid: str, entry: dict[str, Any] | None) -> str | None:
        """Why a test has no complete report, if an honest run could explain it."""
        if fault:
            return fault
        if within(nodeid, broken):
            return "its module could not be collected"
        if within(nodeid, skipped):
            return "its module was skipped"
        if entry is not None and entry.get("setup") in ("failed", "skipped"):
            return "its set-up " + str(entry["setup"])
        return None

    manipulated = f"{suite.id}: the test results were manipulated, so none of them count"
    for canary in canaries:
        entries = {n: e for n, e in report.tests.items() if n.split("[")[0] == canary}
        if any(e.get("call") == "passed" for e in entries.values()):
            tampered = True
            staff_notes.append(f"{suite.id}: canary {canary} passed")
        elif not entries and excuse(canary, None) is None and report.tests:
            tampered = True
            staff_notes.append(f"{suite.id}: canary {canary} never reported")

    def real_id(nodeid: str) -> str:
        """The test's id as the course team wrote it: the box's random name mapped back."""
        if box_names is None:
            return public_id(nodeid)
        module, sep, rest = nodeid.partition("::")
        function, bracket, params = rest.partition("[")
        name = box_names.real_name(module.removeprefix(f"{BOX_TESTS}/"), function)
        return public_id(f"{module}{sep}{name}{bracket}{params}")

    reported = {
        real_id(nodeid): (nodeid, entry)
        for nodeid, entry in report.tests.items()
        if nodeid.split("[")[0] not in canaries
    }
    if expected is not None:
        wanted = [test.id for test in expected]
        extras = sorted(set(reported) - set(wanted))
        if extras:
            staff_notes.append(
                f"{suite.id}: ignored {len(extras)} reported test(s) not recorded by the check"
            )
            staff_notes.extend(f"{suite.id}: ignored {extra[:300]}" for extra in extras[:20])
    else:
        wanted = list(reported)
    outcomes: list[TestOutcome] = []
    for test_id in wanted:
        nodeid, entry = reported.get(test_id, (f"{BOX_TESTS}/{test_id.removeprefix(prefix)}", None))
        points = float(suite.points.get(test_id, 1.0))
        phases = [entry.get(phase) for phase in PHASES] if entry is not None else []
        complete = len(phases) == len(PHASES) and all(phases)
        passed = complete and all(outcome == "passed" for outcome in phases)
        if passed:
            message = ""
        elif complete and entry is not None:
            message = str(entry.get("message", ""))[-MAX_MESSAGE:]
        else:
            why = excuse(nodeid, entry)
            if why is None:
                tampered = True
                why = "it started but never reported its result"
                staff_notes.append(f"{suite.id}: {test_id} {why}")
            message = (str(entry.get("message", "")) if entry else "") or f"did not run: {why}"
        outcomes.append(
            TestOutcome(
                test_id,
                suite.id,
                passed,
                points if passed else 0.0,
                points,
                message[-MAX_MESSAGE:],
                suite.visibility,
                seconds=_seconds(entry),
            )
        )
    if tampered:
        notes = [manipulated]
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
            for o in outcomes
        ]
    return SuiteOutcome(
        tests=tuple(outcomes),
        notes=tuple(dict.fromkeys(notes)),
        staff_notes=tuple(dict.fromkeys(staff_notes)),
        tampered=tampered,
        calls=learner_box.calls if learner_box else 0,
        call_seconds=learner_box.seconds if learner_box else 0.0,
    )


def _read_report(raw: bytes | None) -> _Report | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("tests"), dict):
        return None
    tests = {
        str(nodeid): {k: v for k, v in entry.items() if isinstance(k, str)}
        for nodeid, entry in data["tests"].items()
        if isinstance(entry, dict)
    }

    def collectors(key: str) -> list[dict[str, str]]:
        entries = data.get(key, [])
        return [
            {"nodeid": str(e.get("nodeid", "")), "message": str(e.get("message", ""))}
            for e in (entries if isinstance(entries, list) else [])
            if isinstance(e, dict)
        ]

    return _Report(tests, collectors("collection_errors"), collectors("skipped_collectors"))


def _last_line(message: str) -> str:
    """The line of a collection error that says what went wrong (pytest marks it with "E")."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E ")]
    return (errors[-1] if errors else lines[-1] if lines else "")[:300]


def _seconds(entry: dict[str, Any] | None) -> float:
    """A test's reported duration, or 0 when the report has none that makes sense."""
    duration = entry.get("duration") if entry is not None else None
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        return 0.0
    return float(duration) if 0 <= duration < 1e6 else 0.0


def _slow_tests(expected: Sequence[ExpectedTest] | None, folder: str) -> set[tuple[str, str]]:
    """The tests the reference check found slow, as (module path in the suite, function name)."""
    slow: set[tuple[str, str]] = set()
    for test in expected or ():
        if test.slow:
            module, _, rest = test.id.removeprefix(folder.rstrip("/") + "/").partition("::")
            slow.add((module, rest.partition("[")[0]))
    return slow


class _LateFiles:
    """The `serve` of a box started before the learner's files exist: answers the harness's one request
    with the files once the fetch is done, or "late" after `patience` seconds (or if the fetch failed).
    Every other line the job writes (pytest's own output, anything the learner's code prints) gets no
    answer, so nothing a learner writes can make the grader send anything but their own files, once."""

    def __init__(self, pending: Future[Mapping[str, bytes]], patience: float) -> None:
        self.pending = pending
        self.patience = patience
        self.asked = False
        self.handed = False

    def serve(self, line: bytes) -> bytes:
        if self.asked or line != FILES_REQUEST:
            return b""
        self.asked = True
        try:
            files = self.pending.result(timeout=self.patience)
        except Exception:  # too slow, or failed: the caller finds out which from the future itself
            return b"late\n"
        self.handed = True
        header = json.dumps([[name, len(content)] for name, content in files.items()]).encode()
        return b"".join((header, b"\n", *files.values()))
