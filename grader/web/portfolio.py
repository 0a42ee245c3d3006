"""The portfolio hand-in page (`/assessments/<slug>/portfolio`), and the portfolio receipt that the page,
the API and the submission page share.

The page is one form with a section per slot of the portfolio: file inputs (several where the slot takes
several files), a URL input per link, a textarea per statement. "Save draft" keeps everything in the
learner's draft (`grader.services.portfolios`); "Hand in" saves, then submits the draft through
`grader.services.submissions.submit`, which freezes it. Each slot is saved on its own, so a file refused
in one slot does not lose the words written in another; every refusal names its slot in words, keeps what
was typed and answers with its real status (400, 409, 413, 503). Everything works with JavaScript off;
`static/portfolio.js` adds drag and drop onto each file slot, a live word count and a size check before
sending.

Uploads: a request to a portfolio's upload routes (this page's form, the API's `/portfolio/files`) may
carry the portfolio's largest file and the form around it (`request_limit`), or `GRADER_MAX_REQUEST_BYTES`
when that is more; every other route keeps `GRADER_MAX_REQUEST_BYTES`. The larger limit is set on the
request before any byte of its body is read, and only for a user who may hand the portfolio in, so a
stranger's request is still cut at the default. A body announced as larger than its limit is refused
before any of it is read, and Werkzeug spools the file parts of a smaller body to temporary files (in
memory up to 500 KB a part). Each file is then read through the slot's `SizeGuard`
(`artifacts.read_upload`), so no more than the slot's limit and one byte of it is ever held, hashed or
stored, and the refusal names the slot.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from grader.catalog.schema import Artifact, LinkSpec, PortfolioAssessment, Slot, Statement
from grader.errors import (
    Conflict,
    GraderError,
    InvalidInput,
    NotFound,
    RateLimited,
    ServiceUnavailable,
)
from grader.intake import artifacts
from grader.kinds.base import SubmissionRequest
from grader.models import DraftItem, Submission, User
from grader.services import portfolios, queries, submissions
from grader.services.catalog import parse_definition
from grader.storage import FileStore, file_store
from grader.web.auth import login_required_page, page_user
from grader.web.context import db, web

bp = Blueprint("portfolio", __name__)

PageResult = str | tuple[str, int] | tuple[str, int, dict[str, str]]

# What a file input offers to pick for each type; only a hint to the browser's file chooser; the server
# decides by the content.
ACCEPT = {
    "pdf": (".pdf", "application/pdf"),
    "png": (".png", "image/png"),
    "jpeg": (".jpg", ".jpeg", "image/jpeg"),
    "text": (".txt", ".log", ".csv", "text/plain"),
    "markdown": (".md", ".markdown", ".txt", "text/markdown", "text/plain"),
    "zip": (".zip", "application/zip"),
}
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
# Room beside a portfolio's largest file in one upload request: the multipart framing, the CSRF token, the
# draft's id, the links and statements (each text field is capped at Flask's MAX_FORM_MEMORY_SIZE anyway).
FORM_ROOM_BYTES = 1024 * 1024
SLOT_KINDS = {Artifact: portfolios.FILE, LinkSpec: portfolios.LINK, Statement: portfolios.STATEMENT}


# ---------------------------------------------------------------- shared with the API


def portfolio_for(user: User, slug: str) -> PortfolioAssessment:
    """The portfolio behind `slug`, for a user who may hand it in: `NotFound` for an unknown assessment or
    one that is not a portfolio, `PermissionDenied` for a user who is not enrolled (admins may try)."""
    _, portfolio = portfolios.portfolio_of(db(), slug)
    submissions.check_enrolled(db(), user, slug)
    return portfolio


def slot_kind(slot: Slot) -> str:
    return SLOT_KINDS[type(slot)]


def file_slot(portfolio: PortfolioAssessment, slot_id: str) -> Artifact:
    """The file slot called `slot_id`, found before the upload is read so its limit guards the reading."""
    for slot in portfolio.slots:
        if slot.id == slot_id:
            if not isinstance(slot, Artifact):
                raise InvalidInput(f"{slot.title} does not take files", details={"field": slot_id})
            return slot
    raise NotFound(f"{portfolio.title} has no part called {slot_id!r}", details={"field": "slot"})


def request_limit(portfolio: PortfolioAssessment) -> int:
    """The most one upload request to `portfolio` may carry: its largest slot's file and the rest of the
    form, never less than `GRADER_MAX_REQUEST_BYTES` (what every other route carries)."""
    largest = max((slot.max_bytes for slot in portfolio.artifacts), default=0)
    return max(web().settings.max_request_bytes, largest + FORM_ROOM_BYTES)


def widen_request_limit(user: User, slug: str) -> None:
    """Let this request carry `request_limit` of the portfolio `slug`, if `user` may hand it in. Called
    before the body is first read; for anyone else the default stays, and the view refuses them."""
    try:
        portfolio = portfolio_for(user, slug)
    except GraderError:
        return
    request.max_content_length = request_limit(portfolio)


def file_limit(slot: Artifact, portfolio: PortfolioAssessment) -> int:
    """The largest file the slot can receive over HTTP: its own limit (the request's is set above it)."""
    return min(slot.max_bytes, request_limit(portfolio))


def read_file(upload: FileStorage, slot: Artifact) -> bytes:
    """The upload's bytes through the slot's `SizeGuard`: at most its limit and one byte are read."""
    return artifacts.read_upload(
        upload.stream, slot.max_bytes, field=slot.id, title=slot.title, name=upload.filename or ""
    )


def chosen_files(uploads: Sequence[FileStorage]) -> list[FileStorage]:
    # A file input left empty still sends a part, with no name and no bytes.
    return [upload for upload in uploads if upload.filename]


def types_in_words(types: Sequence[str]) -> str:
    """'a PDF or a Markdown file'."""
    names = [artifacts.KIND_WORDS.get(kind, kind) for kind in dict.fromkeys(types)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def check_room(slot: Artifact, held: int, chosen: int) -> None:
    """Refuse a choice of files that would not fit the slot, before any of them is read."""
    if held + chosen <= slot.max_files:
        return
    room = slot.max_files - held
    noun = "file" if slot.max_files == 1 else "files"
    holds = f"already holds {held}, so " if held else ""
    can = f"choose at most {room}" if room > 0 else "remove one before adding another"
    raise Conflict(
        f"{slot.title} takes at most {slot.max_files} {noun} and {holds}{chosen} chosen is too many: {can}",
        details={"field": slot.id, "rule": "too_many_files", "limit": slot.max_files},
    )


def type_in_words(item: DraftItem) -> str:
    """'a PDF of 3 pages', from what was found in the file when it was checked."""
    details = item.details or {}
    stored = artifacts.StoredFile(
        item.name,
        item.size,
        item.sha256 or "",
        item.media_type,
        details.get("pages"),
        details.get("width"),
        details.get("height"),
        details.get("members"),
    )
    return stored.describe().rsplit(", ", 1)[0]  # the size is shown apart


def item_json(item: DraftItem) -> dict[str, Any]:
    """A draft item as the API gives it."""
    out: dict[str, Any] = {"id": item.id, "slot": item.slot, "kind": item.kind}
    if item.kind == portfolios.FILE:
        out |= {
            "name": item.name,
            "size": item.size,
            "sha256": item.sha256,
            "type": item.media_type,
            "type_in_words": type_in_words(item),
        }
    elif item.kind == portfolios.LINK:
        out |= {
            "url": item.text,
            "host": item.details.get("host"),
            "private": bool(item.details.get("private")),
        }
    else:
        out |= {"text": item.text, "words": item.details.get("words", 0)}
    return out


@dataclass(frozen=True)
class ReceiptFile:
    slot: str
    slot_title: str
    name: str
    sha256: str
    size: int
    type: str
    type_in_words: str


@dataclass(frozen=True)
class ReceiptLink:
    slot: str
    slot_title: str
    url: str
    host: str
    private: bool


@dataclass(frozen=True)
class ReceiptStatement:
    slot: str
    slot_title: str
    text: str
    words: int


@dataclass(frozen=True)
class PortfolioReceipt:
    """What a portfolio hand-in froze: every artifact by SHA-256, size and detected type, the links and
    the statements, in the order of the portfolio's slots."""

    files: tuple[ReceiptFile, ...]
    links: tuple[ReceiptLink, ...]
    statements: tuple[ReceiptStatement, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [
                {"slot": f.slot, "name": f.name, "sha256": f.sha256, "size": f.size, "type": f.type}
                for f in self.files
            ],
            "links": [
                {"slot": x.slot, "url": x.url, "host": x.host, "private": x.private} for x in self.links
            ],
            "statements": [{"slot": s.slot, "words": s.words, "text": s.text} for s in self.statements],
        }


def receipt_of(submission: Submission) -> PortfolioReceipt:
    """The receipt of a portfolio submission, read from the manifest its hand-in stored."""
    definition = parse_definition(submission.assessment_version)
    titles = (
        {slot.id: slot.title for slot in definition.slots}
        if isinstance(definition, PortfolioAssessment)
        else {}
    )
    payload = submission.payload or {}

    def title(entry: dict[str, Any]) -> str:
        return titles.get(str(entry.get("slot")), str(entry.get("slot", "")))

    files = []
    for entry in payload.get("files", []):
        details = entry.get("details") or {}
        described = artifacts.StoredFile(
            str(entry["name"]),
            int(entry["size"]),
            str(entry["sha256"]),
            str(entry["type"]),
            details.get("pages"),
            details.get("width"),
            details.get("height"),
            details.get("members"),
        ).describe()
        files.append(
            ReceiptFile(
                str(entry["slot"]),
                title(entry),
                str(entry["name"]),
                str(entry["sha256"]),
                int(entry["size"]),
                str(entry["type"]),
                described.rsplit(", ", 1)[0],
            )
        )
    links = [
        ReceiptLink(str(e["slot"]), title(e), str(e["url"]), str(e.get("host", "")), bool(e.get("private")))
        for e in payload.get("links", [])
    ]
    statements = [
        ReceiptStatement(str(e["slot"]), title(e), str(e["text"]), int(e.get("words", 0)))
        for e in payload.get("statements", [])
    ]
    return PortfolioReceipt(tuple(files), tuple(links), tuple(statements))


def page_receipt(user: User, submission_id: str, kind: str) -> PortfolioReceipt | None:
    """The receipt the submission page shows, for a portfolio submission the user may see."""
    if kind != "portfolio":
        return None
    return receipt_of(queries.get_submission_for(db(), user, submission_id))


# ---------------------------------------------------------------- the page


@dataclass(frozen=True)
class Problem:
    """A refusal met while saving, tied to the slot it is about (empty for the form as a whole)."""

    slot: str
    title: str
    message: str
    status: int
    retry_after: int | None = None


@dataclass(frozen=True)
class HeldFile:
    item: DraftItem
    type_in_words: str


@dataclass(frozen=True)
class SlotPanel:
    """One slot of the page: what it asks for, what the draft holds, what was typed, what went wrong."""

    slot: Slot  # an Artifact, a LinkSpec or a Statement: the template reads the fields of its kind
    kind: str
    required: bool
    files: tuple[HeldFile, ...] = ()
    link: DraftItem | None = None
    statement: DraftItem | None = None
    typed: str = ""  # the link or statement as the form shows it
    problems: tuple[Problem, ...] = ()
    accept: str = ""
    types_in_words: str = ""
    limit_bytes: int = 0
    room: int = 0  # files the slot can still take

    @property
    def id(self) -> str:
        return str(self.slot.id)


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith((".", "!", "?")) else ".")


def _problem(slot: Slot | None, exc: GraderError) -> Problem:
    message = exc.message
    if isinstance(exc, ServiceUnavailable):
        # The store's own message names a folder or a bucket; the learner needs to know what to do.
        message = "the file store is not answering, so nothing was saved for this part: try again in a minute"
    return Problem(
        slot.id if slot is not None else "",
        slot.title if slot is not None else "",
        _sentence(message),
        exc.http_status,
        exc.retry_after if isinstance(exc, RateLimited) else None,
    )


def _panels(
    view: portfolios.DraftView, problems: Sequence[Problem], typed: dict[str, str]
) -> list[SlotPanel]:
    panels = []
    for slot_view in view.slots:
        slot = slot_view.slot
        mine = tuple(p for p in problems if p.slot == slot.id)
        if isinstance(slot, Artifact):
            types = [t.value for t in slot.types]
            accept = ",".join(dict.fromkeys(a for t in types for a in ACCEPT.get(t, ())))
            held = tuple(HeldFile(item, type_in_words(item)) for item in slot_view.items)
            panels.append(
                SlotPanel(
                    slot,
                    portfolios.FILE,
                    slot.required,
                    files=held,
                    problems=mine,
                    accept=accept,
                    types_in_words=types_in_words(types),
                    limit_bytes=file_limit(slot, view.portfolio),
                    room=max(0, slot.max_files - len(held)),
                )
            )
        else:
            item = slot_view.items[0] if slot_view.items else None
            shown = typed.get(slot.id, item.text if item is not None else "")
            kind = slot_kind(slot)
            panels.append(
                SlotPanel(
                    slot,
                    kind,
                    slot.required,
                    link=item if kind == portfolios.LINK else None,
                    statement=item if kind == portfolios.STATEMENT else None,
                    typed=shown,
                    problems=mine,
                )
            )
    return panels


def _render(
    slug: str,
    user: User,
    problems: Sequence[Problem] = (),
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> PageResult:
    view = portfolios.draft_view(db(), user, slug)
    headers: dict[str, str] = {}
    waits = [p.retry_after for p in problems if p.retry_after is not None]
    if waits:
        headers["Retry-After"] = str(max(waits))
    page = render_template(
        "portfolio.html",
        assessment=submissions.assessment_summary(db(), slug),
        portfolio=view.portfolio,
        draft=view,
        panels=_panels(view, problems, typed or {}),
        problems=problems,
        form_problems=[p for p in problems if not p.slot],
        availability=submissions.availability(db(), web().settings, user, slug),
        request_limit=request_limit(view.portfolio),
        nonce=secrets.token_urlsafe(16),
    )
    return page, status, headers


@bp.url_value_preprocessor
def _room_for_the_upload(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # URL value preprocessors run before every before_request hook, the CSRF check among them, which
    # is the first to read the form: the request's limit must be in place before that read.
    if endpoint == "portfolio.hand_in" and request.method == "POST" and current_user.is_authenticated:
        widen_request_limit(page_user(), str((values or {}).get("slug", "")))


@bp.route("/assessments/<slug>/portfolio", methods=["GET", "POST"])
@login_required_page
def hand_in(slug: str) -> PageResult | BaseResponse:
    user = page_user()
    portfolio = portfolio_for(user, slug)
    if request.method == "GET":
        return _render(slug, user)
    if "remove" in request.form:
        return _remove(slug, user, request.form.get("remove", ""))
    typed = {
        slot.id: request.form[name]
        for slot in portfolio.slots
        if (name := f"{slot_kind(slot)}s.{slot.id}") in request.form
    }
    if request.form.get("action") == "hand_in":
        shown_draft = request.form.get("draft", "")
        current = portfolios.open_draft(db(), user, slug, create=False)
        if shown_draft and (current is None or current.id != shown_draft):
            # The draft this page showed was handed in meanwhile (a second click, another tab): that
            # hand-in is the answer, and nothing on the page is saved into a new draft.
            earlier = portfolios.handed_in(db(), user, slug, shown_draft[:64])
            if earlier is None:
                raise NotFound("you have no such portfolio draft", details={"field": "draft"})
            flash("This draft was already handed in: here is that hand-in.", "good")
            return redirect(url_for("learner.submission", submission_id=earlier), code=303)
    problems = _save(db(), file_store(web().settings), user, portfolio, slug)
    if problems:
        return _render(slug, user, problems, typed, status=problems[0].status)
    if request.form.get("action") == "hand_in":
        return _submit(slug, user, portfolio, request.form.get("nonce", ""), typed)
    flash("Your draft is saved. Nothing is handed in until you choose Hand in.", "good")
    return redirect(url_for("portfolio.hand_in", slug=slug), code=303)


def _submit(
    slug: str, user: User, portfolio: PortfolioAssessment, nonce: str, typed: dict[str, str]
) -> PageResult | BaseResponse:
    draft = portfolios.open_draft(db(), user, slug)
    assert draft is not None
    # The page's own key: the same page sent twice (a double click before the first answer came back)
    # is one hand-in, even when it started without a draft.
    key = f"portfolio-page:{nonce}" if _NONCE.fullmatch(nonce) else None
    try:
        accepted = submissions.submit(
            db(),
            web().queue,
            web().settings,
            user,
            SubmissionRequest(assessment=slug, draft_id=draft.id, idempotency_key=key),
        )
    except GraderError as exc:
        slot = next((s for s in portfolio.slots if s.id == exc.details.get("field")), None)
        problem = _problem(slot, exc)
        return _render(slug, user, [problem], typed, status=problem.status)
    if not accepted.created:
        # The first of the two requests handed the draft in; what this one saved again is undone.
        db().rollback()
    return redirect(url_for("learner.submission", submission_id=accepted.submission_id), code=303)


def _remove(slug: str, user: User, raw_id: str) -> PageResult | BaseResponse:
    view = portfolios.draft_view(db(), user, slug)
    held = {str(item.id): item for slot in view.slots for item in slot.items}
    item = held.get(raw_id)
    if item is None:
        problem = Problem("", "", "Your draft holds no such file: it may have been removed already.", 404)
        return _render(slug, user, [problem], status=404)
    portfolios.remove_item(db(), user, slug, item.id)
    flash(f"{item.name or 'The item'} was removed from your draft.", "good")
    return redirect(url_for("portfolio.hand_in", slug=slug), code=303)


def _save(
    session: Session, store: FileStore, user: User, portfolio: PortfolioAssessment, slug: str
) -> list[Problem]:
    """Every slot of the form into the draft, each on its own; the refusals, in slot order."""
    view = portfolios.draft_view(session, user, slug)
    held = {slot_view.slot.id: slot_view.items for slot_view in view.slots}
    problems: list[Problem] = []
    for slot in portfolio.slots:
        try:
            if isinstance(slot, Artifact):
                problems.extend(_save_files(session, store, user, slug, slot, len(held[slot.id])))
                continue
            name = f"{slot_kind(slot)}s.{slot.id}"
            if name not in request.form:
                continue
            typed = request.form[name]
            kept = held[slot.id][0].text if held[slot.id] else ""
            if _same(typed, kept):
                continue  # unchanged: not judged again, so a limit changed since does not block the save
            if isinstance(slot, LinkSpec):
                portfolios.set_link(session, user, slug, slot.id, typed)
            else:
                portfolios.set_statement(session, user, slug, slot.id, typed)
        except GraderError as exc:
            problems.append(_problem(slot, exc))
    return problems


def _same(typed: str, kept: str) -> bool:
    return typed.replace("\r\n", "\n").strip() == kept.strip()


def _save_files(
    session: Session, store: FileStore, user: User, slug: str, slot: Artifact, held: int
) -> list[Problem]:
    uploads = chosen_files(request.files.getlist(f"files.{slot.id}"))
    if not uploads:
        return []
    check_room(slot, held, len(uploads))
    problems = []
    for upload in uploads:
        try:
            data = read_file(upload, slot)
            portfolios.add_file(session, store, user, slug, slot.id, upload.filename or "", data)
        except GraderError as exc:
            problems.append(_problem(slot, exc))
    return problems


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> PageResult | BaseResponse:
    """A body over the request limit is refused before any of it is read (by the CSRF check, first), so
    nothing of it can be kept: the page says so, and how to send large files instead."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    user = page_user()
    slug = str((request.view_args or {}).get("slug", ""))
    try:
        portfolio = portfolio_for(user, slug)
    except GraderError as refused:
        page = render_template(
            "error.html", status=refused.http_status, code=refused.code, message=refused.message, details={}
        )
        return page, refused.http_status
    limit = artifacts.human_size(request_limit(portfolio))
    problem = Problem(
        "",
        "",
        f"What you sent is larger than {limit}, the most one save can carry, so nothing of it was saved. "
        "Add large files one or two at a time, saving after each, and write your text again.",
        413,
    )
    return _render(slug, user, [problem], status=413)
