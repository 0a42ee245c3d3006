"""The evidence bundle as reviewers and learners read it: files, test results, criteria, answers.

Built for every kind of work, not repositories alone: a bundle has files (a repository's work tree;
a portfolio's artifacts later), test results, the automatic criteria already scored, and answers in
words (a quiz's open-text answers beside their questions). Files are read back from the file store
by the hash recorded when the work was graded, so what is shown is exactly what was graded.

Under blind review, the learner's identity is taken out of everything a reviewer sees: their name,
email and its local part are replaced by "[learner]" in paths, file contents and answers. Staff see
the learner. No Flask here: the pages and the API format what these functions return.

A reviewer's page shows a file and the changes since the previous attempt on every request. What
they are made of depends only on stored bytes, so both are kept in bounded caches keyed by content
hash (redaction applies after, per viewer): a file's text by its SHA-256 (the store checked the bytes
against it when they were read; a remote store is not asked again), and the diff of two versions by
the pair of hashes.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grader.catalog.schema import QuizAssessment
from grader.errors import InvalidInput, NotFound
from grader.models import Result, Role, Submission, User
from grader.services import access, review_queue
from grader.services.catalog import parse_definition
from grader.services.content_cache import ContentCache
from grader.services.grading import latest_result
from grader.storage import FileStore

MAX_SHOWN_BYTES = 512 * 1024  # larger text files are listed with their size, not rendered
MAX_DIFF_LINES = 4000
DIFF_CACHE_ENTRIES = 2048
DIFF_CACHE_BYTES = 16 * 1024 * 1024  # of diff text
TEXT_CACHE_ENTRIES = 1024
TEXT_CACHE_BYTES = 32 * 1024 * 1024
_LINE_OVERHEAD = 56  # what a str object costs besides its characters, roughly


@dataclass(frozen=True)
class EvidenceFile:
    path: str  # as graded
    shown_path: str  # as this viewer may see it (blind review redacts it)
    size: int
    sha256: str | None  # None: over the evidence caps, not kept
    text: bool

    @property
    def renderable(self) -> bool:
        return self.text and self.sha256 is not None and self.size <= MAX_SHOWN_BYTES


@dataclass(frozen=True)
class Answer:
    question_id: str
    prompt: str
    answer: str


@dataclass(frozen=True)
class EarlierAttempt:
    submission_id: str
    attempt_number: int
    created_at: datetime
    status: str
    score: float | None
    max_score: float | None
    passed: bool | None


@dataclass(frozen=True)
class Bundle:
    """Everything a viewer shows of one submission."""

    submission_id: str
    kind: str
    assessment: str
    assessment_title: str
    attempt_number: int
    learner: str | None  # None under blind review
    commit: str | None
    files: tuple[EvidenceFile, ...]
    omitted: int
    tests: tuple[dict[str, Any], ...]  # every test, hidden ones included: viewers are staff
    criteria: tuple[dict[str, Any], ...]  # the rubric's criteria as scored so far
    answers: tuple[Answer, ...]
    notes: tuple[str, ...]
    earlier: tuple[str, ...]  # the learner's earlier submissions of the same assessment, newest first
    blind: bool
    extra: dict[str, Any] = field(default_factory=dict)
    history: tuple[EarlierAttempt, ...] = ()  # the earlier submissions, newest first, with their results


@dataclass(frozen=True)
class FileView:
    file: EvidenceFile
    content: str | None  # None: binary, too large, or not kept


class Redactor:
    """Replaces a learner's identity in text a blind reviewer sees."""

    def __init__(self, learner: User | None) -> None:
        words: set[str] = set()
        if learner is not None:
            words |= {learner.email, learner.email.split("@")[0], learner.name}
            words |= {part for part in re.split(r"[\s._-]+", learner.name) if len(part) >= 3}
        ordered = sorted((w for w in words if w and len(w) >= 3), key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(w) for w in ordered), re.IGNORECASE) if ordered else None
        )

    def __call__(self, text: str) -> str:
        return self._pattern.sub("[learner]", text) if self._pattern is not None else text


def _viewable(session: Session, user: User, submission_id: str) -> tuple[Submission, bool]:
    """The submission and whether this viewer is its learner; reviewers of other programs see nothing."""
    submission = session.get(Submission, submission_id) if len(submission_id) <= 64 else None
    if submission is None:
        raise NotFound("no such submission")
    if submission.user_id == user.id:
        return submission, True
    if user.role == Role.LEARNER or not access.may_review(session, user, submission):
        raise NotFound("no such submission")
    return submission, False


def _blind_for(session: Session, user: User, submission: Submission) -> bool:
    return review_queue.hides_learner(session, user, submission)


def redactor_for(session: Session, user: User, submission: Submission) -> Redactor:
    return _redactor(submission, _blind_for(session, user, submission))


def _redactor(submission: Submission, blind: bool) -> Redactor:
    return Redactor(submission.user) if blind else Redactor(None)


def bundle(session: Session, user: User, submission_id: str) -> Bundle:
    submission, own = _viewable(session, user, submission_id)
    blind = _blind_for(session, user, submission)
    redact = _redactor(submission, blind)
    result = latest_result(session, submission)
    feedback = dict(result.feedback) if result is not None else {}
    evidence = feedback.get("evidence", {})
    files = _evidence_files(evidence, redact)
    answers: list[Answer] = []
    definition = parse_definition(submission.assessment_version)
    if isinstance(definition, QuizAssessment):
        by_id = definition.questions_by_id()
        for qid, given in submission.payload.get("answers", {}).items():
            question = by_id.get(qid)
            if question is not None and question.type == "short_text":
                answers.append(Answer(qid, question.prompt, redact(str(given))))
    history = _history(session, submission)
    earlier = tuple(attempt.submission_id for attempt in history)
    return Bundle(
        submission_id=submission.id,
        kind=submission.kind,
        assessment=submission.assessment.slug,
        assessment_title=submission.assessment.title,
        attempt_number=submission.attempt_number,
        learner=None if blind else submission.user.name,
        commit=submission.commit_sha,
        files=files,
        omitted=int(evidence.get("omitted", 0)),
        # Test output and explanations may quote paths or text with the learner's name in them.
        tests=tuple(_redacted(dict(t), redact) for t in feedback.get("tests", [])) if not own else (),
        criteria=tuple(_redacted(dict(c), redact) for c in feedback.get("rubric", {}).get("criteria", [])),
        answers=tuple(answers),
        notes=tuple(redact(n) for n in feedback.get("notes", [])),
        earlier=earlier,
        blind=blind,
        extra={"totals": feedback.get("totals", {})},
        history=history,
    )


def _evidence_files(evidence: dict[str, Any], redact: Redactor) -> tuple[EvidenceFile, ...]:
    return tuple(
        EvidenceFile(
            path=str(item["path"]),
            shown_path=redact(str(item["path"])),
            size=int(item.get("size", 0)),
            sha256=item.get("sha256"),
            text=bool(item.get("text")),
        )
        for item in evidence.get("files", [])
    )


def _history(session: Session, submission: Submission) -> tuple[EarlierAttempt, ...]:
    """The learner's earlier submissions of the assessment, newest first, each with its latest result."""
    rows = session.scalars(
        select(Submission)
        .where(
            Submission.user_id == submission.user_id,
            Submission.assessment_id == submission.assessment_id,
            Submission.created_at < submission.created_at,
        )
        .order_by(Submission.created_at.desc())
    ).all()
    if not rows:
        return ()
    # One query for every attempt's latest result (as `latest_result` picks it), not one per attempt.
    newest = (
        select(func.max(Result.id))
        .where(Result.submission_id.in_([row.id for row in rows]))
        .group_by(Result.submission_id)
    )
    standing = {r.submission_id: r for r in session.scalars(select(Result).where(Result.id.in_(newest)))}
    attempts: list[EarlierAttempt] = []
    for row in rows:
        result = standing.get(row.id)
        settled = result if result is not None and not result.needs_review else None
        attempts.append(
            EarlierAttempt(
                submission_id=row.id,
                attempt_number=row.attempt_number,
                created_at=row.created_at,
                status=row.status,
                score=settled.score if settled else None,
                max_score=settled.max_score if settled else None,
                passed=settled.passed if settled else None,
            )
        )
    return tuple(attempts)


def _redacted(value: Any, redact: Redactor) -> Any:
    """Every text inside a JSON-like value, redacted (keys are ours and stay as they are)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item, redact) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item, redact) for item in value]
    return value


_texts: ContentCache[str, str] = ContentCache(
    entries=TEXT_CACHE_ENTRIES, budget=TEXT_CACHE_BYTES, weigh=lambda text: len(text) + _LINE_OVERHEAD
)
_diffs: ContentCache[tuple[str | None, str | None], tuple[str, ...]] = ContentCache(
    entries=DIFF_CACHE_ENTRIES,
    budget=DIFF_CACHE_BYTES,
    weigh=lambda lines: sum(len(line) + _LINE_OVERHEAD for line in lines),
)


def clear_cache() -> None:
    """Forget every file text and diff kept (a cold start, for benches and tests)."""
    _texts.clear()
    _diffs.clear()


def _stored_text(store: FileStore, sha256: str) -> str:
    """A renderable file's text (UTF-8: `is_text` checked it when the work was graded)."""
    found = _texts.get(sha256)
    if found is not None:
        return found
    return _texts.put(sha256, store.get(sha256).decode("utf-8", errors="replace"))


def read_file(
    session: Session,
    store: FileStore,
    user: User,
    submission_id: str,
    path: str,
    *,
    seen: Bundle | None = None,
) -> FileView:
    """One file of the bundle, with its text when it is text small enough to show.

    `seen` is the bundle this viewer was already given (a page that shows both need not build it twice).
    """
    view = (
        seen
        if seen is not None and seen.submission_id == submission_id
        else bundle(session, user, submission_id)
    )
    found = next((f for f in view.files if f.path == path or f.shown_path == path), None)
    if found is None:
        raise NotFound("no such file in this submission", details={"field": "path"})
    if not found.renderable or found.sha256 is None:
        return FileView(found, None)
    submission = session.get(Submission, submission_id)
    assert submission is not None
    return FileView(found, _redactor(submission, view.blind)(_stored_text(store, found.sha256)))


def raw_file(
    session: Session, store: FileStore, user: User, submission_id: str, path: str
) -> tuple[EvidenceFile, bytes]:
    """A file's bytes, for a download (served as an attachment, never rendered)."""
    view = bundle(session, user, submission_id)
    found = next((f for f in view.files if f.path == path or f.shown_path == path), None)
    if found is None or found.sha256 is None:
        raise NotFound("no such file in this submission", details={"field": "path"})
    return found, store.get(found.sha256)


@dataclass(frozen=True)
class FileDiff:
    path: str
    status: str  # added | removed | changed
    lines: tuple[str, ...]  # a unified diff; empty for binary files


def _unified(store: FileStore, old: EvidenceFile | None, new: EvidenceFile | None) -> tuple[str, ...]:
    """The unified diff of two stored versions (None: the file is not on that side), without its
    `---`/`+++` header, cut at `MAX_DIFF_LINES`: the most any page shows of one file."""
    key = (old.sha256 if old else None, new.sha256 if new else None)
    found = _diffs.get(key)
    if found is not None:
        return found
    old_text = _stored_text(store, old.sha256) if old is not None and old.sha256 else ""
    new_text = _stored_text(store, new.sha256) if new is not None and new.sha256 else ""
    unified = difflib.unified_diff(
        old_text.splitlines(), new_text.splitlines(), "before", "after", lineterm="", n=3
    )
    return _diffs.put(key, tuple(unified)[2:MAX_DIFF_LINES])


def diff_to_previous(
    session: Session,
    store: FileStore,
    user: User,
    submission_id: str,
    *,
    seen: Bundle | None = None,
) -> tuple[str | None, list[FileDiff]]:
    """What changed since the learner's previous attempt: its id and the changed files.

    `seen` is the bundle of `submission_id` this viewer was already given, as for `read_file`.
    """
    current = (
        seen
        if seen is not None and seen.submission_id == submission_id
        else bundle(session, user, submission_id)
    )
    if not current.earlier:
        return None, []
    submission = session.get(Submission, submission_id)
    previous = session.get(Submission, current.earlier[0])
    assert submission is not None and previous is not None
    # The same learner's attempt at the same assessment: whoever may view this one may view that one,
    # and the same redaction applies.
    redact = _redactor(submission, current.blind)
    standing = latest_result(session, previous)
    before_files = _evidence_files(dict(standing.feedback).get("evidence", {}), redact) if standing else ()
    before = {f.path: f for f in before_files}
    after = {f.path: f for f in current.files}
    diffs: list[FileDiff] = []
    budget = MAX_DIFF_LINES
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old is not None and new is not None and old.sha256 == new.sha256:
            continue
        status = "added" if old is None else "removed" if new is None else "changed"
        lines: tuple[str, ...] = ()
        if budget > 0 and all(f is None or f.renderable for f in (old, new)):
            unified = _unified(store, old, new)[: max(budget - 2, 0)]
            budget -= len(unified)
            lines = tuple(redact(line) for line in unified)
        diffs.append(FileDiff(redact(path), status, lines))
    return previous.id, diffs


def graded_path(view: Bundle, path: str) -> str:
    """The path as graded of a file of `view`, named as this viewer sees it (or as graded).

    Inline comments are kept against the graded path, so the learner finds them beside their own
    file; a blind reviewer only ever sends and sees the redacted path.
    """
    for file in view.files:
        if file.shown_path == path or file.path == path:
            return file.path
    raise InvalidInput("there is no such file in this submission", details={"field": "path"})


def shown_path(view: Bundle, path: str) -> str:
    """How this viewer sees a graded path; never the graded path of a blind review's unknown file."""
    for file in view.files:
        if file.path == path:
            return file.shown_path
    return "(a file not in this submission)" if view.blind else path
