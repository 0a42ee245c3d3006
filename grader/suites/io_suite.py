"""io cases: the learner's program on a given stdin, its stdout compared here, outside the box.

The comparison happens in the worker on the bytes the box printed, so nothing the learner's process
does can change how it is compared.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from grader.catalog.schema import IoCase, IoCompare, RepositoryAssessment
from grader.suites.common import SuiteOutcome, TestOutcome, box_limits, check_sandbox, learner_fault
from sandbox.contract import BoxFile, JobSpec, Runner


def run_io_case(
    runner: Runner,
    assessment: RepositoryAssessment,
    case: IoCase,
    learner: Mapping[str, bytes],
    *,
    image: str | None = None,
) -> SuiteOutcome:
    result = runner.run(
        JobSpec(
            command=tuple(case.command),
            files=tuple(BoxFile(name, content) for name, content in learner.items()),
            stdin=case.stdin.encode(),
            limits=box_limits(assessment.limits),
            image=image,
        )
    )
    check_sandbox(result)
    actual = result.stdout.decode("utf-8", errors="replace")
    fault = learner_fault(result, "the program")
    passed = not fault and compare(case, actual)
    message = fault or ("" if passed else "the output differs from the expected output")
    detail = {"stdin": case.stdin, "expected": case.expected, "actual": actual[-4000:]}
    outcome = TestOutcome(
        case.id,
        case.id,
        passed,
        case.points if passed else 0.0,
        case.points,
        message,
        case.visibility,
        detail,
    )
    return SuiteOutcome(tests=(outcome,))


def compare(case: IoCase, actual: str) -> bool:
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
