"""Repository grading: the learner's files through each test suite in the sandbox, then the rubric.

Three kinds of suites, mixable in one assessment (each in `grader.suites`):

* `pytest`: the course team's hidden tests, in-process with canaries, or with `isolation: process`;
* `io`: the learner's program on a given stdin, its stdout compared outside the box;
* `command`: the course team's own autograder (Gradescope or PrairieLearn layout and results.json).

Only `sandbox_error` (a fault on our side) raises `SandboxUnavailable`; everything the learner's code
does (fail, crash, time out, exhaust memory) is a result. A course team's autograder that breaks is
a `grader_error`, which charges the learner nothing.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from grader import metrics
from grader.catalog.bundle import Bundle, ExpectedTests
from grader.catalog.schema import CommandSuite, IoCase, PytestSuite, RepositoryAssessment, Visibility
from grader.harness.image import IMAGE_PACKAGES
from grader.suites.command_suite import run_command_suite
from grader.suites.common import SuiteOutcome, SuiteTotal, TestOutcome
from grader.suites.io_suite import run_io_case
from grader.suites.pytest_suite import run_pytest_suite
from grader.verdict import Verdict, settle
from rubrics import Evidence, Review, RubricResult, TestEvidence, evaluate, rubric_from_dict
from sandbox.contract import Runner

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
# A learner module named like one of these would replace it for the tests and the harness.
SHADOWED_MODULES = frozenset(sys.stdlib_module_names) | IMAGE_PACKAGES
MAX_LEARNER_FILE_BYTES = 1024 * 1024
MAX_LEARNER_FILES = 500

__all__ = ["RepositoryGrading", "RepositoryReport", "TestOutcome", "score"]


@dataclass(frozen=True)
class RepositoryReport:
    """Everything the suites found about one work tree."""

    tests: tuple[TestOutcome, ...]
    tampered: bool
    notes: tuple[str, ...]
    files: frozenset[str]
    staff_notes: tuple[str, ...] = ()
    totals: Mapping[str, SuiteTotal] = field(default_factory=dict)  # suite id -> its own total
    grader_error: str | None = None  # staff only
    not_gradable: str | None = None
    learner_messages: tuple[tuple[str, str, str], ...] = ()  # (suite id, its visibility, the text)
    calls: int = 0
    call_seconds: float = 0.0


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
    """The learner files the assessment allows, minus anything that could take over the harness;
    the second list says, for each file left out, why."""
    compiled = [compile_glob(p) for p in patterns]
    chosen: dict[str, bytes] = {}
    dropped: list[str] = []
    for relative in list_tree(tree):
        name = PurePosixPath(relative).name
        if not any(c.match(relative) for c in compiled):
            continue
        top_module = relative.split("/")[0].removesuffix(".py")
        if name in FORBIDDEN_NAMES or name.endswith(FORBIDDEN_SUFFIXES) or "__pycache__" in relative:
            dropped.append(f"ignored {relative}: not allowed next to the tests")
            continue
        if relative.endswith(".py") and top_module in SHADOWED_MODULES:
            dropped.append(f"ignored {relative}: it would replace Python's own {top_module} module")
            continue
        path = tree / relative
        if path.stat().st_size > MAX_LEARNER_FILE_BYTES or len(chosen) >= MAX_LEARNER_FILES:
            dropped.append(f"ignored {relative}: over the size or count limit")
            continue
        chosen[relative] = path.read_bytes()
    return chosen, dropped


class RepositoryGrading:
    """Runs an assessment's suites against one learner work tree."""

    def __init__(self, runner: Runner, *, image: str | None = None, suites_at_once: int = 2) -> None:
        self.runner = metrics.metered(runner)  # each job's outcome counted, whoever chose the backend
        self.image = image
        self.suites_at_once = max(1, suites_at_once)

    def run(
        self,
        assessment: RepositoryAssessment,
        bundle: Bundle,
        tree: Path | Callable[[], Path],
        expected: ExpectedTests | None = None,
    ) -> RepositoryReport:
        """Grade the work tree at `tree`, or the one `tree()` makes (a fetch): then the boxes that can
        start before the learner's files exist (in-process pytest: its interpreter and pytest) start
        while it runs, and whatever `tree()` raises is raised here."""
        found: dict[str, Any] = {}

        def learner_files() -> Mapping[str, bytes]:
            found["tree"] = tree() if callable(tree) else tree
            files, found["dropped"] = allowed_learner_files(found["tree"], assessment.learner_files)
            return files

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetch") as fetching:
            learner = fetching.submit(learner_files)
            try:
                outcomes = self._run_suites(assessment, bundle, learner, expected)
            except BaseException:
                fetch_failure = learner.exception()
                if fetch_failure is not None:
                    raise fetch_failure from None  # the fetch's own error, not a box it broke
                raise
            learner.result()  # a suite that never needed the files still stands on a tree that exists
        dropped: list[str] = found["dropped"]
        return RepositoryReport(
            tests=tuple(t for o in outcomes for t in o.tests),
            tampered=any(o.tampered for o in outcomes),
            notes=(*dropped, *(n for o in outcomes for n in o.notes)),
            staff_notes=tuple(n for o in outcomes for n in o.staff_notes),
            files=frozenset(list_tree(found["tree"])),
            totals={s.id: o.total for s, o in zip(assessment.tests, outcomes, strict=True) if o.total},
            grader_error="\n".join(o.grader_error for o in outcomes if o.grader_error) or None,
            not_gradable="\n".join(o.not_gradable for o in outcomes if o.not_gradable) or None,
            learner_messages=tuple(
                (suite.id, suite.visibility, o.learner_message)
                for suite, o in zip(assessment.tests, outcomes, strict=True)
                if o.learner_message
            ),
            calls=sum(o.calls for o in outcomes),
            call_seconds=sum(o.call_seconds for o in outcomes),
        )

    def _run_suites(
        self,
        assessment: RepositoryAssessment,
        bundle: Bundle,
        learner: Future[Mapping[str, bytes]],
        expected: ExpectedTests | None,
    ) -> list[SuiteOutcome]:
        def run_suite(suite: PytestSuite | IoCase | CommandSuite) -> SuiteOutcome:
            pinned = expected.for_suite(suite.id) if expected is not None else None
            if isinstance(suite, PytestSuite):
                return run_pytest_suite(
                    self.runner,
                    assessment,
                    suite,
                    bundle.under(suite.path),
                    learner,
                    pinned,
                    image=self.image,
                )
            if isinstance(suite, IoCase):
                return run_io_case(self.runner, assessment, suite, learner.result(), image=self.image)
            return run_command_suite(
                self.runner,
                assessment,
                suite,
                bundle.under(suite.folder),
                learner.result(),
                pinned,
                image=self.image,
                reference_total=None if expected is None else suite.id in expected.totals,
            )

        # Suites are independent boxes over the same files: a short io case need not wait for the hidden
        # tests' box to end (the run takes about its longest suite, not their sum).
        workers = min(self.suites_at_once, len(assessment.tests))
        if workers <= 1:
            return [run_suite(suite) for suite in assessment.tests]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="suite") as pool:
            return list(pool.map(run_suite, assessment.tests))


def evidence_from(report: RepositoryReport) -> Evidence:
    """The rubric's evidence: each test, except where a suite's own total overrides its tests."""
    tests = [
        TestEvidence(o.id, o.passed, o.points, o.max_points)
        for o in report.tests
        if o.suite not in report.totals
    ]
    tests += [
        TestEvidence(suite, total.points >= total.max_points, total.points, total.max_points)
        for suite, total in report.totals.items()
    ]
    return Evidence(tests=tuple(tests), files=report.files)


def evidence_from_feedback(feedback: Mapping[str, Any]) -> Evidence:
    """The same evidence, read back from a stored result's feedback (a review scores against it)."""
    stored = feedback.get("rubric_evidence")
    if isinstance(stored, Mapping):
        # Written as scored by a grader whose feedback has no test list (a portfolio's checks).
        return Evidence(
            tests=tuple(TestEvidence(**test) for test in stored.get("tests", [])),
            files=frozenset(stored.get("files", [])),
        )
    totals = feedback.get("totals", {})
    tests = [
        TestEvidence(t["id"], bool(t["passed"]), float(t["points"]), float(t["max_points"]))
        for t in feedback.get("tests", [])
        if t.get("suite") not in totals
    ]
    tests += [
        TestEvidence(
            suite, float(t["points"]) >= float(t["max_points"]), float(t["points"]), float(t["max_points"])
        )
        for suite, t in totals.items()
    ]
    return Evidence(tests=tuple(tests), files=frozenset(feedback.get("files", [])))


def score(
    report: RepositoryReport,
    rubric_definition: Mapping[str, Any],
    reviews: Iterable[Review] = (),
    *,
    late_penalty: float = 0.0,
) -> tuple[Verdict, RubricResult]:
    """Apply the rubric to the evidence, then the verdict's rules (a tampered run fails outright)."""
    rubric = rubric_from_dict(dict(rubric_definition), "rubric")
    result = evaluate(rubric, evidence_from(report), reviews)
    verdict = settle(
        result.score,
        result.max_score,
        result.passed,
        pass_mark=result.pass_mark,
        needs_review=result.needs_review,
        tampered=report.tampered,
        late_penalty=late_penalty,
    )
    return verdict, result


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
    feedback: dict[str, Any] = {
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
                **({"number": o.number} if o.number else {}),
                **({"tags": list(o.tags)} if o.tags else {}),
            }
            for o in report.tests
        ],
        "totals": {
            s: {"points": t.points, "max_points": t.max_points, "visibility": t.visibility}
            for s, t in report.totals.items()
        },
        "tampered": report.tampered,
        "notes": list(report.notes),
        "staff": {"notes": list(report.staff_notes)},
        "suite_messages": [
            {"suite": suite, "visibility": visibility, "text": text}
            for suite, visibility, text in report.learner_messages
        ],
        # Kept so a reviewer's scores can be combined with the same evidence later.
        "files": sorted(report.files)[:MAX_LEARNER_FILES],
    }
    if report.calls:
        feedback["isolation"] = {"calls": report.calls, "seconds": round(report.call_seconds, 3)}
    return feedback


@dataclass(frozen=True)
class Release:
    """When hidden parts of a result open to its learner: their due date, and the publication."""

    due: datetime | None
    published: datetime | None
    now: datetime

    def open(self, visibility: str) -> bool:
        if visibility in (Visibility.VISIBLE, Visibility.NAME_ONLY):
            return True
        if visibility == Visibility.AFTER_DUE_DATE:
            if self.due is None:  # no due date to wait for: the staff's publication stands for it
                return self.published is not None and self.now >= self.published
            return self.now >= self.due
        if visibility == Visibility.AFTER_PUBLISHED:
            return self.published is not None and self.now >= self.published
        return False  # hidden, or a value this version does not know: shown to nobody


def _holds_back(visibility: str, release: Release) -> bool:
    """Whether a test one cannot see holds the total back now: until it opens, and a `hidden` one (never
    shown) until staff publish the results, as Gradescope shows the total of a result with hidden tests
    once grades are published."""
    if visibility == Visibility.HIDDEN:
        return not release.open(Visibility.AFTER_PUBLISHED)
    return not release.open(visibility)


def visible_tests(
    tests: Sequence[Mapping[str, Any]],
    release: Release,
    totals: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """What a learner may see of each test, and whether anything is withheld: a test, or a suite's
    own total (either holds back the whole total, as Gradescope does)."""
    shown: list[dict[str, Any]] = []
    withheld = any(
        _holds_back(str(t.get("visibility", Visibility.VISIBLE)), release) for t in (totals or {}).values()
    )
    for test in tests:
        visibility = str(test.get("visibility", Visibility.VISIBLE))
        if not release.open(visibility):
            withheld = withheld or _holds_back(visibility, release)
            continue
        item = {
            "id": test["id"],
            "passed": test["passed"],
            "points": test["points"],
            "max_points": test["max_points"],
            **({"number": test["number"]} if test.get("number") else {}),
            **({"tags": test["tags"]} if test.get("tags") else {}),
        }
        if visibility == Visibility.NAME_ONLY:
            item["hidden"] = True  # name and status only
        else:
            item["message"] = test.get("message", "")
            item["detail"] = test.get("detail", {})
        shown.append(item)
    return shown, withheld
