"""The web app's /metrics, as a Prometheus scrape reads it: what intake, grading, the reconciler and the
credentials count, the queues as the database has them, and the sandbox's outcomes on a real backend.

The counters live in this test process for all its tests, so each test reads them before and after.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader import metrics
from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.metrics import MeteredRunner
from grader.models import GradingRun, utcnow
from grader.services import credentials
from grader.services.grading import claim_run
from grader.services.reconciler import reconcile
from grader.web import create_app
from sandbox.contract import JobSpec, Limits
from tests.conftest import Account, bearer, make_account
from tests.support.catalogs import BASICS_ANSWERS
from tests.support.grading import drain
from tests.support.issued_credentials import issued_credential
from tests.support.metrics import count, value
from tests.support.sandboxes import make_runner


def scrape(client: FlaskClient) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def submit(client: FlaskClient, account: Account, assessment: str = "basics") -> str:
    response = client.post(
        "/api/v1/submissions",
        json={"assessment": assessment, "answers": BASICS_ANSWERS},
        headers=bearer(account),
    )
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])


def test_a_graded_quiz_is_counted_from_intake_to_result(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    before = scrape(client)
    submit(client, learner)
    queued = scrape(client)
    assert count(queued, "grader_submissions_received_total", kind="quiz") == (
        count(before, "grader_submissions_received_total", kind="quiz") + 1
    )
    assert value(queued, "grader_queue_depth", queue="quiz") == 1
    oldest = value(queued, "grader_queue_oldest_age_seconds", queue="quiz")
    assert oldest is not None and 0 <= oldest < 60
    assert value(queued, "grader_database_up") == 1

    drain(queue, loaded)
    graded = scrape(client)
    passed = {"kind": "quiz", "outcome": "passed"}
    assert count(graded, "grader_submissions_graded_total", **passed) == (
        count(before, "grader_submissions_graded_total", **passed) + 1
    )
    for histogram in ("grader_run_wait_seconds_count", "grader_run_duration_seconds_count"):
        assert count(graded, histogram, queue="quiz") == count(before, histogram, queue="quiz") + 1
    assert value(graded, "grader_queue_depth", queue="quiz") == 0
    assert value(graded, "grader_queue_oldest_age_seconds", queue="quiz") == 0
    # Every kind's queue is there from the first scrape, busy or not.
    assert {"quiz", "sandbox", "checks"} <= {
        line.split('"')[1] for line in graded.splitlines() if line.startswith("grader_queue_depth{")
    }


def test_refusals_are_counted_by_the_code_the_learner_was_answered_with(
    client: FlaskClient, learner: Account
) -> None:
    before = scrape(client)
    missing = client.post(
        "/api/v1/submissions", json={"assessment": "no-such-quiz", "answers": {}}, headers=bearer(learner)
    )
    assert missing.status_code == 404
    after = scrape(client)
    code = missing.get_json()["error"]["code"]
    assert count(after, "grader_submissions_refused_total", reason=code) == (
        count(before, "grader_submissions_refused_total", reason=code) + 1
    )
    assert count(after, "grader_submissions_received_total", kind="quiz") == count(
        before, "grader_submissions_received_total", kind="quiz"
    )


def test_the_reconciler_counts_what_it_resent_and_what_it_gave_up_and_the_failed_run_shows(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    lost = submit(client, learner)
    stuck = submit(client, learner)
    with loaded() as session:
        run_of = {
            run.submission_id: run.id
            for run in session.scalars(select(GradingRun).where(GradingRun.submission_id.in_([lost, stuck])))
        }
        # The broker lost the first message; the second run's worker died on its last try.
        session.get(GradingRun, run_of[lost]).enqueued_at = None  # type: ignore[union-attr]
        session.commit()
        claim = claim_run(session, run_of[stuck], worker="dead", lease_seconds=1)
        assert claim is not None
        session.get(GradingRun, run_of[stuck]).tries = 3  # type: ignore[union-attr]
        session.commit()
    before = scrape(client)
    with loaded() as session:
        report = reconcile(
            session, RecordingQueue(), lease_seconds=1, max_tries=3, now=utcnow() + timedelta(seconds=5)
        )
    assert run_of[lost] in report.requeued and report.failed == (run_of[stuck],)
    after = scrape(client)
    for action in ("resent", "gave_up"):
        assert count(after, "grader_reconciler_actions_total", action=action) >= (
            count(before, "grader_reconciler_actions_total", action=action) + 1
        )
    assert value(after, "grader_runs_in_error", queue="quiz") == 1
    assert value(after, "grader_runs_running", queue="quiz") == 0


def test_credentials_issued_and_revoked_are_counted(
    client: FlaskClient, loaded: sessionmaker[Session], settings: Settings
) -> None:
    before = scrape(client)
    credential_id = issued_credential(loaded, settings)
    signed = scrape(client)
    assert count(signed, "grader_credentials_total", action="issued") == (
        count(before, "grader_credentials_total", action="issued") + 1
    )
    with loaded() as session:
        credentials.revoke(session, credential_id, "Copied work.", actor="test")
        session.commit()
    revoked = scrape(client)
    assert count(revoked, "grader_credentials_total", action="revoked") == (
        count(before, "grader_credentials_total", action="revoked") + 1
    )


def test_with_a_metrics_token_a_scrape_must_send_it(
    settings: Settings, loaded: sessionmaker[Session]
) -> None:
    app = create_app(replace(settings, metrics_token="scrape-me-0123"), queue=RecordingQueue())
    client = app.test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert "GRADER_METRICS_TOKEN" in refused.get_data(as_text=True)
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-me-0123"})
    assert allowed.status_code == 200 and "grader_queue_depth" in allowed.get_data(as_text=True)
    # The health checks stay open: an orchestrator has no token.
    assert client.get("/healthz").status_code == 200


def test_a_scrape_says_when_the_database_cannot_be_read_instead_of_failing(settings: Settings) -> None:
    broken = replace(settings, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = create_app(broken, queue=RecordingQueue()).test_client().get("/metrics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert value(text, "grader_database_up") == 0
    assert "grader_submissions_received" in text  # the process's own counters are still there


@pytest.mark.bwrap
def test_sandbox_jobs_are_counted_by_backend_and_outcome(sandbox_ready: None) -> None:
    runner = MeteredRunner(make_runner("bwrap"))

    def scraped() -> str:
        return metrics.exposition()[0].decode()

    before = scraped()
    done = runner.run(JobSpec(command=("python3", "-c", "print('hi')")))
    slow = runner.run(JobSpec(command=("sleep", "30"), limits=Limits(wall_seconds=0.5)))
    assert (done.outcome.value, slow.outcome.value) == ("completed", "timeout")
    after = scraped()
    for outcome in ("completed", "timeout"):
        labels = {"backend": "bwrap", "outcome": outcome}
        assert count(after, "grader_sandbox_runs_total", **labels) == (
            count(before, "grader_sandbox_runs_total", **labels) + 1
        )
    seconds = "grader_sandbox_run_seconds_sum"
    assert count(after, seconds, backend="bwrap") >= count(before, seconds, backend="bwrap") + 0.5
    assert runner.name == "bwrap"


def test_two_learners_queued_show_as_the_queues_depth(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    other = make_account(loaded, "bob@example.org", programs=("test-program",))
    submit(client, learner)
    submit(client, other)
    assert value(scrape(client), "grader_queue_depth", queue="quiz") == 2
