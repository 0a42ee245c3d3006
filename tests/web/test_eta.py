"""The ETA of a queued submission: its place in the queue times the queue's recent pace, in words."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.models import GradingRun, utcnow
from tests.conftest import Account, bearer, make_account
from tests.support.catalogs import BASICS_ANSWERS
from tests.web.test_pages import log_in


def hand_in(client: FlaskClient, account: Account) -> str:
    body = {"assessment": "basics", "answers": BASICS_ANSWERS}
    response = client.post("/api/v1/submissions", json=body, headers=bearer(account))
    assert response.status_code == 202
    return str(response.get_json()["id"])


def test_a_queue_with_no_history_gives_no_eta_and_one_with_history_a_pace_times_the_place(
    client: FlaskClient, loaded: sessionmaker[Session]
) -> None:
    learners = [make_account(loaded, f"l{n}@example.org", programs=("test-program",)) for n in range(6)]
    first = hand_in(client, learners[0])
    assert (
        client.get(f"/api/v1/submissions/{first}", headers=bearer(learners[0])).get_json()["eta_seconds"]
        is None
    )
    # History: three runs of the quiz queue that finished 4 s apart and each took 2 s.
    done = [hand_in(client, learner) for learner in learners[1:4]]
    finished = utcnow() - timedelta(minutes=1)
    with loaded() as session:
        for n, submission_id in enumerate(done):
            run = session.scalars(select(GradingRun).where(GradingRun.submission_id == submission_id)).one()
            run.status = "done"
            run.finished_at = finished + timedelta(seconds=4 * n)
            run.started_at = run.finished_at - timedelta(seconds=2)
        session.commit()
    waiting = [hand_in(client, learner) for learner in learners[4:]]
    views = [
        client.get(f"/api/v1/submissions/{s}", headers=bearer(a)).get_json()
        for s, a in [(first, learners[0]), (waiting[-1], learners[5])]
    ]
    assert [v["queue_position"] for v in views] == [1, 3]
    assert [v["eta_seconds"] for v in views] == [2.0, 10.0]  # its own 2 s; 2 ahead at 4 s each, then 2 s
    log_in(client, learners[5])
    page = client.get(f"/submissions/{waiting[-1]}").get_data(as_text=True)
    assert "number 3 in the queue, done in about 10 seconds" in " ".join(page.split())


def test_with_runs_running_the_eta_waits_for_the_first_slot_to_free_then_takes_turns(
    client: FlaskClient, loaded: sessionmaker[Session]
) -> None:
    learners = [make_account(loaded, f"s{n}@example.org", programs=("test-program",)) for n in range(8)]
    history = [hand_in(client, learner) for learner in learners[:2]]
    running = [hand_in(client, learner) for learner in learners[2:4]]
    now = utcnow()
    with loaded() as session:
        # Two finished runs of 10 s each; two slots busy, one run 4 s in, the other 9 s in.
        for n, submission_id in enumerate(history):
            run = session.scalars(select(GradingRun).where(GradingRun.submission_id == submission_id)).one()
            run.status, run.finished_at = "done", now - timedelta(minutes=5, seconds=20 * n)
            run.started_at = run.finished_at - timedelta(seconds=10)
        for elapsed, submission_id in zip((4, 9), running, strict=True):
            run = session.scalars(select(GradingRun).where(GradingRun.submission_id == submission_id)).one()
            run.status, run.started_at, run.worker = "running", now - timedelta(seconds=elapsed), "w"
        session.commit()
    waiting = [hand_in(client, learner) for learner in learners[4:]]
    etas = [
        client.get(f"/api/v1/submissions/{s}", headers=bearer(a)).get_json()["eta_seconds"]
        for s, a in zip(waiting, learners[4:], strict=True)
    ]
    # Slots free in about 1 s and 6 s; then each takes a 10 s turn. Each ETA adds the run's own 10 s.
    # (The clock moves on while the requests run: a tolerance of a few tenths.)
    assert all(abs(eta - expected) <= 0.3 for eta, expected in zip(etas, [11, 16, 21, 26], strict=True)), etas


def test_a_few_slow_first_runs_in_the_history_do_not_lengthen_the_eta(
    client: FlaskClient, loaded: sessionmaker[Session]
) -> None:
    """A worker's first runs (cold boxes) take far longer: the ETA reads the typical run, not the mean."""
    learners = [make_account(loaded, f"c{n}@example.org", programs=("test-program",)) for n in range(7)]
    history = [hand_in(client, learner) for learner in learners[:5]]
    running = hand_in(client, learners[5])
    now = utcnow()
    with loaded() as session:
        # Four runs of 2 s, and one cold run of 10 s; one slot busy, its run 1 s in.
        for n, (submission_id, seconds) in enumerate(zip(history, (10, 2, 2, 2, 2), strict=True)):
            run = session.scalars(select(GradingRun).where(GradingRun.submission_id == submission_id)).one()
            run.status, run.finished_at = "done", now - timedelta(minutes=5, seconds=-20 * n)
            run.started_at = run.finished_at - timedelta(seconds=seconds)
        run = session.scalars(select(GradingRun).where(GradingRun.submission_id == running)).one()
        run.status, run.started_at, run.worker = "running", now - timedelta(seconds=1), "w"
        session.commit()
    waiting = hand_in(client, learners[6])
    eta = client.get(f"/api/v1/submissions/{waiting}", headers=bearer(learners[6])).get_json()["eta_seconds"]
    # The slot frees in about 1 s, then its own 2 s (the mean, 3.6 s, would say 6.2 s).
    assert abs(eta - 3.0) <= 0.3, eta
