"""`?wait=S` on a submission's status: held until graded or until S seconds, and bad values refused."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from grader.errors import InvalidInput
from grader.interfaces import RecordingQueue
from grader.models import User
from grader.services import queries
from tests.conftest import Account, bearer
from tests.support.catalogs import BASICS_ANSWERS


def submit(client: FlaskClient, account: Account) -> str:
    response = client.post(
        "/api/v1/submissions",
        json={"assessment": "basics", "answers": BASICS_ANSWERS},
        headers=bearer(account),
    )
    assert response.status_code == 202
    return str(response.get_json()["id"])


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def test_a_queued_submission_is_held_for_the_whole_wait_then_answered_as_queued(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    submission_id = submit(client, learner)
    clock = FakeClock()
    with loaded() as session:
        user = session.get(User, learner.id)
        assert user is not None
        queries.await_result(session, user, submission_id, 5, sleep=clock.sleep, clock=clock)
        assert queries.status_view(session, user, submission_id)["status"] == "queued"
    assert 5 <= clock.now < 5.3 and max(clock.slept) <= 0.2  # looked again every fifth of a second


@pytest.mark.parametrize("raw", ["-1", "31", "soon", "nan", "inf"])
def test_a_wait_outside_0_to_30_seconds_is_refused_naming_the_field(
    client: FlaskClient, learner: Account, raw: str
) -> None:
    submission_id = submit(client, learner)
    response = client.get(f"/api/v1/submissions/{submission_id}?wait={raw}", headers=bearer(learner))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["details"]["field"] == "wait" and "0 to 30" in error["message"]
    with pytest.raises(InvalidInput):
        queries.parse_wait(raw)


def test_another_learners_submission_is_not_waited_on(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    from tests.conftest import make_account

    submission_id = submit(client, learner)
    stranger = make_account(loaded, "stranger@example.org", programs=("test-program",))
    response = client.get(f"/api/v1/submissions/{submission_id}?wait=30", headers=bearer(stranger))
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("prefer", "seconds"),
    [
        ("wait=10", 10.0),
        ("respond-async, wait=2.5", 2.5),
        ('WAIT="4"', 4.0),
        ("wait=600", 30.0),  # capped at the status URL's longest wait
        ("wait=soon", None),  # RFC 7240: a preference that cannot be honoured is ignored
        ("wait=-1", None),
        ("wait=nan", None),
        ("return=minimal", None),
        (None, None),
    ],
)
def test_the_prefer_header_s_wait_is_read_as_rfc_7240_has_it(
    prefer: str | None, seconds: float | None
) -> None:
    from grader.web.api import preferred_wait

    assert preferred_wait(prefer) == seconds


def test_a_hand_in_without_a_wait_preference_is_answered_at_once(
    client: FlaskClient, learner: Account
) -> None:
    response = client.post(
        "/api/v1/submissions",
        json={"assessment": "basics", "answers": BASICS_ANSWERS},
        headers={**bearer(learner), "Prefer": "wait=soon"},
    )
    assert response.status_code == 202 and "Preference-Applied" not in response.headers
