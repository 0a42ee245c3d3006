"""command suites: a course team's own autograder, as written for Gradescope or PrairieLearn.

The box is laid out the way the autograder expects (`Layout`), so an autograder made for either
platform runs with no change to its files; the grader files may include binaries, and a setup step is
built into the grading image beforehand (`grader images build`), never run per submission.

The verdict reads the autograder's `results.json` through `sandbox.adapters`, with three rules that
keep the learner from gaining by breaking things:
* the test set is pinned by the reference run (`expected_tests.json`): a pinned test that does not
  report counts as failed with its points, and a test only a learner's run reports counts for nothing;
* the maximum comes from the catalog (`max_points`, else the pinned tests' maxima), never from a run;
* a fault of the autograder itself (no results, unreadable results, its own crash) is a
  `grader_error` for staff, not a failing test for the learner, and charges no attempt. Running out of
  time or memory is the learner's code's doing and fails every test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from grader.catalog.bundle import ExpectedTest
from grader.catalog.schema import CommandSuite, Layout, RepositoryAssessment
from grader.suites.common import (
    MAX_MESSAGE,
    SuiteOutcome,
    SuiteTotal,
    TestOutcome,
    box_limits,
    check_sandbox,
    learner_fault,
)
from sandbox.adapters import ResultsFormatError, number_key, parse_results_json
from sandbox.contract import BoxFile, JobSpec, Runner

MAX_STDERR_FOR_STAFF = 8000


def _layout(
    suite: CommandSuite,
    grader_files: Mapping[str, bytes],
    learner: Mapping[str, bytes],
    assessment: RepositoryAssessment,
    maximum: float | None,
) -> tuple[list[BoxFile], str, str]:
    """The files to place, the folder to run in and the results file, for the suite's layout."""
    if suite.layout is Layout.GRADESCOPE:
        files = [BoxFile(f"autograder/source/{name}", data, 0o755) for name, data in grader_files.items()]
        if "run_autograder" in grader_files:
            files.append(BoxFile("autograder/run_autograder", grader_files["run_autograder"], 0o755))
        files += [BoxFile(f"autograder/submission/{name}", data) for name, data in learner.items()]
        metadata = {
            "assignment": {
                "title": assessment.title,
                "due_date": assessment.due.isoformat() if assessment.due else None,
                "total_points": maximum,
            },
            "submission_method": "upload",
            "users": [],  # learners are never named to a course team's code
            "previous_submissions": [],
        }
        files += [
            BoxFile("autograder/submission_metadata.json", json.dumps(metadata).encode()),
            BoxFile("autograder/results/.keep", b""),
        ]
        return files, "/autograder", "autograder/results/results.json"
    if suite.layout is Layout.PRAIRIELEARN:
        files = [BoxFile(f"grade/tests/{name}", data, 0o755) for name, data in grader_files.items()]
        files += [BoxFile(f"grade/student/{name}", data) for name, data in learner.items()]
        data = {"params": {}, "correct_answers": {}, "submitted_answers": {}, "gradable": True}
        files += [
            BoxFile("grade/data/data.json", json.dumps(data).encode()),
            BoxFile("grade/results/.keep", b""),
        ]
        return files, "/grade", "grade/results/results.json"
    files = [BoxFile(f"grader/{name}", data, 0o755) for name, data in grader_files.items()]
    files += [BoxFile(f"submission/{name}", data) for name, data in learner.items()]
    files.append(BoxFile("results/.keep", b""))
    return files, "/box", "results/results.json"


def suite_maximum(suite: CommandSuite, expected: Sequence[ExpectedTest] | None) -> float | None:
    if suite.max_points is not None:
        return suite.max_points
    if expected is not None:
        return sum(test.max_points for test in expected)
    return None


def run_command_suite(
    runner: Runner,
    assessment: RepositoryAssessment,
    suite: CommandSuite,
    grader_files: Mapping[str, bytes],
    learner: Mapping[str, bytes],
    expected: Sequence[ExpectedTest] | None,
    *,
    image: str | None = None,
    now: datetime | None = None,
    reference_total: bool | None = None,
) -> SuiteOutcome:
    """`reference_total`: whether the reference run gave a top-level score (None: no reference yet)."""
    maximum = suite_maximum(suite, expected)
    files, workdir, results_path = _layout(suite, grader_files, learner, assessment, maximum)
    command = ("sh", "-c", 'cd "$1" && shift && exec "$@"', "autograder", workdir, *suite.entry_point)
    result = runner.run(
        JobSpec(
            command=command,
            files=tuple(files),
            limits=box_limits(assessment.limits),
            collect=(results_path,),
            image=image,
        )
    )
    check_sandbox(result)
    staff_log = result.stderr.decode("utf-8", "replace")[-MAX_STDERR_FOR_STAFF:]
    fault = learner_fault(result, "the autograder")
    pinned = list(expected) if expected is not None else None

    def all_failed(message: str) -> SuiteOutcome:
        tests = tuple(
            TestOutcome(t.id, suite.id, False, 0.0, t.max_points, message, suite.visibility)
            for t in pinned or []
        )
        total = None if tests or maximum is None else SuiteTotal(0.0, maximum, suite.visibility)
        return SuiteOutcome(tests=tests, total=total, notes=(f"{suite.id}: {message}",))

    if fault:
        return all_failed(fault)  # the learner's code ran out of time or memory, or crashed it
    raw = result.files.get(results_path)
    if raw is None:
        return SuiteOutcome(
            grader_error=f"{suite.id}: the autograder wrote no {results_path.split('/', 1)[-1]} "
            f"(exit code {result.exit_code}); its stderr:\n{staff_log}"
        )
    try:
        adapted = parse_results_json(raw, format=suite.results_format)
    except ResultsFormatError as exc:
        return SuiteOutcome(
            grader_error=f"{suite.id}: unreadable results.json: {exc}; its stderr:\n{staff_log}"
        )
    if not adapted.gradable:
        return SuiteOutcome(not_gradable=adapted.message or "the autograder could not grade this submission")
    reported = {
        f"{suite.id}::{test.name}": test
        for test in sorted(adapted.tests, key=lambda t: number_key(t.number) if t.number else ((2, ""),))
    }
    staff_notes: list[str] = []
    outcomes: list[TestOutcome] = []
    wanted = [(t.id, t.max_points) for t in pinned] if pinned is not None else None
    if wanted is None:
        wanted = [(test_id, test.max_points) for test_id, test in reported.items()]
    else:
        # The names come from a file the learner's code could have written: staff only.
        for extra in sorted(set(reported) - {test_id for test_id, _ in wanted})[:20]:
            staff_notes.append(
                f"{suite.id}: ignored {extra[:300]}: not among the tests recorded by the check"
            )
    for test_id, max_points in wanted:
        test = reported.get(test_id)
        if test is None:
            outcomes.append(
                TestOutcome(
                    test_id, suite.id, False, 0.0, max_points, "did not report a result", suite.visibility
                )
            )
            continue
        points = min(test.points, max_points)
        visibility = test.visibility if test.visibility != "visible" else suite.visibility
        outcomes.append(
            TestOutcome(
                test_id,
                suite.id,
                test.passed and points >= max_points,
                points,
                max_points,
                test.message[-MAX_MESSAGE:],
                visibility,
                number=test.number,
                tags=test.tags,
            )
        )
    total = None
    use_total = adapted.score_given or not outcomes
    if use_total and pinned is not None:
        missing = any(t.message == "did not report a result" for t in outcomes)
        # A top-level score the reference never gave, or one standing in for tests that vanished, is
        # the learner's code writing the results file: the pinned tests decide instead.
        if adapted.score_given and (reference_total is not True or missing):
            staff_notes.append(f"{suite.id}: ignored a top-level score the reference run did not give")
            use_total = not outcomes
    if use_total:
        declared = maximum if maximum is not None else adapted.max_score or 1.0
        earned = (
            adapted.points_out_of(declared) if adapted.score_given and reference_total is not False else 0.0
        )
        total = SuiteTotal(round(earned, 6), declared, suite.visibility)
    return SuiteOutcome(
        tests=tuple(outcomes),
        staff_notes=tuple(staff_notes),
        total=total,
        learner_message=adapted.message[-MAX_MESSAGE:],
    )
