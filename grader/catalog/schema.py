"""The catalog's file formats: programs, and assessments of the three kinds, as pydantic models.

These models are the contract with course teams: unknown keys are errors (a typo must not silently
change grading), and every cross-field rule that can be checked within one file is checked here.
Rules that span files (references, duplicates) live in `grader.catalog.loader`.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLUG = r"^[a-z0-9][a-z0-9-]{0,98}[a-z0-9]$"
QUESTION_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- quizzes


class Choice(Strict):
    id: Annotated[str, Field(pattern=QUESTION_ID)]
    text: Annotated[str, Field(min_length=1)]


class QuestionBase(Strict):
    id: Annotated[str, Field(pattern=QUESTION_ID)]
    prompt: Annotated[str, Field(min_length=1)]
    points: Annotated[float, Field(gt=0, le=1000)] = 1.0
    explanation: str = ""


class SingleChoice(QuestionBase):
    type: Literal["single_choice"]
    choices: Annotated[list[Choice], Field(min_length=2, max_length=26)]
    answer: str
    shuffle_choices: bool = True

    @model_validator(mode="after")
    def _answer_is_a_choice(self) -> SingleChoice:
        _check_choice_ids(self.choices, [self.answer])
        return self


class PartialCredit(StrEnum):
    """How a multiple-choice question scores a partly right selection."""

    ALL_OR_NOTHING = "all_or_nothing"
    # (right picks - wrong picks) / number of right answers, never below zero.
    RIGHT_MINUS_WRONG = "right_minus_wrong"


class MultipleChoice(QuestionBase):
    type: Literal["multiple_choice"]
    choices: Annotated[list[Choice], Field(min_length=2, max_length=26)]
    answers: Annotated[list[str], Field(min_length=1)]
    partial_credit: PartialCredit = PartialCredit.RIGHT_MINUS_WRONG
    shuffle_choices: bool = True

    @model_validator(mode="after")
    def _answers_are_choices(self) -> MultipleChoice:
        _check_choice_ids(self.choices, self.answers)
        if len(set(self.answers)) != len(self.answers):
            raise ValueError("answers lists a choice twice")
        return self


class TrueFalse(QuestionBase):
    type: Literal["true_false"]
    answer: bool


class Numeric(QuestionBase):
    type: Literal["numeric"]
    answer: float
    tolerance: Annotated[float, Field(ge=0)] = 0.0  # absolute
    unit: str = ""


class TextMatch(StrEnum):
    EXACT = "exact"
    CASE_INSENSITIVE = "case_insensitive"
    NORMALISED = "normalised"  # case-insensitive, runs of white space folded, ends trimmed


class ShortText(QuestionBase):
    type: Literal["short_text"]
    accept: list[Annotated[str, Field(min_length=1)]] = []
    patterns: list[str] = []  # regular expressions, matched against the whole answer
    match: TextMatch = TextMatch.NORMALISED
    max_length: Annotated[int, Field(gt=0, le=10_000)] = 500

    @model_validator(mode="after")
    def _has_an_answer(self) -> ShortText:
        if not self.accept and not self.patterns:
            raise ValueError("a short_text question needs accept or patterns")
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
        return self


Question = Annotated[
    SingleChoice | MultipleChoice | TrueFalse | Numeric | ShortText, Field(discriminator="type")
]


class Pool(Strict):
    id: Annotated[str, Field(pattern=QUESTION_ID)]
    draw: Annotated[int, Field(gt=0)] | None = None  # None: every question of the pool
    questions: Annotated[list[Question], Field(min_length=1)]

    @model_validator(mode="after")
    def _draw_fits(self) -> Pool:
        if self.draw is not None and self.draw > len(self.questions):
            raise ValueError(f"draw is {self.draw} but the pool has {len(self.questions)} questions")
        return self


class FeedbackPolicy(StrEnum):
    """When a learner may see the correct answers."""

    NEVER = "never"
    AFTER_PASSING = "after_passing"
    AFTER_LAST_ATTEMPT = "after_last_attempt"


class AttemptPolicy(Strict):
    max: Annotated[int, Field(gt=0, le=1000)] | None = 3  # None: unlimited
    cooldown_seconds: Annotated[int, Field(ge=0)] = 0


class LatePolicy(Strict):
    """Work handed in after the due date: accepted for `days`, at a penalty on the score.

    Either `penalty_per_day` (a fraction of the score per started day late, up to `max_penalty`) or
    a fixed `penalty`. The window follows the learner's own due date, extensions included.
    """

    days: Annotated[float, Field(gt=0, le=365)]
    penalty_per_day: Annotated[float, Field(ge=0, le=1)] | None = None
    penalty: Annotated[float, Field(ge=0, le=1)] | None = None
    max_penalty: Annotated[float, Field(ge=0, le=1)] = 1.0

    @model_validator(mode="after")
    def _one_penalty(self) -> LatePolicy:
        if (self.penalty_per_day is None) == (self.penalty is None):
            raise ValueError("give either penalty_per_day or penalty")
        return self

    def penalty_for(self, days_late: int) -> float:
        """The fraction taken off the score of work `days_late` (started) days late."""
        if days_late <= 0:
            return 0.0
        if self.penalty is not None:
            return min(self.penalty, self.max_penalty)
        assert self.penalty_per_day is not None
        return min(self.penalty_per_day * days_late, self.max_penalty)


class AssessmentBase(Strict):
    slug: Annotated[str, Field(pattern=SLUG)]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    attempts: AttemptPolicy = AttemptPolicy()
    due: datetime | None = None
    late: LatePolicy | None = None

    @field_validator("due")
    @classmethod
    def _due_has_timezone(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("due needs a time zone, for example 2026-12-31T23:59:00Z")
        return value

    @model_validator(mode="after")
    def _late_needs_a_due_date(self) -> AssessmentBase:
        if self.late is not None and self.due is None:
            raise ValueError("late needs a due date to be late after")
        return self


class QuizAssessment(AssessmentBase):
    kind: Literal["quiz"]
    pass_mark: Annotated[float, Field(gt=0, le=1)] = 0.7  # fraction of the points on offer
    time_limit_minutes: Annotated[int, Field(gt=0, le=24 * 60)] | None = None
    shuffle: bool = True
    feedback: FeedbackPolicy = FeedbackPolicy.AFTER_PASSING
    pools: Annotated[list[Pool], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_ids(self) -> QuizAssessment:
        seen: set[str] = set()
        for pool in self.pools:
            for question in pool.questions:
                if question.id in seen:
                    raise ValueError(f"question id {question.id!r} is used twice")
                seen.add(question.id)
        if len({pool.id for pool in self.pools}) != len(self.pools):
            raise ValueError("two pools share an id")
        return self

    def questions_by_id(
        self,
    ) -> dict[str, SingleChoice | MultipleChoice | TrueFalse | Numeric | ShortText]:
        return {q.id: q for pool in self.pools for q in pool.questions}


# ---------------------------------------------------------------- repositories


class Visibility(StrEnum):
    """What a learner sees of a test, as Gradescope defines it, plus `name_only`.

    While any test of a result is hidden (`hidden`, or `after_due_date` / `after_published` before
    that moment), the result's total is held back too, as Gradescope does: points of the tests one
    cannot see would otherwise be the difference.
    """

    VISIBLE = "visible"  # name, status, points, message and output
    NAME_ONLY = "name_only"  # name, status and points; never input, output or message
    HIDDEN = "hidden"  # nothing, not even the name
    AFTER_DUE_DATE = "after_due_date"  # hidden until the learner's due date has passed
    AFTER_PUBLISHED = "after_published"  # hidden until staff publish the assessment's results

    @classmethod
    def _missing_(cls, value: object) -> Visibility | None:
        return cls.AFTER_DUE_DATE if value == "after_due" else None  # the name before Gradescope's


class SandboxLimits(Strict):
    wall_seconds: Annotated[float, Field(gt=0, le=600)] = 60
    memory_mb: Annotated[int, Field(ge=32, le=8192)] = 512
    pids: Annotated[int, Field(ge=8, le=4096)] = 64
    output_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 1_000_000
    # isolation: process only: the wall clock of one call into the learner's code
    call_seconds: Annotated[float, Field(gt=0, le=600)] = 10


class Isolation(StrEnum):
    """Where the learner's code runs relative to the hidden tests of a pytest suite."""

    # In pytest's own process: anything pytest can test, but the learner's code can reach pytest, so
    # the verdict rests on canaries and the expected test ids (docs/authoring.md).
    NONE = "none"
    # Each call in a fresh process, in a box apart from the tests; only JSON values come back.
    PROCESS = "process"


class PytestSuite(Strict):
    kind: Literal["pytest"]
    id: Annotated[str, Field(pattern=QUESTION_ID)] = "hidden"
    path: str = "tests"  # hidden tests, relative to the assessment folder
    points: dict[str, Annotated[float, Field(ge=0)]] = {}  # per test id; default 1 each
    visibility: Visibility = Visibility.VISIBLE
    isolation: Isolation = Isolation.NONE
    # In-process only: a test that took longer than this in the reference check is not copied into a
    # canary while a faster one can be (a canary reruns its template's fixtures, so copying a slow
    # test makes the run that much slower); null copies any test (docs/authoring.md).
    canary_max_seconds: Annotated[float, Field(gt=0)] | None = 0.5


class IoCompare(StrEnum):
    EXACT = "exact"
    WHITESPACE = "whitespace"
    REGEX = "regex"
    NUMERIC = "numeric"


class IoCase(Strict):
    kind: Literal["io"]
    id: Annotated[str, Field(pattern=QUESTION_ID)]
    command: Annotated[list[str], Field(min_length=1)]
    stdin: str = ""
    expected: str
    compare: IoCompare = IoCompare.WHITESPACE
    tolerance: Annotated[float, Field(ge=0)] = 1e-6
    points: Annotated[float, Field(ge=0)] = 1.0
    visibility: Visibility = Visibility.VISIBLE


class Layout(StrEnum):
    """Where a command suite's files sit in the box, so existing autograders run with no change."""

    # /autograder/source (the grader files), /autograder/submission, /autograder/results/results.json;
    # the entry point is run_autograder, copied to /autograder/run_autograder as Gradescope does.
    GRADESCOPE = "gradescope"
    # /grade/tests (the grader files), /grade/student, /grade/data/data.json, /grade/results/results.json.
    PRAIRIELEARN = "prairielearn"
    # grader/ and submission/ in the work dir; the command writes results/results.json.
    PLAIN = "plain"


class CommandSuite(Strict):
    kind: Literal["command"]
    id: Annotated[str, Field(pattern=QUESTION_ID)] = "grader"
    layout: Layout = Layout.PLAIN
    # Default: /autograder/run_autograder for Gradescope; required for the other layouts.
    command: Annotated[list[str], Field(min_length=1)] | None = None
    # The course team's grader files, relative to the assessment folder: a folder or a .zip.
    path: str = "grader"
    # Run once when the grading image is built (`grader images build`), never per submission, in
    # the grader files' folder, e.g. Gradescope's setup.sh. Relative to `path`.
    setup: str | None = None
    results: Literal["auto", "gradescope", "prairielearn"] = "auto"
    visibility: Visibility = Visibility.VISIBLE
    # The suite's maximum. Without it, the sum of the maxima of the tests the reference solution
    # reported when `grader catalog check` ran (expected_tests.json); never what a run reports.
    max_points: Annotated[float, Field(gt=0, le=100_000)] | None = None

    @model_validator(mode="after")
    def _has_an_entry_point(self) -> CommandSuite:
        if self.command is None and self.layout is not Layout.GRADESCOPE:
            raise ValueError(f"a command suite with layout {self.layout.value} needs a command")
        if self.setup is not None and not _is_relative_path(self.setup):
            raise ValueError("setup is a path inside the grader files, such as setup.sh")
        return self

    @property
    def folder(self) -> str:
        """Where the grader files sit in the bundle: `path`, or the folder a `.zip` at `path` unpacks to."""
        return self.path.removesuffix(".zip")

    @property
    def entry_point(self) -> list[str]:
        return self.command if self.command is not None else ["/autograder/run_autograder"]

    @property
    def results_format(self) -> Literal["gradescope", "prairielearn"] | None:
        if self.results != "auto":
            return self.results
        if self.layout is Layout.GRADESCOPE:
            return "gradescope"
        return "prairielearn" if self.layout is Layout.PRAIRIELEARN else None


TestSuite = Annotated[PytestSuite | IoCase | CommandSuite, Field(discriminator="kind")]


class ReviewPolicy(Strict):
    """How reviewers score an assessment's manual criteria."""

    blind: bool = False  # the learner's identity is hidden from reviewers (staff still see it)
    double: bool = False  # two independent reviews; the second reviewer does not see the first
    # With double review: a difference in the manual points beyond this fraction of their maximum
    # sends the submission to an adjudicator, who sees both reviews and decides.
    disagreement: Annotated[float, Field(ge=0, le=1)] = 0.2
    claim_minutes: Annotated[int, Field(gt=0, le=7 * 24 * 60)] = 60
    regrade_window_days: Annotated[float, Field(ge=0, le=365)] = 14


class RepositoryAssessment(AssessmentBase):
    kind: Literal["repository"]
    rubric: Annotated[str, Field(pattern=SLUG)]
    review: ReviewPolicy = ReviewPolicy()
    tests: Annotated[list[TestSuite], Field(min_length=1)]
    learner_files: Annotated[list[str], Field(min_length=1)] = ["**/*.py"]
    reference: str = "reference"
    starter: str = "starter"
    limits: SandboxLimits = SandboxLimits()
    submissions_per_hour: Annotated[int, Field(gt=0, le=1000)] | None = None

    @model_validator(mode="after")
    def _suites_fit_together(self) -> RepositoryAssessment:
        ids = [suite.id for suite in self.tests]
        if len(set(ids)) != len(ids):
            raise ValueError("two test suites share an id")
        if sum(1 for s in self.tests if isinstance(s, CommandSuite) and s.setup) > 1:
            raise ValueError("only one command suite may declare a setup: it builds the assessment's image")
        return self


# ---------------------------------------------------------------- portfolios


class ArtifactType(StrEnum):
    """A file type a slot may take, recognised by the file's content, never by its name."""

    PDF = "pdf"
    PNG = "png"
    JPEG = "jpeg"
    TEXT = "text"
    MARKDOWN = "markdown"
    ZIP = "zip"


CriterionIds = Annotated[list[Annotated[str, Field(pattern=QUESTION_ID)]], Field(max_length=50)]


class Slot(Strict):
    """What every slot of a portfolio has: an id, words for the learner, whether it is required, and
    the rubric criteria it is evidence for (the reviewer sees the slot beside those criteria)."""

    id: Annotated[str, Field(pattern=QUESTION_ID)]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    required: bool = True
    criteria: CriterionIds = []


class Artifact(Slot):
    """A file slot: the types it takes, the largest file, and how many files."""

    types: Annotated[list[ArtifactType], Field(min_length=1)]
    max_mb: Annotated[float, Field(gt=0, le=100)] = 10
    max_files: Annotated[int, Field(ge=1, le=20)] = 1

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 1024 * 1024)


class LinkSpec(Slot):
    """A link slot: an address shown to the reviewer as text (never fetched by the service)."""

    schemes: Annotated[list[Literal["https", "http"]], Field(min_length=1)] = ["https"]
    hosts: list[str] = []  # allowed host names (and their subdomains); empty: any public host


class Statement(Slot):
    """A written statement, answered in the hand-in form, optionally to a prompt."""

    prompt: str = ""
    min_words: Annotated[int, Field(ge=0, le=20_000)] = 0
    max_words: Annotated[int, Field(gt=0, le=20_000)] = 500

    @model_validator(mode="after")
    def _limits_in_order(self) -> Statement:
        if self.min_words > self.max_words:
            raise ValueError(f"min_words {self.min_words} is above max_words {self.max_words}")
        return self


class PortfolioAssessment(AssessmentBase):
    kind: Literal["portfolio"]
    rubric: Annotated[str, Field(pattern=SLUG)]
    review: ReviewPolicy = ReviewPolicy()
    artifacts: Annotated[list[Artifact], Field(max_length=30)] = []
    links: Annotated[list[LinkSpec], Field(max_length=30)] = []
    statements: Annotated[list[Statement], Field(max_length=30)] = []

    @model_validator(mode="after")
    def _asks_for_something(self) -> PortfolioAssessment:
        if not self.slots:
            raise ValueError("a portfolio needs at least one artifact, link or statement")
        ids = [slot.id for slot in self.slots]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"artifact, link and statement ids must be unique: {', '.join(repeated)} repeat")
        return self

    @property
    def slots(self) -> list[Slot]:
        return [*self.artifacts, *self.links, *self.statements]


AssessmentDefinition = Annotated[
    QuizAssessment | RepositoryAssessment | PortfolioAssessment, Field(discriminator="kind")
]


# ---------------------------------------------------------------- programs


class AlignmentSpec(Strict):
    """A skill or competency framework entry the credential aligns to (OB 3.0 `Alignment`)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    url: Annotated[str, Field(max_length=2000)]
    description: Annotated[str, Field(max_length=2000)] | None = None
    framework: Annotated[str, Field(max_length=200)] | None = None
    code: Annotated[str, Field(max_length=100)] | None = None

    @field_validator("url")
    @classmethod
    def _https(cls, url: str) -> str:
        if not url.startswith("https://") or any(char.isspace() for char in url) or len(url) < 12:
            raise ValueError("an alignment's url must be an https:// address of the skill it names")
        return url


class CredentialSpec(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(min_length=1)]
    criteria: Annotated[str, Field(min_length=1)]  # the narrative printed on the credential
    alignments: list[AlignmentSpec] = []
    # The credential's validUntil, counted from its issue; none: valid until revoked.
    valid_for_days: Annotated[int, Field(gt=0, le=36500)] | None = None


class RequirementSpec(Strict):
    assessment: Annotated[str, Field(pattern=SLUG)]
    min_score: Annotated[float, Field(gt=0, le=1)] | None = None


class ProgramDefinition(Strict):
    slug: Annotated[str, Field(pattern=SLUG)]
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(min_length=1)]
    credential: CredentialSpec
    requirements: Annotated[list[RequirementSpec], Field(min_length=1)]

    @model_validator(mode="after")
    def _no_duplicate_requirements(self) -> ProgramDefinition:
        slugs = [r.assessment for r in self.requirements]
        if len(set(slugs)) != len(slugs):
            raise ValueError("an assessment is required twice")
        return self


def _is_relative_path(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and "\\" not in path


def _check_choice_ids(choices: list[Choice], picked: list[str]) -> None:
    ids = [c.id for c in choices]
    if len(set(ids)) != len(ids):
        raise ValueError("two choices share an id")
    for answer in picked:
        if answer not in ids:
            raise ValueError(f"answer {answer!r} is not one of the choices {ids}")
