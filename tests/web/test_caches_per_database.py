"""The hot path's per-process caches (an assessment's id by slug, a version's parts by id) hold for one
database only: a process that opens two, where the same slug has other ids, grades each hand-in
against its own database's assessment."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from grader.catalog.loader import read_catalog
from grader.config import Settings
from grader.db import make_engine, make_session_factory, session_scope
from grader.interfaces import RecordingQueue
from grader.kinds import default_graders
from grader.migrate import upgrade
from grader.models import Assessment, Result, Submission
from grader.services.catalog import load_catalog
from grader.services.grading import process_run
from tests.conftest import make_account
from tests.support.catalogs import (
    BASICS_ANSWERS,
    BASICS_QUIZ,
    OTHER_PROGRAM,
    PROGRAM,
    TIMED_QUIZ,
    write_catalog,
)


def test_the_same_slug_with_other_ids_in_a_second_database_is_graded_against_its_own(tmp_path: Path) -> None:
    from grader.web import create_app

    orders = {
        "first": {"assessments/basics.yaml": BASICS_QUIZ, "assessments/timed.yaml": TIMED_QUIZ},
        # The other way round, so "basics" has the id "timed" has in the first database.
        "second": {"assessments/timed.yaml": TIMED_QUIZ, "assessments/basics.yaml": BASICS_QUIZ},
    }
    graded: dict[str, tuple[str, float]] = {}
    basics_ids: dict[str, int] = {}
    stacks = {}
    # Both databases loaded before either is used: a catalog load clears the cache of this process.
    for name, assessments in orders.items():
        settings = Settings(
            data_dir=tmp_path / name / "var",
            secret_key="test-secret-key",
            catalog_path=tmp_path / name / "catalog",
            submissions_per_hour=100,
        )
        engine = make_engine(settings)
        upgrade(engine)
        sessions = make_session_factory(engine)
        files = {
            **assessments,
            "programs/test-program.yaml": PROGRAM,
            "programs/other-program.yaml": OTHER_PROGRAM,
        }
        with session_scope(sessions) as session:
            if name == "second":
                # "timed" alone first: it takes the lower id here.
                timed_only = write_catalog(
                    tmp_path / name / "timed-only", {"assessments/timed.yaml": TIMED_QUIZ}
                )
                load_catalog(session, read_catalog(timed_only))
            load_catalog(session, read_catalog(write_catalog(settings.catalog_path, files)))
        with sessions() as session:
            basics_ids[name] = session.scalars(select(Assessment.id).where(Assessment.slug == "basics")).one()
        learner = make_account(sessions, f"{name}@example.org", programs=("test-program",))
        queue = RecordingQueue()
        stacks[name] = (
            settings,
            engine,
            sessions,
            learner,
            queue,
            create_app(settings, queue=queue).test_client(),
        )
    for name, (settings, engine, sessions, learner, queue, client) in stacks.items():
        response = client.post(
            "/api/v1/submissions",
            json={"assessment": "basics", "answers": BASICS_ANSWERS},
            headers={"Authorization": f"Bearer {learner.token}"},
        )
        assert response.status_code == 202, response.get_json()
        ((run_id, _),) = queue.sent
        process_run(sessions, run_id, default_graders(settings), worker="test", lease_seconds=60)
        with sessions() as session:
            submission = session.scalars(select(Submission)).one()
            result = session.scalars(select(Result)).one()
            graded[name] = (submission.assessment.slug, result.score)
        engine.dispose()
    assert basics_ids["first"] != basics_ids["second"], basics_ids  # the case this test is about
    # Both hand-ins are of the basics quiz and scored by its questions, in either database.
    assert graded["first"] == graded["second"]
    assert graded["first"][0] == "basics" and graded["first"][1] > 0
