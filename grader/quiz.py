"""Quiz mechanics: drawing questions for an attempt, validating answers and scoring them.

Pure functions over the catalog's `QuizAssessment`; no database and no I/O, so the intake service can
reject a malformed answer at once and the worker can score it, both with the same rules.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grader.catalog.schema import (
    FeedbackPolicy,
    MultipleChoice,
    Numeric,
    PartialCredit,
    QuizAssessment,
    ShortText,
    SingleChoice,
    TextMatch,
    TrueFalse,
)
from grader.errors import InvalidInput
from grader.verdict import meets

AnyQuestion = SingleChoice | MultipleChoice | TrueFalse | Numeric | ShortText


def draw_questions(quiz: QuizAssessment, seed: int) -> list[str]:
    """The question ids of one attempt: each pool's draw, shuffled, reproducible from `seed`."""
    rng = random.Random(seed)
    drawn: list[str] = []
    for pool in quiz.pools:
        ids = [q.id for q in pool.questions]
        if pool.draw is not None:
            ids = rng.sample(ids, pool.draw)
        drawn.extend(ids)
    if quiz.shuffle:
        rng.shuffle(drawn)
    return drawn


def present_questions(quiz: QuizAssessment, question_ids: Sequence[str], seed: int) -> list[dict[str, Any]]:
    """What the learner sees: prompts and choices (shuffled per attempt), never the answers."""
    by_id = quiz.questions_by_id()
    rng = random.Random(seed ^ 0x5EED)
    shown: list[dict[str, Any]] = []
    for qid in question_ids:
        question = by_id[qid]
        item: dict[str, Any] = {
            "id": question.id,
            "type": question.type,
            "prompt": question.prompt,
            "points": question.points,
        }
        if isinstance(question, SingleChoice | MultipleChoice):
            choices = [{"id": c.id, "text": c.text} for c in question.choices]
            if question.shuffle_choices:
                rng.shuffle(choices)
            item["choices"] = choices
        if isinstance(question, Numeric) and question.unit:
            item["unit"] = question.unit
        if isinstance(question, ShortText):
            item["max_length"] = question.max_length
        shown.append(item)
    return shown


def validate_answers(quiz: QuizAssessment, question_ids: Sequence[str], answers: Any) -> dict[str, Any]:
    """Check types and ids of submitted answers; return them normalised, or raise `InvalidInput`.

    A question left out is simply unanswered (scores zero); an answer to a question that is not in
    this attempt's draw is an error, so a learner cannot probe the rest of the pool.
    """
    if not isinstance(answers, Mapping):
        raise InvalidInput("answers must be an object keyed by question id", details={"field": "answers"})
    by_id = quiz.questions_by_id()
    drawn = set(question_ids)
    clean: dict[str, Any] = {}
    for qid, value in answers.items():
        field = f"answers.{qid}"
        if not isinstance(qid, str) or qid not in by_id:
            raise InvalidInput(f"unknown question {qid!r}", details={"field": field})
        if qid not in drawn:
            raise InvalidInput(f"question {qid!r} is not part of this attempt", details={"field": field})
        clean[qid] = _validate_one(by_id[qid], value, field)
    return clean


def _validate_one(question: AnyQuestion, value: Any, field: str) -> Any:
    def bad(expected: str) -> InvalidInput:
        return InvalidInput(f"{field} must be {expected}", details={"field": field})

    if isinstance(question, SingleChoice):
        if not isinstance(value, str):
            raise bad("a choice id (string)")
        if value not in {c.id for c in question.choices}:
            raise bad(f"one of {sorted(c.id for c in question.choices)}")
        return value
    if isinstance(question, MultipleChoice):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of choice ids")
        ids = {c.id for c in question.choices}
        if not set(value) <= ids or len(set(value)) != len(value):
            raise bad(f"distinct ids from {sorted(ids)}")
        return sorted(value)
    if isinstance(question, TrueFalse):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(question, Numeric):
        # bool is an int in Python; a learner sending true for a number is a type error.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        if not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if not isinstance(value, str):
        raise bad("text")
    if len(value) > question.max_length:
        raise bad(f"at most {question.max_length} characters")
    return value


@dataclass(frozen=True)
class QuestionScore:
    question_id: str
    points: float
    max_points: float
    answered: bool
    correct: bool


@dataclass(frozen=True)
class QuizScore:
    score: float
    max_score: float
    passed: bool
    questions: tuple[QuestionScore, ...]

    @property
    def fraction(self) -> float:
        return self.score / self.max_score if self.max_score else 0.0


def score_quiz(quiz: QuizAssessment, question_ids: Sequence[str], answers: Mapping[str, Any]) -> QuizScore:
    """Score validated answers for the drawn questions; the pass mark is a fraction of the points."""
    by_id = quiz.questions_by_id()
    results = []
    for qid in question_ids:
        question = by_id[qid]
        answered = qid in answers
        credit = _credit(question, answers[qid]) if answered else 0.0
        results.append(
            QuestionScore(
                question_id=qid,
                points=round(credit * question.points, 6),
                max_points=question.points,
                answered=answered,
                correct=credit >= 1.0,
            )
        )
    score = round(sum(r.points for r in results), 6)
    max_score = sum(r.max_points for r in results)
    passed = max_score > 0 and meets(score / max_score, quiz.pass_mark)
    return QuizScore(score=score, max_score=max_score, passed=passed, questions=tuple(results))


def _credit(question: AnyQuestion, answer: Any) -> float:
    """Fraction of the question's points earned, in [0, 1]."""
    if isinstance(question, SingleChoice):
        return 1.0 if answer == question.answer else 0.0
    if isinstance(question, MultipleChoice):
        right = set(question.answers)
        picked = set(answer)
        if question.partial_credit is PartialCredit.ALL_OR_NOTHING:
            return 1.0 if picked == right else 0.0
        earned = len(picked & right) - len(picked - right)
        return max(0.0, earned / len(right))
    if isinstance(question, TrueFalse):
        return 1.0 if answer is question.answer else 0.0
    if isinstance(question, Numeric):
        return 1.0 if abs(answer - question.answer) <= question.tolerance + 1e-12 else 0.0
    return 1.0 if _text_matches(question, answer) else 0.0


def _text_matches(question: ShortText, answer: str) -> bool:
    candidate = _normalise(answer, question.match)
    if any(candidate == _normalise(accepted, question.match) for accepted in question.accept):
        return True
    flags = 0 if question.match is TextMatch.EXACT else re.IGNORECASE
    subject = answer if question.match is TextMatch.EXACT else " ".join(answer.split())
    return any(re.fullmatch(pattern, subject, flags) for pattern in question.patterns)


def _normalise(text: str, match: TextMatch) -> str:
    if match is TextMatch.EXACT:
        return text
    if match is TextMatch.CASE_INSENSITIVE:
        return text.casefold()
    return " ".join(text.split()).casefold()


def feedback_allows_answers(policy: FeedbackPolicy, *, passed: bool, attempts_left: int | None) -> bool:
    """Whether correct answers may be shown now under the quiz's feedback policy."""
    if policy is FeedbackPolicy.AFTER_PASSING:
        return passed
    if policy is FeedbackPolicy.AFTER_LAST_ATTEMPT:
        return passed or attempts_left == 0
    return False


def correct_answer(question: AnyQuestion) -> Any:
    """The answer shown in feedback, in the same shape a learner submits."""
    if isinstance(question, SingleChoice | TrueFalse | Numeric):
        return question.answer
    if isinstance(question, MultipleChoice):
        return sorted(question.answers)
    return question.accept[0] if question.accept else None


# ---------------------------------------------------------------- presentation: answers in words


def number_in_words(value: float) -> str:
    """A number as a person typed it: 429, not 429.0; 0.1, not 0.1000000001 or 1e-01."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))  # the shortest text that reads back as the same number


def answer_in_words(question: AnyQuestion) -> str:
    """The correct answer as a person reads it: choice texts, not their ids."""
    if isinstance(question, SingleChoice):
        return next(c.text for c in question.choices if c.id == question.answer)
    if isinstance(question, MultipleChoice):
        return "; ".join(c.text for c in question.choices if c.id in question.answers)
    if isinstance(question, TrueFalse):
        return "true" if question.answer else "false"
    if isinstance(question, Numeric):
        tolerance = f" (± {number_in_words(question.tolerance)})" if question.tolerance else ""
        return f"{number_in_words(question.answer)}{' ' + question.unit if question.unit else ''}{tolerance}"
    return question.accept[0] if question.accept else f"text matching {question.patterns[0]}"


def given_answer_in_words(question: AnyQuestion, value: Any) -> str:
    """The learner's own (validated) answer as they would read it: choice texts, true or false, the
    number as typed. A value that no longer fits the question (the catalog changed) is shown as text."""
    if isinstance(question, SingleChoice):
        return next((c.text for c in question.choices if c.id == value), str(value))
    if isinstance(question, MultipleChoice) and isinstance(value, list):
        picked = set(value)
        return "; ".join(c.text for c in question.choices if c.id in picked) or "nothing selected"
    if isinstance(question, TrueFalse) and isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(question, Numeric) and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{number_in_words(float(value))}{' ' + question.unit if question.unit else ''}"
    return str(value)


def prompt_in_words(prompt: str, limit: int = 80) -> str:
    """A question's prompt as one short line of plain text, to name the question in a message."""
    text = " ".join(prompt.replace("`", "").replace("*", "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def answer_problem_in_words(question: Mapping[str, Any]) -> str:
    """What a valid answer to a question (as `present_questions` shows it) looks like: an error
    message that names the question by its text, never by its id."""
    kind = question.get("type")
    if kind == "single_choice":
        expected = "one of the choices shown"
    elif kind == "multiple_choice":
        expected = "one or more of the choices shown"
    elif kind == "true_false":
        expected = "true or false"
    elif kind == "numeric":
        expected = "a number, such as 42 or 3.5"
    else:
        expected = f"text of at most {question.get('max_length', 500)} characters"
    return f"The answer to \u201c{prompt_in_words(str(question.get('prompt', '')))}\u201d must be {expected}."
