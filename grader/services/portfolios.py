"""Portfolio drafts: the files, links and statements a learner gathers before handing a portfolio in.

A draft is kept between visits; each change is checked at once against the assessment's declared slots
(`grader.intake.artifacts` judges the untrusted content), so the learner learns of a wrong file type
when they upload it, not at the deadline. A file reaches the database only after the file store holds
all of its bytes: an interrupted upload or a store that is down leaves nothing behind. The hand-in
itself goes through `grader.services.submissions.submit`, where the portfolio kind freezes the draft.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.catalog.schema import Artifact, LinkSpec, PortfolioAssessment, Slot, Statement
from grader.errors import Conflict, InvalidInput, NotFound
from grader.intake import artifacts
from grader.models import Assessment, DraftItem, PortfolioDraft, User, utcnow
from grader.services.catalog import current_version, parse_definition
from grader.storage import FileStore

FILE, LINK, STATEMENT = "file", "link", "statement"
# What a draft keeps of a file beyond its name, size and digest (what the checks and the viewer show).
_DETAIL_KEYS = ("pages", "width", "height", "members")


def portfolio_of(session: Session, slug: str) -> tuple[Assessment, PortfolioAssessment]:
    version = current_version(session, slug)
    definition = parse_definition(version)
    if not isinstance(definition, PortfolioAssessment):
        raise NotFound(f"{definition.title} is not handed in as a portfolio", details={"field": "assessment"})
    return version.assessment, definition


def _slot(portfolio: PortfolioAssessment, slot_id: str, kind: type[Slot]) -> Any:
    for slot in portfolio.slots:
        if slot.id == slot_id:
            if not isinstance(slot, kind):
                raise InvalidInput(
                    f"{slot.title} does not take {_KIND_WORDS[kind]}", details={"field": slot_id}
                )
            return slot
    raise NotFound(f"{portfolio.title} has no part called {slot_id!r}", details={"field": "slot"})


_KIND_WORDS: dict[type[Slot], str] = {Artifact: "files", LinkSpec: "a link", Statement: "a statement"}


# ---------------------------------------------------------------- the draft


def open_draft(session: Session, user: User, slug: str, *, create: bool = True) -> PortfolioDraft | None:
    """The learner's open draft for this portfolio; a new one when there is none and `create`."""
    assessment, _ = portfolio_of(session, slug)
    # The learner's row is locked (PostgreSQL) so two tabs starting a draft at once make one draft.
    session.scalar(select(User.id).where(User.id == user.id).with_for_update())
    draft = session.scalar(
        select(PortfolioDraft)
        .where(
            PortfolioDraft.user_id == user.id,
            PortfolioDraft.assessment_id == assessment.id,
            PortfolioDraft.submission_id.is_(None),
        )
        .order_by(PortfolioDraft.created_at.desc())
        .limit(1)
    )
    if draft is None and create:
        draft = PortfolioDraft(user_id=user.id, assessment_id=assessment.id)
        session.add(draft)
        session.flush()
    return draft


def handed_in(session: Session, user: User, slug: str, draft_id: str | None = None) -> str | None:
    """The submission a handed-in draft of the learner's became: the draft `draft_id` when given (None
    when it is not theirs or still open), else their most recently handed-in draft of this portfolio."""
    assessment, _ = portfolio_of(session, slug)
    query = select(PortfolioDraft.submission_id).where(
        PortfolioDraft.user_id == user.id,
        PortfolioDraft.assessment_id == assessment.id,
        PortfolioDraft.submission_id.is_not(None),
    )
    if draft_id is not None:
        query = query.where(PortfolioDraft.id == draft_id)
    return session.scalar(query.order_by(PortfolioDraft.created_at.desc()).limit(1))


def _editable(session: Session, user: User, slug: str) -> tuple[PortfolioDraft, PortfolioAssessment]:
    draft = open_draft(session, user, slug)
    assert draft is not None
    return draft, portfolio_of(session, slug)[1]


def _items(draft: PortfolioDraft, slot_id: str) -> list[DraftItem]:
    return [item for item in draft.items if item.slot == slot_id]


def add_file(
    session: Session, store: FileStore, user: User, slug: str, slot_id: str, name: str, data: bytes
) -> DraftItem:
    """Check one uploaded file against its slot, store it, and add it to the draft."""
    draft, portfolio = _editable(session, user, slug)
    slot: Artifact = _slot(portfolio, slot_id, Artifact)
    held = _items(draft, slot_id)
    if len(held) >= slot.max_files:
        noun = "file" if slot.max_files == 1 else "files"
        raise Conflict(
            f"{slot.title} takes at most {slot.max_files} {noun}: remove one before adding another",
            details={"field": slot_id},
        )
    checked = artifacts.check_file(
        [t.value for t in slot.types], slot.max_bytes, name, data, field=slot_id, title=slot.title
    )
    if any(item.name == checked.name for item in held):
        raise Conflict(
            f"{slot.title} already holds a file called {checked.name!r}: remove it first",
            details={"field": slot_id},
        )
    key = store.put(data)  # before the row: a store that fails leaves no row pointing at nothing
    item = DraftItem(
        slot=slot_id,
        kind=FILE,
        name=checked.name,
        sha256=key,
        size=len(data),
        media_type=checked.kind,
        details={k: v for k, v in asdict(checked.stored()).items() if k in _DETAIL_KEYS and v is not None},
    )
    draft.items.append(item)
    draft.updated_at = utcnow()
    session.flush()
    return item


def set_link(session: Session, user: User, slug: str, slot_id: str, url: str) -> DraftItem | None:
    """Put a link in its slot (an empty address takes it out). The link is never fetched."""
    draft, portfolio = _editable(session, user, slug)
    slot: LinkSpec = _slot(portfolio, slot_id, LinkSpec)
    # Judged before the old link is taken out: a request that is refused still commits what it changed.
    checked = (
        artifacts.check_link(url.strip(), slot.schemes, slot.hosts, field=slot_id, title=slot.title)
        if url.strip()
        else None
    )
    for item in _items(draft, slot_id):
        draft.items.remove(item)
    draft.updated_at = utcnow()
    if checked is None:
        session.flush()
        return None
    item = DraftItem(
        slot=slot_id,
        kind=LINK,
        text=checked.url,
        media_type="link",
        details={"host": checked.shown_host, "private": checked.private},
    )
    draft.items.append(item)
    session.flush()
    return item


def set_statement(session: Session, user: User, slug: str, slot_id: str, text: str) -> DraftItem | None:
    """Keep the statement's words in the draft (empty takes it out); limits are judged at once."""
    draft, portfolio = _editable(session, user, slug)
    slot: Statement = _slot(portfolio, slot_id, Statement)
    checked = (
        artifacts.check_statement(text, slot.min_words, slot.max_words, field=slot_id, title=slot.title)
        if text.strip()
        else None
    )
    for item in _items(draft, slot_id):
        draft.items.remove(item)
    draft.updated_at = utcnow()
    if checked is None:
        session.flush()
        return None
    item = DraftItem(
        slot=slot_id, kind=STATEMENT, text=checked.text, media_type="text", details={"words": checked.words}
    )
    draft.items.append(item)
    session.flush()
    return item


def remove_item(session: Session, user: User, slug: str, item_id: int) -> None:
    draft, _ = _editable(session, user, slug)
    item = next((i for i in draft.items if i.id == item_id), None)
    if item is None:
        raise NotFound("your draft holds no such item", details={"field": "item"})
    draft.items.remove(item)
    draft.updated_at = utcnow()
    session.flush()


# ---------------------------------------------------------------- reading a draft, and freezing it


@dataclass(frozen=True)
class SlotView:
    """One slot of the hand-in page: what it asks for and what the draft holds for it."""

    slot: Slot
    kind: str
    items: tuple[DraftItem, ...]

    @property
    def filled(self) -> bool:
        return bool(self.items)

    @property
    def missing(self) -> bool:
        return self.slot.required and not self.items


@dataclass(frozen=True)
class DraftView:
    draft_id: str | None
    portfolio: PortfolioAssessment
    slots: tuple[SlotView, ...]
    updated_at: datetime | None

    @property
    def missing(self) -> list[SlotView]:
        return [slot for slot in self.slots if slot.missing]


def _kind_of_slot(slot: Slot) -> str:
    return FILE if isinstance(slot, Artifact) else LINK if isinstance(slot, LinkSpec) else STATEMENT


def draft_view(session: Session, user: User, slug: str) -> DraftView:
    """The portfolio's slots beside what the learner's open draft holds (nothing is created)."""
    _, portfolio = portfolio_of(session, slug)
    draft = open_draft(session, user, slug, create=False)
    items: Sequence[DraftItem] = draft.items if draft is not None else ()
    slots = tuple(
        SlotView(slot, _kind_of_slot(slot), tuple(i for i in items if i.slot == slot.id))
        for slot in portfolio.slots
    )
    return DraftView(draft.id if draft else None, portfolio, slots, draft.updated_at if draft else None)


def manifest(draft: PortfolioDraft, portfolio: PortfolioAssessment) -> dict[str, Any]:
    """The payload a submission stores: every artifact by hash, every link and statement, in slot order.

    `InvalidInput` names the first required slot left empty, and anything the current version of the
    portfolio no longer takes (a slot removed, a limit lowered since the upload)."""
    known = {slot.id: slot for slot in portfolio.slots}
    for item in draft.items:
        if item.slot not in known:
            raise InvalidInput(
                f"your draft holds {item.name or item.kind} for a part this portfolio no longer has: "
                "remove it and hand in again",
                details={"field": item.slot},
            )
    files: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    statements: list[dict[str, Any]] = []
    for slot in portfolio.slots:
        held = [item for item in draft.items if item.slot == slot.id]
        if slot.required and not held:
            raise InvalidInput(f"{slot.title} is required and still empty", details={"field": slot.id})
        for item in held:
            if isinstance(slot, Artifact):
                if item.media_type not in {t.value for t in slot.types} or item.size > slot.max_bytes:
                    raise InvalidInput(
                        f"{item.name} no longer fits {slot.title}: remove it and upload it again",
                        details={"field": slot.id},
                    )
                files.append(
                    {
                        "slot": slot.id,
                        "name": item.name,
                        "sha256": item.sha256,
                        "size": item.size,
                        "type": item.media_type,
                        "details": item.details,
                    }
                )
            elif isinstance(slot, LinkSpec):
                checked = artifacts.check_link(
                    item.text, slot.schemes, slot.hosts, field=slot.id, title=slot.title
                )
                links.append(
                    {
                        "slot": slot.id,
                        "url": checked.url,
                        "host": checked.shown_host,
                        "private": checked.private,
                    }
                )
            elif isinstance(slot, Statement):
                said = artifacts.check_statement(
                    item.text, slot.min_words, slot.max_words, field=slot.id, title=slot.title
                )
                statements.append({"slot": slot.id, "text": said.text, "words": said.words})
    return {"draft": draft.id, "files": files, "links": links, "statements": statements}
