"""Agreement statistics over double reviews, checked against figures computed by hand.

Three results are reviewed twice, rui first and sam second, on a rubric with a levels criterion
(poor 0, fair 5, good 10) and a free-points criterion (0 to 10):

    result   design (rui / sam)   style (rui / sam)   sam's adjustment
    1        good / good          10 / 8              -3
    2        fair / good           5 / 5
    3        poor / poor           0 / 2              (rui first said fair, then edited to poor)

Exact agreement: design 2 of 3, style 1 of 3.

Krippendorff's alpha, design, ordinal over the ranks 0 1 2: values n0 = 2, n1 = 1, n2 = 3, n = 6.
Only result 2 disagrees (ranks 1 and 2): the ordinal distance is (n1 + n2) - (n1 + n2) / 2 = 2,
squared 4, so the observed disagreement is 2 * 4 / 6 = 4/3. Expected: over the ordered pairs of
distinct values, 2 * (n0 n1 1.5^2 + n0 n2 3.5^2 + n1 n2 2^2) / (n (n - 1)) = 2 * (4.5 + 73.5 + 12) / 30
= 6. Alpha = 1 - (4/3) / 6 = 7/9 = 0.7778.

Style, interval: observed (2^2 + 2^2 + 0 + 0 + 2^2 + 2^2) / 6 = 16/6; expected: the values 10 8 5 5 0 2
have n Σv² - (Σv)² = 6 * 218 - 900 = 408 over unordered pairs, 816 ordered, / 30 = 27.2.
Alpha = 1 - (16/6) / 27.2 = 92/102 = 0.9020.

Leniency of rui (sam's is its negative): design ((10-10) + (5-10) + (0-0)) / 3 = -5/3; style
((10-8) + 0 + (0-2)) / 3 = 0; overall, in the manual points each review gave (sam's adjustment
counts): rui 20, 10, 0 against sam 15, 15, 2: (5 - 5 - 2) / 3 = -2/3.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.models import Review as ReviewRow
from grader.models import ReviewSlot, ReviewTask, User
from grader.services import agreement, review_queue, reviews
from grader.services.reviews import ReviewInput
from rubrics import Review
from tests.conftest import Account, bearer, make_account
from tests.support.catalogs import write_catalog
from tests.support.reviewed import REVIEWED_REPO, hand_in, run_queued, write_repository_catalog
from tests.web.test_pages import log_in
from tests.web.test_staff_pages import page, text_of

PAIRED_RUBRIC = """\
id: reviewed
title: Paired review
pass_mark: 0.5
criteria:
  - {id: tests, title: Tests, auto: {kind: test_points}, max_points: 10}
  - id: design
    title: Design
    manual: true
    levels: [{label: poor, points: 0}, {label: fair, points: 5}, {label: good, points: 10}]
  - {id: style, title: Style, manual: true, max_points: 10}
"""
# (rui's review, sam's review) per result: design level, style points, adjustment.
PAIRS = [
    (("good", 10, 0), ("good", 8, -3)),
    (("fair", 5, 0), ("good", 5, 0)),
    (("fair", 0, 0), ("poor", 2, 0)),  # rui's design is edited to "poor" afterwards
]


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    root = write_catalog(settings.catalog_path)
    write_repository_catalog(root, rubric=PAIRED_RUBRIC)
    (root / "assessments/reviewed-repo/assessment.yaml").write_text(
        REVIEWED_REPO + "review: {double: true, disagreement: 1}\n"
    )
    return root


def given(design: str, style: float, adjustment: float) -> ReviewInput:
    return ReviewInput(
        reviews=(Review("design", level=design), Review("style", points=style)),
        adjustment=adjustment,
        adjustment_reason="one module is untested" if adjustment else "",
    )


def person(loaded: sessionmaker[Session], account: Account) -> User:
    with loaded() as session:
        user = session.get(User, account.id)
        assert user is not None
        session.expunge(user)
        return user


def review_pairs(
    client: FlaskClient,
    loaded: sessionmaker[Session],
    queue: RecordingQueue,
    pairs: list[tuple[tuple, tuple]],
) -> tuple[User, User]:
    rui = person(loaded, make_account(loaded, "rui@example.org", role="reviewer", reviews=("repo-program",)))
    sam = person(loaded, make_account(loaded, "sam@example.org", role="reviewer", reviews=("repo-program",)))
    for index, (first, second) in enumerate(pairs):
        learner = make_account(loaded, f"learner{index}@example.org", programs=("repo-program",))
        submission_id = hand_in(client, learner)
        run_queued(queue, loaded)
        with loaded() as session:
            tasks = {
                t.slot: t
                for t in session.scalars(select(ReviewTask).where(ReviewTask.submission_id == submission_id))
            }
            for reviewer, slot, scores in ((rui, ReviewSlot.FIRST, first), (sam, ReviewSlot.SECOND, second)):
                review_queue.claim(session, reviewer, tasks[slot].id)
                outcome = reviews.submit(session, reviewer, tasks[slot].id, given(*scores))
            session.commit()
        assert outcome.settled
    return rui, sam


def test_the_figures_match_those_computed_by_hand(
    client: FlaskClient, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    rui, sam = review_pairs(client, loaded, queue, PAIRS)
    with loaded() as session:
        # rui edits the third review: only the newest version counts.
        third = session.scalars(
            select(ReviewRow).where(ReviewRow.reviewer_id == rui.id).order_by(ReviewRow.id.desc())
        ).first()
        assert third is not None
        reviews.edit(session, rui, third.id, given("poor", 0, 0), reason="misread the module layout")
        session.commit()
    # A result reviewed only once has no pair and counts for nothing.
    lone = make_account(loaded, "lone@example.org", programs=("repo-program",))
    hand_in(client, lone)
    run_queued(queue, loaded)
    with loaded() as session:
        task = session.scalars(
            select(ReviewTask).where(ReviewTask.slot == ReviewSlot.FIRST).order_by(ReviewTask.id.desc())
        ).first()
        assert task is not None
        review_queue.claim(session, rui, task.id)
        reviews.submit(session, rui, task.id, given("good", 10, 0))
        session.commit()

    staff = person(loaded, make_account(loaded, "boss@example.org", role="reviewer", runs=("repo-program",)))
    with loaded() as session:
        stats = agreement.report(session, staff, program="repo-program")
    assert stats.results == 3
    design, style = stats.criteria
    assert (design.criterion, design.measure, design.pairs, design.exact) == ("design", "ordinal", 3, 2)
    assert design.alpha == round(7 / 9, 4) == 0.7778
    assert (style.criterion, style.measure, style.pairs, style.exact) == ("style", "interval", 3, 1)
    assert style.alpha == round(92 / 102, 4) == 0.902
    by_name = {r.email: r for r in stats.reviewers}
    assert by_name["rui@example.org"].reviews == 3 and by_name["sam@example.org"].reviews == 3
    assert by_name["rui@example.org"].leniency == round(-2 / 3, 4)
    assert by_name["sam@example.org"].leniency == round(2 / 3, 4)
    assert {c.criterion: c.leniency for c in by_name["rui@example.org"].criteria} == {
        "design": round(-5 / 3, 4),
        "style": 0.0,
    }
    assert {c.criterion: c.leniency for c in by_name["sam@example.org"].criteria} == {
        "design": round(5 / 3, 4),
        "style": 0.0,
    }
    assert sam.id


def test_the_staff_page_and_the_api_show_them(
    client: FlaskClient, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    review_pairs(client, loaded, queue, PAIRS[:2])
    boss = make_account(loaded, "boss@example.org", role="reviewer", runs=("repo-program",))
    log_in(client, boss)
    words = text_of(page(client, "/staff/agreement?program=repo-program"))
    assert "2 results reviewed twice" in words
    # Two pairs: design ranks (2, 2), (1, 2); style (10, 8), (5, 5).
    assert "Reviewed repository Design (levels) 2 1 of 2 (50%)" in words
    assert "Reviewed repository Style (points) 2 1 of 2 (50%)" in words
    api = client.get("/api/v1/staff/agreement?program=repo-program", headers=bearer(boss))
    assert api.status_code == 200
    body = api.get_json()
    (design, style) = body["criteria"]
    # Design: ranks (2, 2), (1, 2); n1 = 1, n2 = 3, n = 4. Observed 2 * 2^2 / 4 = 2, expected
    # 2 * (1 * 3 * 2^2) / 12 = 2: alpha 0, no better than chance. Style: (10, 8), (5, 5): observed
    # (4 + 4) / 4 = 2, expected (4 * 214 - 28^2) * 2 / 12 = 12: alpha 1 - 2/12 = 0.8333.
    assert design["alpha"] == 0.0 and style["alpha"] == 0.8333
    assert "0.00 (ordinal)" in words and "0.83 (interval)" in words
    rui = next(r for r in body["reviewers"] if r["reviewer"]["email"] == "rui@example.org")
    # rui - sam: overall (20 - 15) and (10 - 15): 0; design (0 and -5): -2.5; style (2 and 0): +1.
    assert rui["reviews_compared"] == 2 and rui["leniency"] == 0.0
    assert {c["criterion"]: c["leniency"] for c in rui["criteria"]} == {"design": -2.5, "style": 1.0}
    assert "Design: -2.5 over 2" in words and "Style: +1 over 2" in words
    # Narrowed to the staff member's programs, with errors that say which field.
    assert client.get("/api/v1/staff/agreement?program=test-program", headers=bearer(boss)).status_code == 403
    missing = client.get("/api/v1/staff/agreement?assessment=nope", headers=bearer(boss))
    assert missing.status_code == 404 and missing.get_json()["error"]["details"]["field"] == "assessment"
    assert client.get("/api/v1/staff/agreement?assessment=basics", headers=bearer(boss)).status_code == 403
    assert client.get("/api/v1/staff/agreement?since=1", headers=bearer(boss)).status_code == 400
    reviewer = make_account(loaded, "plain@example.org", role="reviewer", reviews=("repo-program",))
    assert client.get("/api/v1/staff/agreement", headers=bearer(reviewer)).status_code == 403


def test_too_few_pairs_or_no_variation_give_no_alpha(
    client: FlaskClient, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    review_pairs(client, loaded, queue, PAIRS[:1])
    boss = person(loaded, make_account(loaded, "boss@example.org", role="admin"))
    with loaded() as session:
        stats = agreement.report(session, boss, assessment="reviewed-repo")
    assert [(c.pairs, c.alpha, c.note) for c in stats.criteria] == [
        (1, None, agreement.NOT_ENOUGH_PAIRS),
        (1, None, agreement.NOT_ENOUGH_PAIRS),
    ]
    # Everyone agrees on everything: alpha is 0 / 0, and said to be undefined.
    assert agreement.alpha([2, 2, 2], [2, 2, 2], measure="ordinal", domain=3) is None
    assert agreement.alpha([1], [0], measure="interval") is None
    # Perfect agreement with variation is 1; systematic disagreement is below 0.
    assert agreement.alpha([0, 1, 2], [0, 1, 2], measure="ordinal", domain=3) == 1.0
    assert agreement.alpha([0, 10], [10, 0], measure="interval") == -0.5
