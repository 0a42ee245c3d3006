"""Portfolios: declared slots of files, links and statements filled in a draft, frozen by the hand-in,
checked automatically on the `checks` queue (the checks feed the rubric's automatic criteria) and
scored by reviewers on the rest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from grader.catalog.schema import AssessmentDefinition, PortfolioAssessment, ReviewPolicy, Statement
from grader.config import Settings
from grader.errors import Conflict, InvalidInput, NotFound
from grader.intake import artifacts
from grader.kinds.base import (
    Grade,
    GradingJob,
    HandedInWhole,
    Intake,
    KindGrader,
    ReviewMaterial,
    ShapedFeedback,
    SlotMaterial,
    SubmissionRequest,
)
from grader.models import AssessmentVersion, GradeOutcome, PortfolioDraft, Result, Submission, User
from grader.services.portfolios import manifest
from grader.services.renditions import Renderer
from grader.services.repository import rubric_feedback
from grader.storage import FileStore, file_store
from grader.verdict import settle
from rubrics import Evidence, ReviewError, evaluate, rubric_from_dict


def portfolio_of(definition: AssessmentDefinition) -> PortfolioAssessment:
    if not isinstance(definition, PortfolioAssessment):
        raise TypeError(f"expected a portfolio assessment, got a {definition.kind}")
    return definition


# ---------------------------------------------------------------- the automatic checks


def run_checks(
    portfolio: PortfolioAssessment, payload: Mapping[str, Any], store: FileStore
) -> list[artifacts.CheckResult]:
    """Every slot checked again from what the store holds (type by content, size, pages, words, links).

    A file the store no longer holds, or whose bytes no longer pass, counts as not handed in as that
    type: the check fails with the reason, and nothing else is assumed."""
    files: dict[str, list[artifacts.StoredFile]] = {}
    refused: list[artifacts.CheckResult] = []
    slots = {slot.id: slot for slot in portfolio.artifacts}
    for entry in payload.get("files", []):
        slot = slots.get(entry["slot"])
        if slot is None:
            continue
        try:
            data = store.get(str(entry["sha256"]))
            checked = artifacts.check_file(
                [t.value for t in slot.types], slot.max_bytes, str(entry["name"]), data, title=slot.title
            )
        except (NotFound, InvalidInput) as exc:
            refused.append(
                artifacts.CheckResult(
                    f"checks/{slot.id}/stored", slot.id, "stored", False, f"{slot.title}: {exc.message}"
                )
            )
            continue
        files.setdefault(slot.id, []).append(checked.stored())
    return [
        *artifacts.portfolio_checks(
            file_slots=portfolio.artifacts,
            files=files,
            link_slots=portfolio.links,
            links={entry["slot"]: entry["url"] for entry in payload.get("links", [])},
            statement_slots=portfolio.statements,
            statements={entry["slot"]: entry["text"] for entry in payload.get("statements", [])},
        ),
        *refused,
    ]


class PortfolioGrader:
    """Runs the automatic checks and applies the rubric; the manual criteria wait for a reviewer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.renderer = Renderer(settings)

    def grade(self, job: GradingJob) -> Grade:
        portfolio = portfolio_of(job.definition)
        if job.rubric_definition is None:
            raise ValueError(f"portfolio {portfolio.slug} has no rubric")
        store = file_store(self.settings)
        checks = run_checks(portfolio, job.payload, store)
        evidence = Evidence(
            tests=artifacts.checks_as_evidence(checks),
            files=frozenset(
                {
                    entry["slot"]
                    for key in ("files", "links", "statements")
                    for entry in job.payload.get(key, [])
                }
            ),
        )
        rubric = rubric_from_dict(dict(job.rubric_definition), "rubric")
        carried = job.carried_review.reviews if job.carried_review is not None else ()
        try:
            scored = evaluate(rubric, evidence, carried)
        except ReviewError:
            scored = evaluate(rubric, evidence)  # the earlier review no longer fits: score it again
        verdict = settle(
            scored.score,
            scored.max_score,
            scored.passed,
            pass_mark=scored.pass_mark,
            needs_review=scored.needs_review,
            late_penalty=job.late_penalty,
        )
        feedback: dict[str, Any] = {
            "checks": [
                {"id": c.id, "slot": c.slot, "passed": c.passed, "explanation": c.explanation} for c in checks
            ],
            "rubric": rubric_feedback(scored),
            "portfolio": dict(job.payload),
            # The evidence as scored, for a reviewer's scores to be added to (reviews.py reads it back).
            "rubric_evidence": {
                "tests": [asdict(test) for test in evidence.tests],
                "files": sorted(evidence.files),
            },
            # What reviewers are shown instead of the uploads (images re-encoded, PDF pages as images).
            "renditions": self.renderer.prepare(store, job.payload.get("files", [])),
        }
        if verdict.late_penalty:
            feedback["late"] = {"penalty": verdict.late_penalty, "score_before": verdict.score_before_penalty}
        return Grade(
            score=verdict.score,
            max_score=verdict.max_score,
            passed=verdict.passed,
            needs_review=verdict.needs_review,
            feedback=feedback,
            outcome=GradeOutcome.GRADED,
        )


# ---------------------------------------------------------------- the kind


# What of a portfolio's result feedback a learner is given (`grader.services.reviews` adds the last two).
LEARNER_FEEDBACK = frozenset({"checks", "rubric", "late", "review", "review_comment"})


class PortfolioKind(HandedInWhole):
    name = "portfolio"
    queue = "checks"
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
        if request.answers is not None or request.git_url is not None or request.archive is not None:
            raise InvalidInput(
                "a portfolio is handed in from its draft: send the draft's id as 'draft'",
                details={"field": "draft"},
            )
        draft_id = request.draft_id
        if not isinstance(draft_id, str) or not draft_id:
            raise InvalidInput("send the id of your portfolio draft as 'draft'", details={"field": "draft"})
        draft = session.get(PortfolioDraft, draft_id) if len(draft_id) <= 64 else None
        if draft is None or draft.user_id != user.id:
            raise NotFound("you have no such portfolio draft", details={"field": "draft"})
        if draft.assessment_id != version.assessment_id:
            raise InvalidInput("that draft belongs to another assessment", details={"field": "draft"})
        if draft.submission_id is not None:
            raise Conflict("this draft was already handed in", details={"field": "draft"})
        payload = manifest(draft, portfolio_of(definition))

        def freeze(submission: Submission) -> None:
            draft.submission_id = submission.id

        return Intake(payload, version, on_recorded=freeze)

    def grader(self, settings: Settings | None) -> KindGrader | None:
        return PortfolioGrader(settings) if settings is not None else None

    def summary(self, version: AssessmentVersion, definition: AssessmentDefinition) -> dict[str, Any]:
        portfolio = portfolio_of(definition)
        return {"slots": [slot.model_dump(mode="json") for slot in portfolio.slots]}

    def review_policy(self, definition: AssessmentDefinition) -> ReviewPolicy:
        return portfolio_of(definition).review

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
        if staff:
            return ShapedFeedback(feedback)
        # The learner reads the checks' lines and the rubric (with the reviewers' part once reviewed);
        # the rest is the service's own record: the evidence as scored, the renditions made for
        # reviewers, a copy of the manifest the receipt already shows.
        return ShapedFeedback({key: value for key, value in feedback.items() if key in LEARNER_FEEDBACK})

    def withheld(self, session: Session, submission: Submission, result: Result) -> bool:
        return False

    def review_material(self, definition: AssessmentDefinition, payload: Mapping[str, Any]) -> ReviewMaterial:
        """Each declared slot, in the catalog's order, with the criteria it serves and what it holds."""
        portfolio = portfolio_of(definition)
        held = {
            kind: [entry for entry in payload.get(key, []) if isinstance(entry, Mapping)]
            for kind, key in (("file", "files"), ("link", "links"), ("statement", "statements"))
        }
        slots = []
        for kind, declared in (
            ("file", portfolio.artifacts),
            ("link", portfolio.links),
            ("statement", portfolio.statements),
        ):
            for slot in declared:
                slots.append(
                    SlotMaterial(
                        id=slot.id,
                        kind=kind,
                        title=slot.title,
                        description=slot.description,
                        prompt=slot.prompt if isinstance(slot, Statement) else "",
                        required=slot.required,
                        criteria=tuple(slot.criteria),
                        entries=tuple(entry for entry in held[kind] if entry.get("slot") == slot.id),
                    )
                )
        return ReviewMaterial(slots=tuple(slots))


KIND = PortfolioKind()
