"""Who may review or run what: admins everywhere, reviewers and staff in the programs they belong to.

A reviewer reviews the submissions of the programs they are staff of (`ProgramStaff`, role reviewer
or staff); staff also run those programs (enrolment, assignment, regrades, gradebook). The
functions here answer with sets of program ids, so queries can filter in SQL. The staff pages
narrow everything through `staff_scope` (None: every program, for an admin).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.errors import NotFound, PermissionDenied
from grader.models import (
    Enrollment,
    Program,
    ProgramStaff,
    Requirement,
    Role,
    StaffRole,
    Submission,
    User,
)


def programs_of(session: Session, user: User, *, staff_only: bool = False) -> set[int] | None:
    """The ids of the programs `user` reviews (or runs, with `staff_only`); None means every program."""
    if user.role == Role.ADMIN:
        return None
    if user.role == Role.LEARNER:
        return set()
    query = select(ProgramStaff.program_id).where(ProgramStaff.user_id == user.id)
    if staff_only:
        query = query.where(ProgramStaff.role == StaffRole.STAFF)
    return set(session.scalars(query).all())


def programs_of_assessment(session: Session, assessment_id: int) -> set[int]:
    return set(
        session.scalars(select(Requirement.program_id).where(Requirement.assessment_id == assessment_id))
    )


def may_review(session: Session, user: User, submission: Submission) -> bool:
    programs = programs_of(session, user)
    return programs is None or bool(programs & programs_of_assessment(session, submission.assessment_id))


def require_reviewer(session: Session, user: User, submission: Submission) -> None:
    if not may_review(session, user, submission):
        raise PermissionDenied("you do not review this submission's program")


def require_staff_of(session: Session, user: User, program: Program) -> None:
    programs = programs_of(session, user, staff_only=True)
    if programs is not None and program.id not in programs:
        raise PermissionDenied(f"you do not run the program {program.slug!r}")


def is_staff(session: Session, user: User) -> bool:
    """Staff somewhere (or an admin): may see the staff pages, each narrowed to their programs."""
    programs = programs_of(session, user, staff_only=True)
    return programs is None or bool(programs)


def program_by_slug(session: Session, slug: str) -> Program:
    program = session.scalar(select(Program).where(Program.slug == slug))
    if program is None:
        raise NotFound(f"no program {slug!r}", details={"field": "program"})
    return program


def add_staff(
    session: Session, user: User, program_slug: str, role: StaffRole = StaffRole.REVIEWER
) -> ProgramStaff:
    """Make `user` a reviewer (or staff) of a program; doing it again changes the role."""
    if user.role == Role.LEARNER:
        raise PermissionDenied("a learner account cannot review: give it the reviewer role first")
    program = program_by_slug(session, program_slug)
    row = session.scalar(
        select(ProgramStaff).where(ProgramStaff.user_id == user.id, ProgramStaff.program_id == program.id)
    )
    if row is None:
        row = ProgramStaff(user_id=user.id, program_id=program.id, role=role)
        session.add(row)
    row.role = role
    session.flush()
    return row


def remove_staff(session: Session, user: User, program_slug: str) -> ProgramStaff | None:
    """`user` no longer reviews or runs the program; the removed row, or None if there was none."""
    program = program_by_slug(session, program_slug)
    row = session.scalar(
        select(ProgramStaff).where(ProgramStaff.user_id == user.id, ProgramStaff.program_id == program.id)
    )
    if row is not None:
        session.delete(row)
        session.flush()
    return row


def staff_scope(session: Session, user: User) -> set[int] | None:
    """The programs `user` runs (None: every program, for an admin); `PermissionDenied` for anyone
    who runs none, reviewers and learners alike."""
    programs = programs_of(session, user, staff_only=True)
    if programs is not None and not programs:
        raise PermissionDenied("only staff may open the staff pages")
    return programs


def require_admin(user: User) -> None:
    if user.role != Role.ADMIN:
        raise PermissionDenied("only an admin may do this")


def assessments_of(session: Session, programs: set[int] | None) -> set[int] | None:
    """The ids of the assessments these programs require; None stays None (every assessment)."""
    if programs is None:
        return None
    if not programs:
        return set()
    return set(session.scalars(select(Requirement.assessment_id).where(Requirement.program_id.in_(programs))))


def require_staff_of_assessment(session: Session, user: User, assessment_id: int, slug: str) -> None:
    programs = programs_of(session, user, staff_only=True)
    if programs is not None and not programs & programs_of_assessment(session, assessment_id):
        raise PermissionDenied(f"you do not run a program with the assessment {slug!r}")


def learner_in(session: Session, learner_id: int, programs: set[int] | None) -> bool:
    """Whether the learner is enrolled in one of these programs (None: any program, or none)."""
    if programs is None:
        return True
    if not programs:
        return False
    found = session.scalar(
        select(Enrollment.id).where(Enrollment.user_id == learner_id, Enrollment.program_id.in_(programs))
    )
    return found is not None
