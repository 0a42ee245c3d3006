"""Regrading keeps every earlier result, grades against the current version, and progress follows."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog.loader import read_catalog
from grader.interfaces import RecordingQueue
from grader.models import AssessmentVersion, GradingRun, Result
from grader.services.catalog import load_catalog
from grader.services.regrade import regrade
from tests.conftest import Account, bearer
from tests.support.catalogs import BASICS_QUIZ
from tests.support.grading import drain


def test_regrade_after_a_fix_keeps_history_and_moves_progress(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    catalog_dir: Path,
) -> None:
    # 4 of 5 right = 0.8: passes the 0.75 pass mark.
    answers = {"status-created": "b", "safe-methods": ["get", "head"], "idempotent-put": True, "port": 443}
    submission = client.post(
        "/api/v1/submissions", json={"assessment": "basics", "answers": answers}, headers=bearer(learner)
    ).get_json()
    drain(queue, loaded)

    def status() -> str:
        progress = client.get("/api/v1/programs/test-program/progress", headers=bearer(learner)).get_json()
        return {r["assessment"]: r["status"] for r in progress["requirements"]}["basics"]

    assert status() == "passed"
    (catalog_dir / "assessments/basics.yaml").write_text(
        BASICS_QUIZ.replace("pass_mark: 0.75", "pass_mark: 0.9")
    )
    with loaded() as session:
        load_catalog(session, read_catalog(catalog_dir))
        session.commit()
        report = regrade(session, queue, "basics", actor="cli:test", only_latest=True)
    assert len(report.queued) == 1
    assert status() == "passed"  # the standing result counts until the regrade has one
    drain(queue, loaded)
    assert status() == "failed"
    with loaded() as session:
        results = session.scalars(select(Result).order_by(Result.id)).all()
        assert [r.passed for r in results] == [True, False]
        versions = [session.get(AssessmentVersion, r.assessment_version_id).version for r in results]  # type: ignore[union-attr]
        assert versions == [1, 2]
        assert [
            run.reason for run in session.scalars(select(GradingRun).order_by(GradingRun.requested_at))
        ] == [
            "submitted",
            "regrade",
        ]
    view = client.get(submission["status_url"], headers=bearer(learner)).get_json()
    assert view["result"]["passed"] is False
