"""Who may review or run what: admins everywhere, reviewers and staff in the programs they belong to.

A reviewer reviews the submissions of the programs they are staff of (`ProgramStaff`, role reviewer
or staff); staff also run those programs (enrolment, assignment, regrades, gradebook). The
functions here answer with sets of program ids, so queries can filter in SQL.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.errors import NotFound, PermissionDenied
from grader.models import Program, ProgramStaff, Requirement, Role, StaffRole, Submission, User


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
