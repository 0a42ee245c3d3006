"""Portfolios from draft to graded result: files checked by content and kept in the store, links never
fetched, statements counted, the draft frozen by the hand-in (twice is once), the automatic checks run
by the worker's grader and fed to the rubric, the manual criteria left to a reviewer."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog.loader import read_catalog
from grader.config import Settings
from grader.db import session_scope
from grader.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, ServiceUnavailable
from grader.interfaces import RecordingQueue
from grader.kinds import default_graders
from grader.kinds.base import SubmissionRequest
from grader.models import DraftItem, Result, Submission, User
from grader.services import portfolios, submissions
from grader.services.catalog import load_catalog
from grader.services.grading import process_run
from grader.storage import FileStore, file_store
from tests.conftest import make_account
from tests.support.catalogs import write_catalog

RUBRIC = """\
id: showcase-review
title: Showcase review
pass_mark: 0.5
criteria:
  - id: complete
    title: Complete and well formed
    auto: {kind: tests_passed, tests: ["checks/*"]}
    max_points: 2
  - id: evidence
    title: Evidence
    manual: true
    levels:
      - {label: missing, points: 0}
      - {label: shown, points: 4}
"""

PORTFOLIO = """\
slug: showcase
kind: portfolio
title: Showcase
description: Show your work.
rubric: showcase-review
artifacts:
  - id: screenshot
    title: Screenshot
    types: [png, jpeg]
    max_mb: 1
    max_files: 2
  - id: notes
    title: Notes
    types: [markdown]
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
    min_words: 3
    max_words: 40
"""

PROGRAM = """\
slug: portfolio-program
title: Portfolio program
description: One portfolio.
credential:
  name: Portfolio credential
  description: Shows a portfolio.
  criteria: Hand in a portfolio.
requirements:
  - assessment: showcase
"""


def png(width: int = 8, height: int = 6) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def world(settings: Settings, sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    catalog = write_catalog(
        settings.catalog_path,
        {
            "rubrics/showcase-review.yaml": RUBRIC,
            "assessments/showcase.yaml": PORTFOLIO,
            "programs/portfolio-program.yaml": PROGRAM,
        },
    )
    with session_scope(sessions) as session:
        load_catalog(session, read_catalog(catalog))
    return sessions


@pytest.fixture
def learner_id(world: sessionmaker[Session]) -> int:
    return make_account(world, "ada@example.org", programs=("portfolio-program",)).id


def fill(session: Session, store: FileStore, user: User) -> None:
    portfolios.add_file(session, store, user, "showcase", "screenshot", "shot.png", png())
    portfolios.set_link(session, user, "showcase", "repo", "https://github.com/ada/service")
    portfolios.set_statement(session, user, "showcase", "reflection", "I would test the errors first.")


def test_a_filled_draft_is_handed_in_once_and_graded_by_its_checks(
    settings: Settings, world: sessionmaker[Session], learner_id: int
) -> None:
    store, queue = file_store(settings), RecordingQueue()
    with session_scope(world) as session:
        user = session.get(User, learner_id)
        assert user is not None
        fill(session, store, user)
        draft = portfolios.draft_view(session, user, "showcase")
        assert draft.missing == [] and draft.draft_id is not None
        shot = draft.slots[0].items[0]
        assert (shot.media_type, shot.details) == ("png", {"width": 8, "height": 6})
        draft_id = draft.draft_id
    with session_scope(world) as session:
        user = session.get(User, learner_id)
        assert user is not None
        request = SubmissionRequest(assessment="showcase", draft_id=draft_id)
        first = submissions.submit(session, queue, settings, user, request)
        again = submissions.submit(session, queue, settings, user, request)
    assert first.created and not again.created and again.submission_id == first.submission_id
    assert len(queue.sent) == 1 and queue.sent[0][1] == "checks"

    with session_scope(world) as session:
        submission = session.get(Submission, first.submission_id)
        assert submission is not None
        files = submission.payload["files"]
        assert [(f["slot"], f["name"], f["type"], f["size"]) for f in files] == [
            ("screenshot", "shot.png", "png", len(png()))
        ]
        assert submission.payload["links"][0]["host"] == "github.com"
        # The receipt covers every artifact by its hash: the stored bytes are the ones handed in.
        assert store.get(files[0]["sha256"]) == png()
        user = session.get(User, learner_id)
        assert user is not None
        # The hand-in froze the draft: the next change starts a new, empty draft.
        assert portfolios.draft_view(session, user, "showcase").draft_id is None

    run_id, _ = queue.sent[0]
    process_run(world, run_id, default_graders(settings), worker="test", lease_seconds=30)
    with session_scope(world) as session:
        result = session.scalar(select(Result).where(Result.submission_id == first.submission_id))
        assert result is not None
        assert result.needs_review and result.passed is None  # the manual criterion waits for a reviewer
        checks = {c["id"]: c for c in result.feedback["checks"]}
        assert checks["checks/screenshot/type"]["passed"]
        assert "8 \u00d7 6 pixels" in checks["checks/screenshot/type"]["explanation"]
        assert checks["checks/notes/present"]["passed"]  # optional and empty
        assert (
            checks["checks/reflection/words"]["passed"]
            and "6 words" in checks["checks/reflection/words"]["explanation"]
        )
        complete = next(c for c in result.feedback["rubric"]["criteria"] if c["id"] == "complete")
        assert complete["points"] == complete["max_points"] == 2


def test_bad_files_are_refused_before_anything_is_stored(
    settings: Settings, world: sessionmaker[Session], learner_id: int
) -> None:
    store = file_store(settings)
    with session_scope(world) as session:
        user = session.get(User, learner_id)
        assert user is not None
        with pytest.raises(InvalidInput, match="HTML"):
            portfolios.add_file(
                session, store, user, "showcase", "screenshot", "shot.png", b"<html><script>x</script>"
            )
        with pytest.raises(InvalidInput, match="slash"):
            portfolios.add_file(session, store, user, "showcase", "screenshot", "../shot.png", png())
        with pytest.raises(PayloadTooLarge, match=r"is 2(\.0)? MB; the most is 1 MB"):
            portfolios.add_file(
                session, store, user, "showcase", "screenshot", "big.png", png() + b"\0" * 2 * 2**20
            )
        with pytest.raises(InvalidInput, match="does not take files"):
            portfolios.add_file(session, store, user, "showcase", "repo", "shot.png", png())
        with pytest.raises(NotFound, match="no part called"):
            portfolios.add_file(session, store, user, "showcase", "nope", "shot.png", png())
        portfolios.add_file(session, store, user, "showcase", "screenshot", "a.png", png())
        with pytest.raises(Conflict, match="already holds a file"):
            portfolios.add_file(session, store, user, "showcase", "screenshot", "a.png", png(9, 9))
        portfolios.add_file(session, store, user, "showcase", "screenshot", "b.png", png(9, 9))
        with pytest.raises(Conflict, match="at most 2 files"):
            portfolios.add_file(session, store, user, "showcase", "screenshot", "c.png", png(7, 7))
        assert session.scalar(select(func.count(DraftItem.id))) == 2
    blobs = [p for p in (settings.files_dir / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 2  # only the two accepted files reached the store


class DownStore:
    def put(self, data: bytes) -> str:
        raise ServiceUnavailable("the file store is not answering")

    def get(self, key: str) -> bytes:
        raise ServiceUnavailable("the file store is not answering")


def test_a_store_that_is_down_records_nothing(
    settings: Settings, world: sessionmaker[Session], learner_id: int
) -> None:
    with session_scope(world) as session:
        user = session.get(User, learner_id)
        assert user is not None
        with pytest.raises(ServiceUnavailable):
            portfolios.add_file(session, DownStore(), user, "showcase", "screenshot", "shot.png", png())
        assert session.scalar(select(func.count(DraftItem.id))) == 0


def test_links_and_statements_are_judged_as_written(
    settings: Settings, world: sessionmaker[Session], learner_id: int, tmp_path: Path
) -> None:
    with session_scope(world) as session:
        user = session.get(User, learner_id)
        assert user is not None
        with pytest.raises(InvalidInput, match=r"github\.com"):
            portfolios.set_link(session, user, "showcase", "repo", "https://github.com.evil.example/x")
        private = portfolios.set_link(session, user, "showcase", "demo", "https://127.0.0.1:8080/admin")
        assert private is not None and private.details == {"host": "127.0.0.1", "private": True}
        assert private.text == "https://127.0.0.1:8080/admin"  # kept as text, flagged, never fetched
        with pytest.raises(InvalidInput, match="needs at least 3"):
            portfolios.set_statement(session, user, "showcase", "reflection", "Too short")
        with pytest.raises(InvalidInput, match="the most is 40"):
            portfolios.set_statement(session, user, "showcase", "reflection", "word " * 41)
        assert portfolios.set_statement(session, user, "showcase", "reflection", "   ") is None


def test_a_required_slot_left_empty_stops_the_hand_in_by_name(
    settings: Settings, world: sessionmaker[Session], learner_id: int
) -> None:
    store, queue = file_store(settings), RecordingQueue()
    with session_scope(world) as session:
        user = session.get(User, learner_id)
        assert user is not None
        portfolios.add_file(session, store, user, "showcase", "screenshot", "shot.png", png())
        draft_id = portfolios.draft_view(session, user, "showcase").draft_id
    with session_scope(world) as session:
        user = session.get(User, learner_id)
        assert user is not None
        with pytest.raises(InvalidInput, match="Repository is required and still empty"):
            submissions.submit(
                session, queue, settings, user, SubmissionRequest(assessment="showcase", draft_id=draft_id)
            )
        with pytest.raises(NotFound, match="no such portfolio draft"):
            submissions.submit(
                session, queue, settings, user, SubmissionRequest(assessment="showcase", draft_id="x" * 32)
            )
    assert queue.sent == []
