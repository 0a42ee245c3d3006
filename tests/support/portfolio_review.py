"""A portfolio world for review tests: a catalog whose portfolio has a slot of each kind (image, PDF,
Markdown, ZIP, links, a statement) serving named criteria, in a plain and a blind-review program; files
whose names and metadata carry the learner's name; the hand-in and the worker's own grading."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image
from pypdf import PdfReader, PdfWriter
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.db import session_scope
from grader.interfaces import RecordingQueue
from grader.kinds import default_graders
from grader.kinds.base import SubmissionRequest
from grader.models import ReviewTask, User
from grader.services import portfolios, submissions
from grader.services.grading import process_run
from grader.storage import file_store
from tests.conftest import Account
from tests.support.catalogs import write_catalog

RUBRIC = """\
id: showcase-review
title: Showcase review
pass_mark: 0.6
criteria:
  - id: complete
    title: Complete and well formed
    auto: {kind: tests_passed, tests: ["checks/*"]}
    max_points: 2
  - id: design
    title: Design shown
    manual: true
    levels:
      - {label: missing, points: 0}
      - {label: shown, points: 4}
  - id: writing
    title: Clear writing
    manual: true
    levels:
      - {label: weak, points: 0}
      - {label: clear, points: 4}
"""

SLOTS = """\
rubric: showcase-review
artifacts:
  - id: screenshot
    title: Screenshot
    types: [png, jpeg]
    criteria: [design]
  - id: report
    title: Design report
    types: [pdf]
    criteria: [design, writing]
  - id: notes
    title: Notes
    types: [markdown]
    required: false
    criteria: [writing]
  - id: code
    title: Source code
    types: [zip]
    required: false
links:
  - id: repo
    title: Repository
    hosts: [github.com]
  - id: demo
    title: Live demo
    required: false
statements:
  - id: reflection
    title: Reflection
    prompt: What would you do **differently** next time?
    min_words: 3
    max_words: 60
    criteria: [writing]
"""


def portfolio_yaml(slug: str, blind: bool) -> str:
    return (
        f"slug: {slug}\nkind: portfolio\ntitle: {slug.title()}\ndescription: Show your work.\n"
        f"review: {{blind: {'true' if blind else 'false'}}}\n" + SLOTS
    )


def program_yaml(slug: str, assessment: str) -> str:
    return (
        f"slug: {slug}\ntitle: {slug}\ndescription: One portfolio.\ncredential:\n  name: {slug} credential\n"
        f"  description: Shows a portfolio.\n  criteria: Hand in a portfolio.\nrequirements:\n"
        f"  - assessment: {assessment}\n"
    )


ARTIST = 0x013B
RED, GREEN, BLUE = (200, 30, 30), (30, 160, 60), (40, 60, 200)
NOTES = (
    "## What I changed\n\nThe **cache** goes first.\n\n"
    '<img src=x onerror="alert(1)"> [a trap](javascript:alert(2))\n'
)


def photo(width: int = 2400, height: int = 1200) -> bytes:
    image = Image.new("RGB", (width, height), RED)
    exif = Image.Exif()
    exif[ARTIST] = "Ada Lovelace"
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, quality=90)
    return out.getvalue()


def report(colours: tuple[tuple[int, int, int], ...] = (RED, GREEN, BLUE)) -> bytes:
    pages = [Image.new("RGB", (850, 1100), colour) for colour in colours]
    first = io.BytesIO()
    pages[0].save(first, format="PDF", save_all=True, append_images=pages[1:], resolution=100)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(first.getvalue())))
    writer.add_metadata({"/Author": "Ada Lovelace", "/Title": "Lovelace design report"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


PHOTO, REPORT = photo(), report()


def archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as bundle:
        bundle.writestr("engine/analytical.py", "steps = 3\n")
        bundle.writestr("README.md", "# Engine\n")
    return out.getvalue()


PRIVATE_DEMO = "https://127.0.0.1:8080/admin"  # accepted as text, never fetched; fails its check
PUBLIC_DEMO = "https://ada-engine.netlify.app/"


def hand_in_and_grade(
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: RecordingQueue,
    learner: Account,
    slug: str,
    demo: str = PRIVATE_DEMO,
) -> str:
    """Ada fills every slot (names carrying her name), hands the portfolio in, and the worker grades it."""
    store = file_store(settings)
    with session_scope(loaded) as session:
        user = session.get(User, learner.id)
        assert user is not None
        portfolios.add_file(session, store, user, slug, "screenshot", "ada-lovelace-screen.jpg", PHOTO)
        portfolios.add_file(session, store, user, slug, "report", "Lovelace report.pdf", REPORT)
        portfolios.add_file(session, store, user, slug, "notes", "notes.md", NOTES.encode())
        portfolios.add_file(session, store, user, slug, "code", "engine.zip", archive())
        portfolios.set_link(session, user, slug, "repo", "https://github.com/ada-lovelace/engine")
        portfolios.set_link(session, user, slug, "demo", demo)
        portfolios.set_statement(session, user, slug, "reflection", "I would measure the engine first.")
        draft_id = portfolios.draft_view(session, user, slug).draft_id
    with session_scope(loaded) as session:
        user = session.get(User, learner.id)
        assert user is not None
        receipt = submissions.submit(
            session, queue, settings, user, SubmissionRequest(assessment=slug, draft_id=draft_id)
        )
    graders = default_graders(settings)  # the worker's own: checks, rubric and renditions in the sandbox
    while queue.sent:
        run_id, _ = queue.sent.pop(0)
        process_run(loaded, run_id, graders, worker="test", lease_seconds=60)
    return receipt.submission_id


def write_portfolio_catalog(root: Path) -> Path:
    return write_catalog(
        root,
        {
            "rubrics/showcase-review.yaml": RUBRIC,
            "assessments/showcase.yaml": portfolio_yaml("showcase", blind=False),
            "assessments/blind-showcase.yaml": portfolio_yaml("blind-showcase", blind=True),
            "programs/showcase-program.yaml": program_yaml("showcase-program", "showcase"),
            "programs/blind-program.yaml": program_yaml("blind-program", "blind-showcase"),
        },
    )


def task_of(loaded: sessionmaker[Session], submission_id: str) -> int:
    with loaded() as session:
        task = session.scalar(select(ReviewTask).where(ReviewTask.submission_id == submission_id))
        assert task is not None
        return task.id
