"""The evidence bundle as reviewers and learners read it: files, test results, criteria, answers.

Built for every kind of work: a bundle has files (a repository's work tree), test results, the
automatic criteria already scored, answers in words (a quiz's open-text answers beside their
questions) and a portfolio's slots, each with the criteria it serves and what was handed in for it.
What a kind contributes beyond files and tests comes from the kind itself (`Kind.review_material`).
Files are read back from the file store by the hash recorded when the work was graded, so what is
shown is exactly what was graded. A portfolio's images and PDF pages are shown through the
renditions its result recorded (`grader.services.renditions`), never as uploaded.

Under blind review, the learner's identity is taken out of everything a reviewer sees: their name,
email and its local part are replaced by "[learner]" in paths, file contents and answers, in a
portfolio's file names, links, statements and archive listings; a PDF's document information (title,
author) is not shown at all, and its download is the copy without it. Staff see the learner. No
Flask here: the pages and the API format what these functions return.

A reviewer's page shows a file and the changes since the previous attempt on every request. What
they are made of depends only on stored bytes, so both are kept in bounded caches keyed by content
hash (redaction applies after, per viewer): a file's text by its SHA-256 (the store checked the bytes
against it when they were read; a remote store is not asked again), and the diff of two versions by
the pair of hashes.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grader.errors import InvalidInput, NotFound
from grader.kinds import kind_of
from grader.kinds.base import SlotMaterial
from grader.models import Result, Role, Submission, User
from grader.services import access, renditions, review_queue
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
class Rendition:
    """An image this service encoded, in the file store: what a reviewer's browser is given."""

    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class PortfolioFile:
    """One file of a portfolio slot as this viewer may see it."""

    key: str  # "<slot>/<n>": how pages and downloads name it, whatever its (redacted) name
    name: str  # as handed in
    shown_name: str  # as this viewer may see it (blind review redacts it)
    type: str  # png | jpeg | pdf | text | markdown | zip
    size: int
    sha256: str
    width: int | None = None
    height: int | None = None
    page_count: int | None = None
    image: Rendition | None = None  # an image's re-encoded rendition
    pages: tuple[Rendition, ...] = ()  # a PDF's first pages, rendered in the sandbox
    problem: str | None = None  # why there is no rendition, or fewer pages than shown
    details: tuple[tuple[str, str], ...] = ()  # a PDF's title and author; none under blind review
    # The stored bytes a download gives; under blind review a copy without the identifying metadata
    # (an image's rendition, a PDF without its document information), or None when there is none.
    download: str | None = None

    @property
    def picture(self) -> bool:
        return self.type in renditions.IMAGE_TYPES


@dataclass(frozen=True)
class PortfolioLink:
    url: str  # redacted under blind review
    host: str
    private: bool  # a private or loopback address: shown as text only, never as a link
    blind: bool  # the address had the learner's name taken out: not offered as a link either

    @property
    def linkable(self) -> bool:
        return not self.private and not self.blind and self.url.startswith(("https://", "http://"))


@dataclass(frozen=True)
class PortfolioStatement:
    text: str
    words: int


@dataclass(frozen=True)
class PortfolioSlot:
    """A declared part of the portfolio beside what was handed in for it and its automatic checks."""

    id: str
    kind: str  # file | link | statement
    title: str
    description: str
    prompt: str
    required: bool
    criteria: tuple[str, ...]
    files: tuple[PortfolioFile, ...] = ()
    links: tuple[PortfolioLink, ...] = ()
    statements: tuple[PortfolioStatement, ...] = ()
    checks: tuple[dict[str, Any], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.files or self.links or self.statements)


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
    slots: tuple[PortfolioSlot, ...] = ()  # a portfolio's declared parts, in the catalog's order

    def portfolio_file(self, key: str) -> PortfolioFile:
        for slot in self.slots:
            for file in slot.files:
                if file.key == key:
                    return file
        raise NotFound("no such file in this portfolio", details={"field": "file"})


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
    definition = parse_definition(submission.assessment_version)
    material = kind_of(definition).review_material(definition, submission.payload)
    answers = tuple(Answer(a.question_id, a.prompt, redact(a.answer)) for a in material.answers)
    slots = tuple(_portfolio_slot(slot, feedback, redact, blind) for slot in material.slots)
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
        answers=answers,
        notes=tuple(redact(n) for n in feedback.get("notes", [])),
        earlier=earlier,
        blind=blind,
        extra={"totals": feedback.get("totals", {})},
        history=history,
        slots=slots,
    )


def _rendition(value: Any) -> Rendition | None:
    if not isinstance(value, dict) or not isinstance(value.get("sha256"), str):
        return None
    return Rendition(value["sha256"], int(value.get("width", 0)), int(value.get("height", 0)))


def _mapping(value: Any) -> dict[str, Any]:
    """A stored JSON object, or an empty one for anything else (feedback written before a key existed)."""
    return value if isinstance(value, dict) else {}


def _portfolio_file(
    key: str, entry: Mapping[str, Any], made: dict[str, Any], redact: Redactor, blind: bool
) -> PortfolioFile:
    details = _mapping(entry.get("details"))
    sha256 = str(entry.get("sha256", ""))
    rendered = _mapping(made.get(sha256))
    pages = tuple(p for p in (_rendition(v) for v in rendered.get("pages", [])) if p is not None)
    shown_details: tuple[tuple[str, str], ...] = ()
    download: str | None = sha256
    image = _rendition(rendered.get("image"))
    if entry.get("type") == "pdf":
        described = _mapping(rendered.get("details"))
        if not blind:
            shown_details = tuple(
                (label, str(described[label])) for label in ("title", "author") if described.get(label)
            )
        if blind:
            # The original's document information may name the learner: only the copy without it.
            download = rendered.get("anonymous") if isinstance(rendered.get("anonymous"), str) else None
    elif blind and entry.get("type") in renditions.IMAGE_TYPES:
        download = image.sha256 if image is not None else None  # EXIF may name the learner, or a place
    problem = rendered.get("problem")
    name = str(entry.get("name", ""))
    return PortfolioFile(
        key=key,
        name=name,
        shown_name=redact(name),
        type=str(entry.get("type", "")),
        size=int(entry.get("size", 0)),
        sha256=sha256,
        width=details.get("width"),
        height=details.get("height"),
        page_count=rendered.get("page_count", details.get("pages")),
        image=image,
        pages=pages,
        problem=redact(str(problem)) if problem else None,
        details=shown_details,
        download=download,
    )


def _portfolio_slot(
    slot: SlotMaterial, feedback: dict[str, Any], redact: Redactor, blind: bool
) -> PortfolioSlot:
    made = _mapping(feedback.get("renditions"))
    checks = tuple(
        _redacted(dict(check), redact)
        for check in feedback.get("checks", [])
        if isinstance(check, dict) and check.get("slot") == slot.id
    )
    files: list[PortfolioFile] = []
    links: list[PortfolioLink] = []
    statements: list[PortfolioStatement] = []
    for number, entry in enumerate(slot.entries, start=1):
        if slot.kind == "file":
            files.append(_portfolio_file(f"{slot.id}/{number}", entry, made, redact, blind))
        elif slot.kind == "link":
            url = str(entry.get("url", ""))
            shown = redact(url)
            links.append(
                PortfolioLink(
                    shown, redact(str(entry.get("host", ""))), bool(entry.get("private")), shown != url
                )
            )
        else:
            statements.append(
                PortfolioStatement(redact(str(entry.get("text", ""))), int(entry.get("words", 0)))
            )
    return PortfolioSlot(
        id=slot.id,
        kind=slot.kind,
        title=slot.title,
        description=slot.description,
        prompt=slot.prompt,
        required=slot.required,
        criteria=slot.criteria,
        files=tuple(files),
        links=tuple(links),
        statements=tuple(statements),
        checks=checks,
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
# A ZIP's entries, read from its central directory once per archive.
_listings: ContentCache[str, renditions.Listing] = ContentCache(
    entries=256,
    budget=8 * 1024 * 1024,
    weigh=lambda listing: sum(len(m.name) + _LINE_OVERHEAD for m in listing.members) + _LINE_OVERHEAD,
)


def clear_cache() -> None:
    """Forget every file text, diff and listing kept (a cold start, for benches and tests)."""
    _texts.clear()
    _diffs.clear()
    _listings.clear()
    renditions.clear_cache()


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


# ---------------------------------------------------------------- a portfolio's files


@dataclass(frozen=True)
class PortfolioContent:
    """What the task page shows inline of a portfolio file that is not a picture."""

    text: str | None = None  # a text or Markdown file's words (redacted), when small enough to show
    listing: renditions.Listing | None = None  # a ZIP archive's entries (names redacted)
    too_large: bool = False


def portfolio_contents(session: Session, store: FileStore, view: Bundle) -> dict[str, PortfolioContent]:
    """The inline contents of the portfolio's text, Markdown and ZIP files of `view`, by file key."""
    submission = session.get(Submission, view.submission_id)
    assert submission is not None
    redact = _redactor(submission, view.blind)
    contents: dict[str, PortfolioContent] = {}
    for slot in view.slots:
        for file in slot.files:
            if file.type in {"text", "markdown"}:
                if file.size > MAX_SHOWN_BYTES:
                    contents[file.key] = PortfolioContent(too_large=True)
                else:
                    contents[file.key] = PortfolioContent(text=redact(_stored_text(store, file.sha256)))
            elif file.type == "zip":
                listing = _listings.get(file.sha256)
                if listing is None:
                    listing = _listings.put(file.sha256, renditions.zip_listing(store.get(file.sha256)))
                members = tuple(renditions.Member(redact(m.name), m.size, m.folder) for m in listing.members)
                contents[file.key] = PortfolioContent(
                    listing=renditions.Listing(members, listing.total, listing.problem)
                )
    return contents


def portfolio_picture(store: FileStore, view: Bundle, key: str, page: int | None = None) -> bytes:
    """The PNG a browser is given for a portfolio file: an image's rendition, or a PDF's page image.

    An image whose result recorded no rendition is re-encoded now (and remembered); the original's
    bytes are never what this returns."""
    file = view.portfolio_file(key)
    if file.picture:
        rendition = file.image
        if rendition is None:
            made = renditions.image_for(store, file.sha256)
            rendition = _rendition(made.get("image"))
            if rendition is None:
                raise NotFound(
                    f"{file.shown_name} cannot be shown: {made.get('problem', 'it did not decode')}",
                    details={"field": "file"},
                )
        return store.get(rendition.sha256)
    if file.type == "pdf":
        if page is None or not 1 <= page <= len(file.pages):
            raise NotFound("this PDF has no page image of that number", details={"field": "page"})
        return store.get(file.pages[page - 1].sha256)
    raise NotFound(f"{file.shown_name} is not shown as a picture", details={"field": "file"})


def portfolio_download(store: FileStore, view: Bundle, key: str) -> tuple[str, bytes]:
    """The name a download is offered under and its bytes (under blind review, without metadata)."""
    file = view.portfolio_file(key)
    if file.download is None:
        raise NotFound(
            f"{file.shown_name} is not offered for download under blind review: its metadata could not be "
            "taken out. Read it on this page.",
            details={"field": "file"},
        )
    name = file.shown_name
    if file.download != file.sha256 and file.picture:
        name = name.rsplit(".", 1)[0] + ".png"  # the rendition is what is downloaded
    return name, store.get(file.download)


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
