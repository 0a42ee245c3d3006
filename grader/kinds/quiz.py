"""Quizzes: attempts drawn per learner, answers validated at intake, scored at once, and the feedback
policy that decides which answers a learner may read."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from grader.catalog.schema import (
    AssessmentDefinition,
    MultipleChoice,
    Numeric,
    QuizAssessment,
    ReviewPolicy,
    ShortText,
    SingleChoice,
    TrueFalse,
)
from grader.config import Settings
from grader.errors import Conflict, InvalidInput, NotFound, TimeLimitExceeded
from grader.kinds.base import (
    Grade,
    GradingJob,
    IdParam,
    Intake,
    ReviewMaterial,
    ShapedFeedback,
    SubmissionRequest,
    WrittenAnswer,
    hourly_limit,
)
from grader.models import AssessmentVersion, QuizAttempt, Result, Submission, User, new_id, utcnow
from grader.quiz import (
    answer_in_words,
    correct_answer,
    draw_questions,
    feedback_allows_answers,
    given_answer_in_words,
    present_questions,
    score_quiz,
    validate_answers,
)
from grader.services.catalog import parse_definition
from grader.verdict import settle

# A quiz answer sent in the last moment still travels over the network; forgive that much.
DEADLINE_GRACE = timedelta(seconds=30)


# Scored by comparing the answer with the key: what may be graded inside the intake request.
INLINE_QUESTION_TYPES = (SingleChoice, MultipleChoice, TrueFalse, Numeric, ShortText)


def quiz_of(version: AssessmentVersion) -> QuizAssessment:
    quiz = parse_definition(version)
    if not isinstance(quiz, QuizAssessment):
        raise InvalidInput(f"{version.assessment.slug!r} is not a quiz", details={"field": "assessment"})
    return quiz


# ---------------------------------------------------------------- attempts


def draw_attempt(
    session: Session, user: User, version: AssessmentVersion, quiz: QuizAssessment, now: datetime
) -> QuizAttempt:
    """A new attempt (`new_attempt`), written with the session's next flush."""
    attempt = new_attempt(user, version, quiz, now)
    session.add(attempt)
    return attempt


def new_attempt(user: User, version: AssessmentVersion, quiz: QuizAssessment, now: datetime) -> QuizAttempt:
    """A new attempt, not yet in any session: questions drawn from a fresh seed, the deadline set by the
    time limit."""
    seed = secrets.randbits(31)
    return QuizAttempt(
        id=new_id(),  # known now, so the hand-in can name it before anything is written
        user_id=user.id,
        assessment_version_id=version.id,
        seed=seed,
        question_ids=draw_questions(quiz, seed),
        started_at=now,
        deadline_at=now + timedelta(minutes=quiz.time_limit_minutes) if quiz.time_limit_minutes else None,
    )


def attempt_view(attempt: QuizAttempt, quiz: QuizAssessment) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "assessment": quiz.slug,
        "title": quiz.title,
        "started_at": attempt.started_at.isoformat(),
        "deadline": attempt.deadline_at.isoformat() if attempt.deadline_at else None,
        "pass_mark": quiz.pass_mark,
        "questions": present_questions(quiz, attempt.question_ids, attempt.seed),
    }


def reopenable_attempt(session: Session, user_id: int, version_id: int, now: datetime) -> QuizAttempt | None:
    """The learner's newest attempt at this version that is not handed in and still in time."""
    attempt = session.scalar(
        select(QuizAttempt)
        .where(
            QuizAttempt.user_id == user_id,
            QuizAttempt.assessment_version_id == version_id,
            QuizAttempt.submitted_at.is_(None),
        )
        .order_by(QuizAttempt.started_at.desc())
        .limit(1)
    )
    if attempt is not None and (attempt.deadline_at is None or attempt.deadline_at + DEADLINE_GRACE > now):
        return attempt
    return None


def has_open_attempt(session: Session, user_id: int, assessment_id: int, now: datetime) -> bool:
    """Whether the learner holds a drawn attempt, at any version, they may still hand in."""
    deadlines = session.scalars(
        select(QuizAttempt.deadline_at)
        .join(AssessmentVersion, AssessmentVersion.id == QuizAttempt.assessment_version_id)
        .where(
            QuizAttempt.user_id == user_id,
            AssessmentVersion.assessment_id == assessment_id,
            QuizAttempt.submitted_at.is_(None),
        )
    ).all()
    return any(deadline is None or deadline + DEADLINE_GRACE > now for deadline in deadlines)


def expired(attempt: QuizAttempt, now: datetime) -> bool:
    return (
        attempt.submitted_at is None
        and attempt.deadline_at is not None
        and now > attempt.deadline_at + DEADLINE_GRACE
    )


# ---------------------------------------------------------------- grading


class QuizGrader:
    """Scores quiz answers at once; keeps the correct answers aside for the feedback policy."""

    def grade(self, job: GradingJob) -> Grade:
        quiz = job.definition
        if not isinstance(quiz, QuizAssessment):
            raise TypeError(f"a quiz grader was given a {quiz.kind}")
        attempt_questions = _question_ids(job)
        answers: Mapping[str, Any] = job.payload.get("answers", {})
        scored = score_quiz(quiz, attempt_questions, answers)
        by_id = quiz.questions_by_id()
        verdict = settle(
            scored.score,
            scored.max_score,
            scored.passed,
            pass_mark=quiz.pass_mark,
            late_penalty=job.late_penalty,
        )
        feedback: dict[str, Any] = {
            "questions": [
                {
                    "id": q.question_id,
                    "points": q.points,
                    "max_points": q.max_points,
                    "answered": q.answered,
                    "correct": q.correct,
                }
                for q in scored.questions
            ],
            # Revealed or not at read time, by the quiz's feedback policy.
            "solutions": {
                qid: {"answer": correct_answer(by_id[qid]), "explanation": by_id[qid].explanation}
                for qid in attempt_questions
            },
            "pass_mark": quiz.pass_mark,
        }
        if verdict.late_penalty:
            feedback["late"] = {"penalty": verdict.late_penalty, "score_before": verdict.score_before_penalty}
        return Grade(
            score=verdict.score, max_score=verdict.max_score, passed=verdict.passed, feedback=feedback
        )


def _question_ids(job: GradingJob) -> list[str]:
    ids = job.payload.get("question_ids")
    if isinstance(ids, list):
        return [str(i) for i in ids]
    raise ValueError("quiz payload without question ids")


# ---------------------------------------------------------------- the kind


class QuizKind:
    name = "quiz"
    queue = "quiz"
    deadline_grace = DEADLINE_GRACE

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
        quiz = definition
        assert isinstance(quiz, QuizAssessment)
        if request.attempt_id is not None:
            attempt = self._attempt_to_hand_in(session, user, version, request.attempt_id, now)
            # An attempt is graded against the version it was drawn from, even if the quiz changed since.
            version = attempt.assessment_version
            quiz = quiz_of(version)
        else:
            if quiz.time_limit_minutes is not None or any(p.draw is not None for p in quiz.pools):
                raise InvalidInput(
                    "this quiz draws its questions per attempt: start an attempt first "
                    f"(POST /api/v1/assessments/{quiz.slug}/attempts) and send its id as 'attempt'",
                    details={"field": "attempt"},
                )
            # Drawn and handed in at once: intake writes it as a row beside the hand-in.
            attempt = new_attempt(user, version, quiz, now)
        answers = validate_answers(quiz, attempt.question_ids, request.answers)
        payload = {"attempt": attempt.id, "question_ids": list(attempt.question_ids), "answers": answers}
        return Intake(payload, version, attempt, attempt_is_new=request.attempt_id is None)

    @staticmethod
    def _attempt_to_hand_in(
        session: Session, user: User, version: AssessmentVersion, attempt_id: object, now: datetime
    ) -> QuizAttempt:
        if not isinstance(attempt_id, str):
            raise InvalidInput("attempt must be an attempt id", details={"field": "attempt"})
        attempt = session.get(QuizAttempt, attempt_id) if len(attempt_id) <= 64 else None
        if attempt is None or attempt.user_id != user.id:
            raise NotFound("no such quiz attempt", details={"field": "attempt"})
        if attempt.assessment_version.assessment_id != version.assessment_id:
            raise InvalidInput("that attempt belongs to another assessment", details={"field": "attempt"})
        if attempt.submitted_at is not None:
            raise Conflict("this attempt was already submitted", details={"field": "attempt"})
        if attempt.deadline_at is not None and now > attempt.deadline_at + DEADLINE_GRACE:
            raise TimeLimitExceeded(
                "the time limit of this attempt has passed",
                details={"field": "attempt", "deadline": attempt.deadline_at.isoformat()},
            )
        return attempt

    def counted_before_intake(self, request: SubmissionRequest) -> bool:
        return request.attempt_id is not None

    def attempts_used(self, session: Session, user_id: int, assessment_id: int) -> int:
        return session.scalar(self.attempts_counted(user_id, assessment_id)) or 0

    def attempts_counted(self, user_id: IdParam, assessment_id: IdParam) -> Select[int]:
        # Every drawn attempt counts, submitted or not: letting attempts expire must not be a free look
        # at the question pool.
        return (
            select(func.count(QuizAttempt.id))
            .join(AssessmentVersion, AssessmentVersion.id == QuizAttempt.assessment_version_id)
            .where(QuizAttempt.user_id == user_id, AssessmentVersion.assessment_id == assessment_id)
        )

    def open_attempt(self, session: Session, user_id: int, version_id: int, now: datetime) -> str | None:
        attempt = reopenable_attempt(session, user_id, version_id, now)
        return attempt.id if attempt is not None else None

    def check_start(
        self, session: Session, settings: Settings, user: User, assessment_id: int, slug: str, now: datetime
    ) -> None:
        count, oldest = session.execute(
            select(func.count(QuizAttempt.id), func.min(QuizAttempt.started_at))
            .join(AssessmentVersion, AssessmentVersion.id == QuizAttempt.assessment_version_id)
            .where(
                QuizAttempt.user_id == user.id,
                AssessmentVersion.assessment_id == assessment_id,
                QuizAttempt.started_at > now - timedelta(hours=1),
            )
        ).one()
        limit = settings.quiz_starts_per_hour
        hourly_limit(count, oldest, limit, now, f"at most {limit} attempts an hour may start at {slug!r}")

    def coalesces(self) -> bool:
        return False  # each attempt answers its own drawn questions: every one is graded

    def grades_inline(self, definition: AssessmentDefinition) -> bool:
        # Closed-form questions are scored by comparison in well under a millisecond; any other kind of
        # question (one that runs code, say) goes to the workers.
        quiz = definition if isinstance(definition, QuizAssessment) else None
        return quiz is not None and all(
            isinstance(question, INLINE_QUESTION_TYPES) for question in quiz.questions_by_id().values()
        )

    def grader(self, settings: Settings | None) -> QuizGrader:
        return QuizGrader()

    def summary(self, version: AssessmentVersion, definition: AssessmentDefinition) -> dict[str, Any]:
        return {}

    def review_policy(self, definition: AssessmentDefinition) -> ReviewPolicy:
        return ReviewPolicy()

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
        """The feedback policy governs every field: where correct answers stay hidden, so do the
        per-question points and correct/incorrect flags, which would give them away."""
        quiz = definition
        assert isinstance(quiz, QuizAssessment)
        left = None  # unlimited attempts: nothing to count
        if quiz.attempts.max is not None:
            used = self.attempts_used(session, submission.user_id, submission.assessment_id)
            left = max(0, quiz.attempts.max - used)
        if left == 0 and has_open_attempt(session, submission.user_id, submission.assessment_id, utcnow()):
            left = 1  # the last attempt is drawn but not handed in: its answers must not be given away
        solutions = feedback.pop("solutions", {})
        shown = staff or feedback_allows_answers(
            quiz.feedback, passed=bool(result.passed), attempts_left=left
        )
        by_id = quiz.questions_by_id()
        questions = [q for q in feedback.get("questions", []) if q.get("id") in by_id]
        if shown:
            for question in questions:
                question.update(solutions.get(question["id"], {}))
                question["answer_text"] = answer_in_words(by_id[question["id"]])
        else:
            questions = [{"id": q["id"], "answered": q.get("answered", False)} for q in questions]
        given = submission.payload.get("answers", {})
        for question in questions:
            asked = by_id[question["id"]]
            question["prompt"] = asked.prompt
            question["type"] = asked.type
            # The learner's own answer, in words: theirs to see whatever the policy hides.
            question["your_answer"] = (
                given_answer_in_words(asked, given[question["id"]]) if question["id"] in given else None
            )
        feedback["questions"] = questions
        feedback["answers_shown"] = shown
        return ShapedFeedback(feedback)

    def withheld(self, session: Session, submission: Submission, result: Result) -> bool:
        return False

    def review_material(self, definition: AssessmentDefinition, payload: Mapping[str, Any]) -> ReviewMaterial:
        """The open-text answers beside their questions; choices are scored and need no reader."""
        assert isinstance(definition, QuizAssessment)
        by_id = definition.questions_by_id()
        answers = []
        for question_id, given in payload.get("answers", {}).items():
            question = by_id.get(question_id)
            if question is not None and question.type == "short_text":
                answers.append(WrittenAnswer(question_id, question.prompt, str(given)))
        return ReviewMaterial(answers=tuple(answers))


KIND = QuizKind()
