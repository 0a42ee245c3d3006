"""The review workflow as services: claims that one reviewer wins, drafts, versions, double review with
adjudication, regrade requests that go to another reviewer, and the comment bank."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from grader.interfaces import RecordingQueue
from grader.models import AuditEvent, Result, ReviewSlot, ReviewTask, TaskStatus, User, utcnow
from grader.services import review_queue, reviews
from grader.services.reviews import InlineComment, ReviewInput
from rubrics import Review
from tests.conftest import Account, bearer, make_account
from tests.support.reviewed import REVIEWED_REPO, hand_in, run_queued, write_repository_catalog


def strong(comment: str = "") -> ReviewInput:
    return ReviewInput(
        reviews=(Review("design", level="strong", comment=comment),), comment="Well organised."
    )


def weak() -> ReviewInput:
    return ReviewInput(reviews=(Review("design", level="weak"),))


@pytest.fixture
def policy() -> str:
    return ""


@pytest.fixture
def catalog_dir(settings: Settings, policy: str) -> Path:
    root = write_repository_catalog(settings.catalog_path)
    if policy:
        (root / "assessments/reviewed-repo/assessment.yaml").write_text(REVIEWED_REPO + policy)
    return root


@pytest.fixture
def learner(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada@example.org", programs=("repo-program",))


def reviewer(loaded: sessionmaker[Session], name: str) -> User:
    account = make_account(loaded, f"{name}@example.org", role="reviewer", reviews=("repo-program",))
    with loaded() as session:
        user = session.get(User, account.id)
        assert user is not None
        session.expunge(user)
        return user


def graded(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> str:
    submission_id = hand_in(client, learner)
    run_queued(queue, loaded)
    return submission_id


def tasks(loaded: sessionmaker[Session]) -> list[ReviewTask]:
    with loaded() as session:
        return list(session.scalars(select(ReviewTask).order_by(ReviewTask.id)).all())


def test_a_result_waiting_for_review_is_in_the_queue_with_its_learner(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    graded(client, learner, queue, loaded)
    rui = reviewer(loaded, "rui")
    outsider = make_account(loaded, "out@example.org", role="reviewer")  # reviews no program
    with loaded() as session:
        view = review_queue.queue(session, rui)
        assert [(i.assessment, i.slot, i.learner, i.holder) for i in view.items] == [
            ("reviewed-repo", "first", "ada", None)
        ]
        assert view.counts == (("reviewed-repo", "Reviewed repository", 1),)
        stranger = session.get(User, outsider.id)
        assert stranger is not None and review_queue.queue(session, stranger).items == ()


@pytest.mark.parametrize("policy", ["review: {blind: true}\n"])
def test_blind_review_hides_the_learner(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    graded(client, learner, queue, loaded)
    with loaded() as session:
        (item,) = review_queue.queue(session, reviewer(loaded, "rui")).items
        assert item.learner is None


def test_of_two_reviewers_who_claim_at_once_exactly_one_wins(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    graded(client, learner, queue, loaded)
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    (task,) = tasks(loaded)
    with loaded() as first:
        review_queue.claim(first, rui, task.id)
        first.commit()
    # The conditional UPDATE finds the task taken: the second click loses.
    with loaded() as second, pytest.raises(Conflict, match="rui is reviewing"):
        review_queue.claim(second, sam, task.id)
    with loaded() as session:
        with pytest.raises(Conflict, match="claim this submission"):
            reviews.submit(session, sam, task.id, strong())
        outcome = reviews.submit(session, rui, task.id, strong())
        session.commit()
    assert outcome.settled and outcome.score == 100 and outcome.passed is True


def test_an_expired_claim_can_be_taken_and_the_first_holder_can_no_longer_submit(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    graded(client, learner, queue, loaded)
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    (task,) = tasks(loaded)
    with loaded() as session:
        review_queue.claim(session, rui, task.id)
        reviews.save_draft(session, rui, task.id, ReviewInput(comment="half way"))
        session.commit()
    later = utcnow() + timedelta(minutes=61)  # the default claim lasts an hour
    with loaded() as session:
        review_queue.claim(session, sam, task.id, now=later)
        session.commit()
        with pytest.raises(Conflict):
            reviews.submit(session, rui, task.id, strong(), now=later)


def test_release_next_and_assignment(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    graded(client, learner, queue, loaded)
    graded(client, make_account(loaded, "bob@example.org", programs=("repo-program",)), queue, loaded)
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    staff_account = make_account(loaded, "staff@example.org", role="reviewer", runs=("repo-program",))
    with loaded() as session:
        first = review_queue.claim_next(session, rui)
        second = review_queue.claim_next(session, sam)
        assert first is not None and second is not None and first.id < second.id  # oldest first
        assert review_queue.claim_next(session, sam) is None
        review_queue.release(session, sam, second.id)
        staff = session.get(User, staff_account.id)
        assert staff is not None
        assigned = review_queue.assign(session, staff, second.id, rui, actor="user:staff")
        assert (assigned.reviewer_id, assigned.expires_at) == (rui.id, None)  # assigned: never expires
        mine = review_queue.queue(session, rui, review_queue.QueueFilter(mine=True)).items
        assert {i.task_id for i in mine} == {first.id, second.id}
        with pytest.raises(PermissionDenied):
            review_queue.assign(session, rui, first.id, sam, actor="user:rui")  # a reviewer is not staff


def test_drafts_keep_partial_work_and_submit_needs_every_criterion(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    graded(client, learner, queue, loaded)
    rui = reviewer(loaded, "rui")
    (task,) = tasks(loaded)
    with loaded() as session:
        review_queue.claim(session, rui, task.id)
        inline = (InlineComment("app.py", 1, "A *name* would help."),)
        draft = reviews.save_draft(session, rui, task.id, ReviewInput(comment="so far", inline=inline))
        assert draft.state == "draft" and [c.body for c in draft.comments] == ["A *name* would help."]
        with pytest.raises(InvalidInput, match="design still open"):
            reviews.submit(session, rui, task.id, ReviewInput(comment="so far"))
        with pytest.raises(InvalidInput, match="no level 'great'"):
            reviews.save_draft(session, rui, task.id, ReviewInput(reviews=(Review("design", level="great"),)))
        with pytest.raises(InvalidInput, match="within"):
            reviews.submit(
                session,
                rui,
                task.id,
                ReviewInput(reviews=strong().reviews, adjustment=99, adjustment_reason="x"),
            )
        outcome = reviews.submit(
            session,
            rui,
            task.id,
            ReviewInput(
                reviews=strong().reviews, inline=inline, adjustment=-4, adjustment_reason="late README"
            ),
        )
        session.commit()
    assert outcome.score == 96  # 60 tests + 6 docs + 34 design - 4


def test_an_edit_after_submit_is_a_new_version_and_audited(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    graded(client, learner, queue, loaded)
    rui = reviewer(loaded, "rui")
    (task,) = tasks(loaded)
    with loaded() as session:
        review_queue.claim(session, rui, task.id)
        first = reviews.submit(session, rui, task.id, strong())
        with pytest.raises(InvalidInput, match="say why"):
            reviews.edit(session, rui, first.review_id, weak(), reason="")
        second = reviews.edit(session, rui, first.review_id, weak(), reason="misread the module layout")
        session.commit()
    assert (first.score, second.score) == (100, 70)
    with loaded() as session:
        edited = session.scalars(select(AuditEvent).where(AuditEvent.action == "review.edited")).one()
        assert edited.before["version"] == 1 and edited.after["version"] == 2  # type: ignore[index]
        assert edited.reason == "misread the module layout"


DOUBLE = "review: {double: true, disagreement: 0.2}\n"


@pytest.mark.parametrize("policy", [DOUBLE])
def test_double_review_that_agrees_is_averaged(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    graded(client, learner, queue, loaded)
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    first, second = tasks(loaded)
    assert (first.slot, second.slot) == (ReviewSlot.FIRST, ReviewSlot.SECOND)
    with loaded() as session:
        review_queue.claim(session, rui, first.id)
        with pytest.raises(PermissionDenied, match="two other people"):
            review_queue.claim(session, rui, second.id)
        pending = reviews.submit(session, rui, first.id, strong())
        assert not pending.settled
        review_queue.claim(session, sam, second.id)
        nearly = ReviewInput(reviews=strong().reviews, adjustment=-6, adjustment_reason="one weak module")
        settled = reviews.submit(session, sam, second.id, nearly)
        session.commit()
    assert settled.settled and settled.score == 97  # 66 automatic + (34 + 28) / 2


@pytest.mark.parametrize("policy", [DOUBLE])
def test_double_review_that_disagrees_goes_to_an_adjudicator_who_decides(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    graded(client, learner, queue, loaded)
    rui, sam, ada_judge = reviewer(loaded, "rui"), reviewer(loaded, "sam"), reviewer(loaded, "judge")
    first, second = tasks(loaded)
    with loaded() as session:
        review_queue.claim(session, rui, first.id)
        reviews.submit(session, rui, first.id, strong())
        review_queue.claim(session, sam, second.id)
        apart = reviews.submit(session, sam, second.id, weak())  # 34 against 4 of 34: beyond 20%
        session.commit()
    assert not apart.settled
    adjudication = next(t for t in tasks(loaded) if t.slot == ReviewSlot.ADJUDICATION)
    with loaded() as session:
        assert (session.get(Result, adjudication.result_id) or Result()).needs_review is True
        with pytest.raises(PermissionDenied, match="neither of the two"):
            review_queue.claim(session, sam, adjudication.id)
        review_queue.claim(session, ada_judge, adjudication.id)
        decided = reviews.submit(session, ada_judge, adjudication.id, weak())
        session.commit()
    assert decided.settled and decided.score == 70 and decided.passed is True


def test_a_regrade_request_goes_to_another_reviewer_and_its_answer_is_audited(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    submission_id = graded(client, learner, queue, loaded)
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    (task,) = tasks(loaded)
    with loaded() as session:
        review_queue.claim(session, rui, task.id)
        reviews.submit(session, rui, task.id, weak())
        session.commit()
    with loaded() as session:
        ada = session.get(User, learner.id)
        assert ada is not None
        with pytest.raises(InvalidInput, match="criteria a reviewer scored"):
            reviews.request_regrade(session, ada, submission_id, "tests", "the tests are wrong here")
        with pytest.raises(InvalidInput, match="at least 10"):
            reviews.request_regrade(session, ada, submission_id, "design", "why?")
        request = reviews.request_regrade(
            session, ada, submission_id, "design", "The modules are split by concern."
        )
        with pytest.raises(Conflict, match="already waiting"):
            reviews.request_regrade(
                session, ada, submission_id, "design", "The modules are split by concern."
            )
        session.commit()
    regrade = next(t for t in tasks(loaded) if t.slot == ReviewSlot.REGRADE)
    with loaded() as session:
        with pytest.raises(PermissionDenied, match="other than the one"):
            review_queue.claim(session, rui, regrade.id)
        review_queue.claim(session, sam, regrade.id)
        answered = reviews.answer_regrade(session, sam, regrade.id, "Agreed: the split is clear.", strong())
        session.commit()
        assert answered.changed and answered.status == "answered"
    view = client.get(f"/api/v1/submissions/{submission_id}", headers=bearer(learner)).get_json()["result"]
    assert view["score"] == 100 and view["passed"] is True
    with loaded() as session:
        actions = [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert "regrade.asked" in actions and "regrade.answered" in actions
        assert request.id


def test_the_regrade_window_closes(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    submission_id = graded(client, learner, queue, loaded)
    rui = reviewer(loaded, "rui")
    (task,) = tasks(loaded)
    with loaded() as session:
        review_queue.claim(session, rui, task.id)
        reviews.submit(session, rui, task.id, weak())
        ada = session.get(User, learner.id)
        assert ada is not None
        with pytest.raises(Conflict, match="regrade requests closed"):
            reviews.request_regrade(
                session,
                ada,
                submission_id,
                "design",
                "The modules are split.",
                now=utcnow() + timedelta(days=15),
            )


def test_the_comment_bank_is_searchable_editable_and_counts_uses(loaded: sessionmaker[Session]) -> None:
    rui = reviewer(loaded, "rui")
    with loaded() as session:
        kept = reviews.add_to_bank(session, rui, "reviewed", "Name the constants once.", "design")
        reviews.add_to_bank(session, rui, "reviewed", "Good tests.")
        assert reviews.use_bank_entry(session, kept.id) == "Name the constants once."
        reviews.edit_bank_entry(session, rui, kept.id, "Name each constant once, at the top.")
        found = reviews.comment_bank(session, "reviewed", search="constant")
        assert [(e.text, e.uses) for e in found] == [("Name each constant once, at the top.", 1)]
        assert len(reviews.comment_bank(session, "reviewed", criterion_id="design")) == 2
        assert [t.status for t in session.scalars(select(ReviewTask))] == []  # nothing else touched
        assert TaskStatus.OPEN == "open"


@pytest.mark.parametrize("policy", ["review: {blind: true}\n"])
def test_the_evidence_bundle_shows_the_graded_files_and_hides_a_blind_learner(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    from grader.services import viewer
    from grader.storage import file_store

    files = {"ada/app.py": "# written by ada@example.org\nx = 1\n", "logo.png": "\x89PNG\x00binary"}
    first = hand_in(client, learner, files)
    run_queued(queue, loaded, settings)
    second = hand_in(client, learner, {**files, "ada/app.py": "x = 2\n", "README.md": "# App\n"})
    run_queued(queue, loaded, settings)
    store = file_store(settings)
    rui = reviewer(loaded, "rui")
    staff = make_account(loaded, "staff@example.org", role="reviewer", runs=("repo-program",))
    with loaded() as session:
        seen = viewer.bundle(session, rui, second)
        assert seen.learner is None and seen.blind
        assert {f.shown_path for f in seen.files} == {"[learner]/app.py", "logo.png", "README.md"}
        assert not next(f for f in seen.files if f.path == "logo.png").renderable  # binary: size only
        content = viewer.read_file(session, store, rui, first, "[learner]/app.py").content
        assert content == "# written by [learner]\nx = 1\n"
        previous, diffs = viewer.diff_to_previous(session, store, rui, second)
        assert previous == first
        assert {(d.path, d.status) for d in diffs} == {
            ("[learner]/app.py", "changed"),
            ("README.md", "added"),
        }
        assert "-x = 1" in next(d for d in diffs if d.status == "changed").lines
        boss = session.get(User, staff.id)
        assert boss is not None and viewer.bundle(session, boss, second).learner == "ada"  # staff see who
        outsider = session.get(User, make_account(loaded, "out@example.org", role="reviewer").id)
        assert outsider is not None
        with pytest.raises(NotFound):
            viewer.bundle(session, outsider, second)


def test_only_the_holder_opens_a_task_and_the_others_learn_who_holds_it(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    graded(client, learner, queue, loaded)
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    outsider_account = make_account(loaded, "out@example.org", role="reviewer")
    (task,) = tasks(loaded)
    with loaded() as session:
        with pytest.raises(Conflict) as free:
            review_queue.require_holder(session, sam, task.id)
        assert free.value.details["claimable"] is True
        review_queue.claim(session, rui, task.id)
        assert review_queue.require_holder(session, rui, task.id).id == task.id
        with pytest.raises(Conflict, match="rui is reviewing this submission until") as taken:
            review_queue.require_holder(session, sam, task.id)
        assert (taken.value.details["holder"], taken.value.details["claimable"]) == ("rui", False)
        outsider = session.get(User, outsider_account.id)
        assert outsider is not None
        with pytest.raises(PermissionDenied):
            review_queue.require_holder(session, outsider, task.id)
        reviews.submit(session, rui, task.id, strong())
        with pytest.raises(Conflict, match="you already submitted"):
            review_queue.require_holder(session, rui, task.id)


def test_a_draft_keeps_a_comment_on_a_criterion_not_scored_yet_and_previews_the_score(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    graded(client, learner, queue, loaded)
    rui = reviewer(loaded, "rui")
    (task,) = tasks(loaded)
    with loaded() as session:
        review_queue.claim(session, rui, task.id)
        noted = ReviewInput(reviews=(Review("design", comment="Look at the modules again."),))
        draft = reviews.save_draft(session, rui, task.id, noted)
        assert (
            draft.criteria[0]["comment"] == "Look at the modules again."
            and draft.criteria[0]["level"] is None
        )
        held = review_queue.get_task(session, task.id)
        context = reviews.task_context(session, rui, held)
        assert context.prefill.reviews[0].comment == "Look at the modules again." and context.shown == ()
        preview = reviews.preview(session, held.result, noted)
        assert (preview.total, preview.pending, preview.passes) == (66, ("design",), None)
        done = reviews.preview(session, held.result, strong())
        assert (done.total, done.manual, done.passes) == (100, 34, True)
        with pytest.raises(InvalidInput, match="needs a level"):
            reviews.submit(session, rui, task.id, noted)


@pytest.mark.parametrize("policy", [DOUBLE])
def test_what_each_slot_of_a_double_review_shows(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    graded(client, learner, queue, loaded)
    rui, sam, judge = reviewer(loaded, "rui"), reviewer(loaded, "sam"), reviewer(loaded, "judge")
    first, second = tasks(loaded)
    with loaded() as session:
        review_queue.claim(session, rui, first.id)
        reviews.submit(session, rui, first.id, strong("by rui"))
        review_queue.claim(session, sam, second.id)
        # The second reviewer sees no other review while scoring.
        assert reviews.task_context(session, sam, review_queue.get_task(session, second.id)).shown == ()
        reviews.submit(session, sam, second.id, weak())
        session.commit()
    adjudication = next(t for t in tasks(loaded) if t.slot == ReviewSlot.ADJUDICATION)
    with loaded() as session:
        review_queue.claim(session, judge, adjudication.id)
        shown = reviews.task_context(session, judge, review_queue.get_task(session, adjudication.id)).shown
        assert [(s.slot, s.reviewer, s.manual_points) for s in shown] == [
            ("first", "rui", 34),
            ("second", "sam", 4),
        ]
        assert shown[0].input.reviews[0].comment == "by rui"
