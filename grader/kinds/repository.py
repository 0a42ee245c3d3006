"""Code repositories: a git URL or an archive accepted and pinned at intake, graded by running the
hidden suites in the sandbox, and the rules for which tests and totals a learner may see when."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from grader.catalog.bundle import Bundle, ExpectedTests
from grader.catalog.loader import BUNDLED_FOLDERS_KEY, EXPECTED_TESTS_KEY
from grader.catalog.schema import AssessmentDefinition, PytestSuite, RepositoryAssessment, ReviewPolicy
from grader.config import Settings
from grader.errors import InvalidInput, RepositoryUnavailable, SandboxUnavailable
from grader.kinds.base import (
    Grade,
    GradingJob,
    HandedInWhole,
    Intake,
    ReviewMaterial,
    ShapedFeedback,
    SubmissionRequest,
)
from grader.models import AssessmentVersion, GradeOutcome, Result, Submission, User, utcnow
from grader.services.catalog import parse_definition
from grader.services.deadlines import deadline_for
from grader.services.evidence import capture_tree
from grader.services.images import setup_image
from grader.services.repository import (
    Release,
    RepositoryGrading,
    report_feedback,
    rubric_feedback,
    score,
    visible_tests,
)
from grader.services.workspace import accept_archive, accept_git, materialise
from grader.storage import file_store
from rubrics import ReviewError
from sandbox.contract import Runner
from sandbox.errors import SandboxUnavailable as SandboxBackendMissing
from sandbox.select import select_runner


def repository_of(definition: AssessmentDefinition) -> RepositoryAssessment:
    if not isinstance(definition, RepositoryAssessment):
        raise TypeError(f"expected a repository assessment, got a {definition.kind}")
    return definition


def starter_files(version: AssessmentVersion) -> dict[str, bytes]:
    """A repository assessment's starter code (its `starter` folder in the stored bundle), by path."""
    definition = parse_definition(version)
    if not isinstance(definition, RepositoryAssessment):
        return {}
    return Bundle.from_stored(version.definition.get(BUNDLED_FOLDERS_KEY)).under(definition.starter)


def expected_tests(
    assessment: RepositoryAssessment, raw_definition: Mapping[str, Any]
) -> ExpectedTests | None:
    stored = raw_definition.get(EXPECTED_TESTS_KEY)
    if stored is None:
        return None
    folders = {s.id: s.path for s in assessment.tests if isinstance(s, PytestSuite)}
    return ExpectedTests.from_file_data(stored, folders)


# ---------------------------------------------------------------- what a learner may see, and when


def release_for(session: Session, submission: Submission, now: datetime | None = None) -> Release:
    """When the hidden parts of this submission's results open to its learner."""
    definition = parse_definition(submission.assessment_version)
    deadline = deadline_for(session, submission.user_id, submission.assessment_id, definition)
    return Release(
        due=deadline.closes, published=submission.assessment.results_published_at, now=now or utcnow()
    )


def withheld_reason(release: Release) -> str:
    parts = []
    if release.due is not None and release.now < release.due:
        parts.append(f"after the due date ({release.due:%Y-%m-%d %H:%M} UTC)")
    if release.published is None or release.now < release.published:
        parts.append("when staff publish the results")
    return "Some tests are hidden, so the total is held back; it is shown " + (
        " or ".join(parts) if parts else "to staff only"
    )


# ---------------------------------------------------------------- grading


class RepositoryGrader:
    """Materialises the learner's tree, runs the suites in the sandbox, then applies the rubric."""

    def __init__(self, settings: Settings, runner: Runner | None = None) -> None:
        self.settings = settings
        self._runner = runner

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            try:
                self._runner = select_runner(
                    self.settings.sandbox_backend,
                    image=self.settings.sandbox_image,
                    rootfs=self.settings.sandbox_rootfs,
                    docker_warm_pool=self.settings.docker_warm_pool,
                )
            except SandboxBackendMissing as exc:
                raise SandboxUnavailable(
                    f"no sandbox backend works on this worker: {exc}. {exc.fix}"
                ) from None
        return self._runner

    def grade(self, job: GradingJob) -> Grade:
        assessment = repository_of(job.definition)
        if job.rubric_definition is None:
            raise ValueError(f"repository assessment {assessment.slug} has no rubric")
        bundle = Bundle.from_stored(job.raw_definition.get(BUNDLED_FOLDERS_KEY))
        image = setup_image(assessment, bundle, self.settings.sandbox_image)
        with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
            roots: list[Path] = []  # the work tree's root, once fetched (an archive's may be a folder in it)

            def fetch() -> Path:
                roots.append(materialise(self.settings, job.payload, Path(scratch) / "tree"))
                return roots[0]

            grading = RepositoryGrading(
                self.runner,
                image=image.reference if image else None,
                suites_at_once=self.settings.sandbox_suites_at_once,
            )
            try:
                # Fetched while the hidden tests' box starts (RepositoryGrading.run).
                report = grading.run(
                    assessment,
                    bundle,
                    fetch,
                    expected_tests(assessment, job.raw_definition),
                )
            except RepositoryUnavailable as exc:
                # The learner's repository vanished or broke after intake: their fault, and final.
                return Grade(
                    score=0.0,
                    max_score=0.0,
                    passed=False,
                    feedback={"tests": [], "notes": [exc.message], "tampered": False},
                    outcome=GradeOutcome.REPOSITORY_UNAVAILABLE,
                )
            evidence = capture_tree(file_store(self.settings), roots[0])
        feedback: dict[str, Any] = {**report_feedback(report), "commit": job.commit_sha, "evidence": evidence}
        # What anyone holding the same inputs needs to grade it again: named on the credential.
        feedback["environment"] = {
            "image": image.reference if image else self.settings.sandbox_image,
            "tests_sha256": bundle.digest(),
        }
        if report.grader_error is not None:
            # The course team's autograder broke: staff see why; the learner is charged nothing.
            feedback["staff"] = {**feedback["staff"], "grader_error": report.grader_error}
            return Grade(0.0, 0.0, None, feedback, outcome=GradeOutcome.GRADER_ERROR)
        if report.not_gradable is not None:
            feedback["messages"] = [report.not_gradable]
            return Grade(0.0, 0.0, None, feedback, outcome=GradeOutcome.NOT_GRADABLE)
        carried = job.carried_review.reviews if job.carried_review is not None else ()
        try:
            verdict, rubric_result = score(
                report, job.rubric_definition, carried, late_penalty=job.late_penalty
            )
        except ReviewError:
            # The earlier review does not fit the new rubric after all: a reviewer scores it again.
            verdict, rubric_result = score(report, job.rubric_definition, late_penalty=job.late_penalty)
        feedback["rubric"] = rubric_feedback(rubric_result)
        if verdict.late_penalty:
            feedback["late"] = {"penalty": verdict.late_penalty, "score_before": verdict.score_before_penalty}
        return Grade(
            score=verdict.score,
            max_score=verdict.max_score,
            passed=verdict.passed,
            needs_review=verdict.needs_review,
            feedback=feedback,
            outcome=GradeOutcome.TAMPERED if report.tampered else GradeOutcome.GRADED,
        )


# ---------------------------------------------------------------- the kind


class RepositoryKind(HandedInWhole):
    name = "repository"
    queue = "sandbox"
    deadline_grace = timedelta(0)

    def accept(
        self,
        session: Session,
        settings: Settings,
        user: User,
        version: AssessmentVersion,
        definition: AssessmentDefinition,
        request: SubmissionRequest,
        now: datetime,
    ) -> Intake:
        if request.answers is not None or request.attempt_id is not None:
            raise InvalidInput(
                "a repository assessment takes git_url or archive, not answers", details={"field": "answers"}
            )
        if (request.git_url is None) == (request.archive is None):
            raise InvalidInput("send exactly one of git_url or archive", details={"field": "git_url"})
        if request.git_url is not None:
            # Nothing of the hand-in is written yet: the read transaction ends before git runs, so a slow
            # forge holds no connection and no lock (on SQLite, the one writer lock the token's last-use
            # stamp takes, which every other request would queue behind).
            session.commit()
            return Intake(accept_git(settings, request.git_url, request.ref), version)
        assert request.archive is not None
        if request.ref is not None:
            raise InvalidInput("ref only goes with git_url", details={"field": "ref"})
        with tempfile.TemporaryDirectory(prefix="intake-") as scratch:
            payload = accept_archive(settings, request.archive, request.archive_name, Path(scratch) / "tree")
        return Intake(payload, version)

    def grader(self, settings: Settings | None) -> RepositoryGrader | None:
        return RepositoryGrader(settings) if settings is not None else None

    def summary(self, version: AssessmentVersion, definition: AssessmentDefinition) -> dict[str, Any]:
        repository = repository_of(definition)
        return {
            "limits": repository.limits.model_dump(),
            "submissions_per_hour": repository.submissions_per_hour,
            "has_starter": bool(starter_files(version)),
        }

    def review_policy(self, definition: AssessmentDefinition) -> ReviewPolicy:
        return repository_of(definition).review

    def shape_feedback(
        self,
        session: Session,
        submission: Submission,
        result: Result,
        definition: AssessmentDefinition,
        feedback: dict[str, Any],
        *,
        staff: bool,
    ) -> ShapedFeedback:
        feedback.pop("files", None)
        if staff:
            return ShapedFeedback(feedback)
        feedback.pop("staff", None)
        release = release_for(session, submission)
        tests, withheld = visible_tests(feedback.get("tests", []), release, feedback.get("totals", {}))
        feedback["tests"] = tests
        feedback["messages"] = [
            *feedback.get("messages", []),
            *(m["text"] for m in feedback.pop("suite_messages", []) if release.open(m["visibility"])),
        ]
        if not withheld:
            return ShapedFeedback(feedback)
        hidden_ids = {t["id"] for t in result.feedback.get("tests", [])} - {t["id"] for t in tests}
        # Notes may quote a hidden test's name or code; the rubric and totals show its points.
        feedback["notes"] = [
            n
            for n in feedback.get("notes", [])
            if "could not collect" not in n and not any(i in n for i in hidden_ids)
        ]
        feedback.pop("rubric", None)
        feedback.pop("totals", None)
        return ShapedFeedback(feedback, held_back=withheld_reason(release))

    def withheld(self, session: Session, submission: Submission, result: Result) -> bool:
        _, withheld = visible_tests(
            result.feedback.get("tests", []),
            release_for(session, submission),
            result.feedback.get("totals", {}),
        )
        return withheld

    def review_material(self, definition: AssessmentDefinition, payload: Mapping[str, Any]) -> ReviewMaterial:
        return ReviewMaterial()  # the work tree and the tests are the evidence


KIND = RepositoryKind()
