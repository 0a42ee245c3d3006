"""Requirement outcomes, program progress and credential awards.

Each submission stands on its latest *final* result (one with a verdict): a newer result that waits
for a reviewer, or that the autograder could not produce, does not displace it. So a regrade never
revokes a credential by an intermediate state; only a final result that no longer passes does. A
requirement is met by the learner's best standing result (passed, or reaching the program's
`min_score` where set). When every requirement of a program is met, a `CredentialAward` is recorded
and its signed credential opened; if a final result later withdraws a pass it rests on, the award is
suspended until it passes again; staff revoke. Every change goes to the audit log.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, bindparam, case, func, select
from sqlalchemy.orm import Session, joinedload

from grader.errors import NotFound, PermissionDenied
from grader.models import (
    AwardStatus,
    CredentialAward,
    CredentialStatus,
    Enrollment,
    Program,
    Requirement,
    Result,
    Submission,
    SubmissionStatus,
    User,
    utcnow,
)
from grader.services import audit
from grader.verdict import PASS_EPSILON, meets


@dataclass(frozen=True)
class RequirementStatus:
    assessment: str
    title: str
    kind: str
    status: str  # passed | failed | pending | not_attempted | held_back
    best_fraction: float | None
    min_score: float | None
    submission_id: str | None
    result_id: int | None = None


@dataclass(frozen=True)
class ProgramProgress:
    program: str
    title: str
    requirements: tuple[RequirementStatus, ...]
    complete: bool
    credential_id: str | None
    credential_status: str | None
    awarded_at: datetime | None
    # The signed credential of the award (its public page is /credentials/<id>), once opened.
    issued_credential_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "title": self.title,
            "complete": self.complete,
            "passed": sum(1 for r in self.requirements if r.status == "passed"),
            "total": len(self.requirements),
            "requirements": [
                {k: v for k, v in r.__dict__.items() if k != "result_id"} for r in self.requirements
            ],
            "credential": None
            if self.credential_id is None
            else {
                "id": self.credential_id,
                "status": self.credential_status,
                "awarded_at": self.awarded_at.isoformat() if self.awarded_at else None,
                "credential_id": self.issued_credential_id,
            },
        }


def requirement_status(session: Session, user_id: int, requirement: Requirement) -> RequirementStatus:
    """The learner's standing on one requirement, from the latest result of each of their submissions."""
    assessment = requirement.assessment
    of_this_learner = (Submission.user_id == user_id, Submission.assessment_id == requirement.assessment_id)
    latest_per_submission = (
        select(func.max(Result.id))
        .join(Submission)
        .where(*of_this_learner, Result.passed.is_not(None))
        .group_by(Result.submission_id)
    )
    results = session.scalars(select(Result).where(Result.id.in_(latest_per_submission))).all()
    pending = session.scalar(
        select(func.count(Submission.id)).where(
            *of_this_learner,
            Submission.status.in_(
                [SubmissionStatus.QUEUED, SubmissionStatus.GRADING, SubmissionStatus.NEEDS_REVIEW]
            ),
        )
    )
    decided = [r for r in results if r.passed is not None]
    # Best first: meeting the requirement beats not meeting it, then the higher score wins.
    best = max(decided, key=lambda r: (_meets(r, requirement), r.fraction), default=None)
    if best is not None and _meets(best, requirement):
        status = "passed"
    elif pending:
        status = "pending"
    elif best is not None:
        status = "failed"
    else:
        status = "not_attempted"
    return RequirementStatus(
        assessment=assessment.slug,
        title=assessment.title,
        kind=assessment.kind,
        status=status,
        best_fraction=round(best.fraction, 4) if best else None,
        min_score=requirement.min_score,
        submission_id=best.submission_id if best else None,
        result_id=best.id if best else None,
    )


def _meets(result: Result, requirement: Requirement) -> bool:
    if result.passed is None:
        return False
    if requirement.min_score is not None:
        return meets(result.fraction, requirement.min_score)
    return result.passed


def program_progress(session: Session, user: User, program_slug: str) -> ProgramProgress:
    program = session.scalar(select(Program).where(Program.slug == program_slug))
    if program is None:
        raise NotFound(f"no program {program_slug!r}")
    enrolled = session.scalar(
        select(Enrollment.id).where(Enrollment.user_id == user.id, Enrollment.program_id == program.id)
    )
    if enrolled is None:
        raise PermissionDenied(f"you are not enrolled in {program_slug!r}")
    return _progress(session, user.id, program, _award_of(session, user.id, program.id))


def _award_of(session: Session, user_id: int, program_id: int) -> CredentialAward | None:
    return session.scalar(
        select(CredentialAward).where(
            CredentialAward.user_id == user_id, CredentialAward.program_id == program_id
        )
    )


def _progress(
    session: Session, user_id: int, program: Program, award: CredentialAward | None
) -> ProgramProgress:
    statuses = tuple(requirement_status(session, user_id, r) for r in program.requirements)
    return ProgramProgress(
        program=program.slug,
        title=program.title,
        requirements=statuses,
        complete=all(s.status == "passed" for s in statuses),
        credential_id=award.id if award else None,
        credential_status=award.status if award else None,
        awarded_at=award.awarded_at if award else None,
        issued_credential_id=next(
            (c.id for c in reversed(award.credentials) if c.status != CredentialStatus.REVOKED), None
        )
        if award
        else None,
    )


def enrolled_programs(session: Session, user: User) -> list[ProgramProgress]:
    programs = session.scalars(
        select(Program).join(Enrollment).where(Enrollment.user_id == user.id).order_by(Program.title)
    ).all()
    return [_progress(session, user.id, p, _award_of(session, user.id, p.id)) for p in programs]


def update_awards(session: Session, user_id: int, assessment_id: int, *, actor: str) -> list[CredentialAward]:
    """Award, suspend, reinstate or re-grant the credentials of the enrolled programs needing this assessment.

    An award opens its signed credential (`credentials.open_credential`). A pass that no longer stands, or
    a passing submission back with a reviewer, suspends it; passing again lifts the suspension. After a
    staff revocation only work graded since then earns the program again, as a new credential.
    This runs after every grade: a set-based check decides first whether anything can change.
    """
    if not awards_may_change(session, user_id, assessment_id):
        return []
    return walk_awards(session, user_id, assessment_id, actor=actor)


def walk_awards(session: Session, user_id: int, assessment_id: int, *, actor: str) -> list[CredentialAward]:
    """`update_awards` the long way: each program's progress requirement by requirement."""
    from grader.services import credentials

    # The programs, their requirements and assessments in one query.
    needing = select(Requirement.program_id).where(Requirement.assessment_id == assessment_id)
    programs = (
        session.scalars(
            select(Program)
            .join(Enrollment, Enrollment.program_id == Program.id)
            .where(Program.id.in_(needing), Enrollment.user_id == user_id)
            .options(joinedload(Program.requirements).joinedload(Requirement.assessment))
        )
        .unique()
        .all()
    )
    changed: list[CredentialAward] = []
    for program in programs:
        award = _award_of(session, user_id, program.id)
        progress = _progress(session, user_id, program, award)
        evidence = [
            {"assessment": r.assessment, "submission": r.submission_id, "fraction": r.best_fraction}
            for r in progress.requirements
        ]
        standing = progress.complete and not _back_in_review(session, progress)
        if standing and (award is None or _earned_again(session, award, progress)):
            before = None if award is None else {"status": award.status}
            if award is None:
                award = CredentialAward(user_id=user_id, program_id=program.id, evidence=evidence)
                session.add(award)
                session.flush()
            else:
                award.status, award.evidence = AwardStatus.AWARDED, evidence
                award.awarded_at, award.revoked_at, award.revocation_reason = utcnow(), None, ""
            credentials.open_credential(session, award)
            changed.append(award)
            audit.record(
                session,
                audit.Actions.AWARD_GRANTED,
                actor=actor,
                subject=f"award {award.id}",
                before=before,
                after={"status": AwardStatus.AWARDED, "program": program.slug, "evidence": evidence},
                reason="every requirement of the program is met",
                learner_id=user_id,
                assessment_id=assessment_id,
            )
        elif standing and award is not None and award.status == AwardStatus.SUSPENDED:
            award.status, award.evidence = AwardStatus.AWARDED, evidence
            credentials.reinstate(award)
            changed.append(award)
            audit.record(
                session,
                audit.Actions.AWARD_REINSTATED,
                actor=actor,
                subject=f"award {award.id}",
                before={"status": AwardStatus.SUSPENDED},
                after={"status": AwardStatus.AWARDED, "program": program.slug, "evidence": evidence},
                reason="every requirement of the program is met again",
                learner_id=user_id,
                assessment_id=assessment_id,
            )
        elif not standing and award is not None and award.status == AwardStatus.AWARDED:
            award.status = AwardStatus.SUSPENDED
            credentials.suspend(award, utcnow())
            changed.append(award)
            unmet = [r.assessment for r in progress.requirements if r.status != "passed"]
            reason = (
                f"a requirement it rests on is no longer met: {', '.join(unmet)}"
                if unmet
                else "a requirement it rests on is back with a reviewer"
            )
            audit.record(
                session,
                audit.Actions.AWARD_SUSPENDED,
                actor=actor,
                subject=f"award {award.id}",
                before={"status": AwardStatus.AWARDED},
                after={"status": AwardStatus.SUSPENDED, "program": program.slug},
                reason=reason,
                learner_id=user_id,
                assessment_id=assessment_id,
            )
    session.flush()
    return changed


def awards_may_change(session: Session, user_id: int, assessment_id: int) -> bool:
    """Could a result of this assessment change an award of the learner? One set-based statement.

    It runs after every grade, and nearly always the answer is no: the program is not complete and has
    no award standing, or it is complete and its award stands. For each enrolled program needing the
    assessment it counts the requirements met (by the same rule as `requirement_status`) and reads the
    award's status; a submission of the program waiting for a reviewer sends the learner to the full
    walk, which alone knows whether a pass rests on it.
    """
    rows = session.execute(_award_check_statement(), {"user_id": user_id, "assessment_id": assessment_id})
    for required, met_count, reviewing, status in rows:
        if met_count < required:
            if status == AwardStatus.AWARDED:
                return True  # a pass it rests on is gone: suspend
        elif reviewing or status != AwardStatus.AWARDED:
            return True  # grant, reinstate, re-earn, or find out whether a pass went back to review
    return False


@functools.cache
def _award_check_statement() -> Select[Any]:
    """`awards_may_change`'s statement, built once (its construction costs more than its run).
    Parameters: user_id, assessment_id."""
    user_id = bindparam("user_id", type_=Integer)
    assessment_id = bindparam("assessment_id", type_=Integer)
    latest_final = (
        select(func.max(Result.id))
        .join(Submission, Submission.id == Result.submission_id)
        .where(Submission.user_id == user_id, Result.passed.is_not(None))
        .group_by(Result.submission_id)
    )
    fraction = case((Result.max_score > 0, Result.score / Result.max_score), else_=0.0)
    met = (
        select(Result.id)
        .join(Submission, Submission.id == Result.submission_id)
        .where(
            Result.id.in_(latest_final),
            Submission.assessment_id == Requirement.assessment_id,
            case(
                (Requirement.min_score.is_(None), Result.passed.is_(True)),
                else_=fraction >= Requirement.min_score - PASS_EPSILON,
            ),
        )
        .exists()
    )
    in_review = (
        select(Submission.id)
        .where(
            Submission.user_id == user_id,
            Submission.assessment_id == Requirement.assessment_id,
            Submission.status == SubmissionStatus.NEEDS_REVIEW,
        )
        .exists()
    )
    award_status = (
        select(CredentialAward.status)
        .where(CredentialAward.user_id == user_id, CredentialAward.program_id == Requirement.program_id)
        .scalar_subquery()
    )
    needing = select(Requirement.program_id).where(Requirement.assessment_id == assessment_id)
    return (
        select(
            func.count(Requirement.id),
            func.sum(case((met, 1), else_=0)),
            func.sum(case((in_review, 1), else_=0)),
            award_status,
        )
        .join(Enrollment, Enrollment.program_id == Requirement.program_id)
        .where(Enrollment.user_id == user_id, Requirement.program_id.in_(needing))
        .group_by(Requirement.program_id)
    )


def _back_in_review(session: Session, progress: ProgramProgress) -> bool:
    """Is a submission that a pass rests on waiting for a reviewer again (a regrade, a regrade request)?"""
    resting_on = [r.submission_id for r in progress.requirements if r.submission_id]
    if not resting_on:
        return False
    waiting = session.scalar(
        select(func.count(Submission.id)).where(
            Submission.id.in_(resting_on), Submission.status == SubmissionStatus.NEEDS_REVIEW
        )
    )
    return bool(waiting)


def _earned_again(session: Session, award: CredentialAward, progress: ProgramProgress) -> bool:
    """After a revocation, the program is earned again only by passing work graded since."""
    if award.status != AwardStatus.REVOKED or award.revoked_at is None:
        return False
    assessments = select(Requirement.assessment_id).where(Requirement.program_id == award.program_id)
    newest_pass = session.scalar(
        select(func.max(Result.created_at))
        .join(Submission, Submission.id == Result.submission_id)
        .where(
            Submission.user_id == award.user_id,
            Submission.assessment_id.in_(assessments),
            Result.passed.is_(True),
        )
    )
    return newest_pass is not None and newest_pass > award.revoked_at
