"""Issuing credentials from awards, on SQLite and PostgreSQL: exactly once, suspended, reinstated, revoked.

A learner passes `other-program` (its only requirement is the basics quiz); the award opens a pending
credential, the signing step (what the worker task runs) makes the signed document, and the status lists
follow every change in the next request. Each credential is checked by this project's verifier; the
independent verifier's own tests (tests/credentials_interop) check the same documents' kind.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.credentials import StatusPurpose, verify
from grader.errors import Conflict, InvalidInput
from grader.interfaces import RecordingQueue
from grader.kinds import default_graders
from grader.kinds.base import SubmissionRequest
from grader.models import AuditEvent, CredentialAward, GradingRun, IssuedCredential, Result, User, utcnow
from grader.services import credentials, submissions
from grader.services.grading import RunOutcome, process_run
from grader.services.progress import update_awards
from grader.services.reconciler import reconcile
from tests.conftest import Account, make_account
from tests.support.catalogs import BASICS_ANSWERS
from tests.support.databases import sqlite_and_postgres  # noqa: F401 - runs each test on both
from tests.support.independent_verifier import verify_independently


@pytest.fixture
def holder(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "holder@example.org", programs=("other-program",))


def pass_the_program(sessions: sessionmaker[Session], settings: Settings, account: Account) -> str:
    """Hand in and grade the basics quiz; the id of the credential the award opened."""
    with sessions() as session:
        user = session.get(User, account.id)
        assert user is not None
        accepted = submissions.submit(
            session,
            RecordingQueue(),
            settings,
            user,
            SubmissionRequest(assessment="basics", answers=BASICS_ANSWERS),
        )
    with sessions() as session:
        run_id = session.scalars(
            select(GradingRun.id).where(GradingRun.submission_id == accepted.submission_id)
        ).one()
    assert process_run(sessions, run_id, default_graders(), worker="w", lease_seconds=60) == RunOutcome.GRADED
    with sessions() as session:
        award = session.scalars(select(CredentialAward).where(CredentialAward.user_id == account.id)).one()
        live = credentials.live_credential(award)
        assert live is not None
        return live.id


def sign(sessions: sessionmaker[Session], settings: Settings, credential_id: str) -> bool:
    with sessions() as session:
        return credentials.issue(session, credential_id, credentials.issuer_identity(settings))


def the_credential(sessions: sessionmaker[Session], credential_id: str) -> IssuedCredential:
    with sessions() as session:
        credential = session.get(IssuedCredential, credential_id)
        assert credential is not None
        session.expunge(credential)
        return credential


def status_lists(sessions: sessionmaker[Session], settings: Settings) -> list[dict[str, Any]]:
    identity = credentials.issuer_identity(settings)
    with sessions() as session:
        return [credentials.status_list_credential(session, identity, purpose) for purpose in StatusPurpose]


def check(sessions: sessionmaker[Session], settings: Settings, document: Any) -> Any:
    identity = credentials.issuer_identity(settings)
    return verify(document, identity.did_document(), status_lists(sessions, settings))


def set_basics_passed(sessions: sessionmaker[Session], account: Account, passed: bool) -> None:
    """What a regrade that fails (or passes) the one submission does to its final result."""
    with sessions() as session:
        result = session.scalars(select(Result)).one()
        result.passed = passed
        result.score = result.max_score if passed else 0.0
        assessment_id = result.run.submission.assessment_id
        update_awards(session, account.id, assessment_id, actor="test")
        session.commit()


def test_an_award_is_signed_once_however_often_the_task_runs(
    loaded: sessionmaker[Session], settings: Settings, holder: Account
) -> None:
    sent = RecordingQueue()
    credentials.dispatch_on_commit(loaded, sent)
    credential_id = pass_the_program(loaded, settings, holder)
    assert sent.issued == [credential_id]  # handed to the workers once the award had committed
    assert the_credential(loaded, credential_id).status == "pending"

    assert sign(loaded, settings, credential_id) is True
    assert sign(loaded, settings, credential_id) is False  # the message delivered a second time
    issued = the_credential(loaded, credential_id)
    assert issued.status == "active" and issued.document is not None and issued.jwt is not None
    with loaded() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "credential.issued")).all()
        assert len(events) == 1

    document = issued.document
    assert document["id"] == f"urn:uuid:{credential_id}"
    assert document["proof"]["cryptosuite"] == "eddsa-rdfc-2022"
    subject = document["credentialSubject"]
    assert subject["identifier"][0]["salt"] == issued.recipient_salt
    assert subject["achievement"]["name"] == "Other"
    assert subject["result"][0]["value"] == "5"  # five of five questions
    narrative = document["evidence"][0]["narrative"]
    assert "receipt SHA-256" in narrative and "assessment version" in narrative
    for proof_form in (document, issued.jwt):
        report = check(loaded, settings, proof_form)
        assert report.verified, report.lines()


def test_two_workers_signing_at_once_write_one_document(
    loaded: sessionmaker[Session], settings: Settings, holder: Account
) -> None:
    credential_id = pass_the_program(loaded, settings, holder)
    identity = credentials.issuer_identity(settings)
    with loaded() as late:
        late.get(IssuedCredential, credential_id)  # read while still pending, as a racing worker would
        assert sign(loaded, settings, credential_id) is True
        first = the_credential(loaded, credential_id).document
        assert credentials.issue(late, credential_id, identity) is False
    assert the_credential(loaded, credential_id).document == first


def test_a_worker_dying_mid_issue_leaves_it_pending_and_the_reconciler_sends_it_again(
    loaded: sessionmaker[Session], settings: Settings, holder: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    credential_id = pass_the_program(loaded, settings, holder)

    def dies(*args: object, **kwargs: object) -> None:
        raise SystemExit("the worker was killed while signing")

    with monkeypatch.context() as patched:
        patched.setattr(credentials, "sign_both", dies)
        with pytest.raises(SystemExit):
            sign(loaded, settings, credential_id)
    assert the_credential(loaded, credential_id).status == "pending"

    queue = RecordingQueue()
    with loaded() as session:
        soon = reconcile(session, queue, lease_seconds=60, max_tries=3)
        later = reconcile(session, queue, lease_seconds=60, max_tries=3, now=utcnow() + timedelta(minutes=2))
    assert soon.credentials_resent == ()  # a minute's grace: its first message may still be on its way
    assert later.credentials_resent == (credential_id,) and queue.issued == [credential_id]
    assert sign(loaded, settings, credential_id) is True
    assert the_credential(loaded, credential_id).status == "active"


def test_a_withdrawn_pass_suspends_the_credential_and_passing_again_lifts_it(
    loaded: sessionmaker[Session], settings: Settings, holder: Account
) -> None:
    credential_id = pass_the_program(loaded, settings, holder)
    sign(loaded, settings, credential_id)
    document = the_credential(loaded, credential_id).document

    set_basics_passed(loaded, holder, False)
    assert the_credential(loaded, credential_id).status == "suspended"
    report = check(loaded, settings, document)
    assert not report.verified and "suspension" in report.check("status").detail

    set_basics_passed(loaded, holder, True)
    assert the_credential(loaded, credential_id).status == "active"
    assert check(loaded, settings, document).verified
    with loaded() as session:
        actions = [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert "award.suspended" in actions and "award.reinstated" in actions


def test_a_credential_suspended_before_it_was_signed_is_signed_suspended(
    loaded: sessionmaker[Session], settings: Settings, holder: Account
) -> None:
    credential_id = pass_the_program(loaded, settings, holder)
    set_basics_passed(loaded, holder, False)
    sign(loaded, settings, credential_id)
    assert the_credential(loaded, credential_id).status == "suspended"


def test_staff_revoke_with_a_reason_and_only_new_work_earns_it_again(
    loaded: sessionmaker[Session], settings: Settings, holder: Account
) -> None:
    credential_id = pass_the_program(loaded, settings, holder)
    sign(loaded, settings, credential_id)
    document = the_credential(loaded, credential_id).document

    with loaded() as session:
        with pytest.raises(InvalidInput, match="reason"):
            credentials.revoke(session, credential_id, "   ", actor="test")
        credentials.revoke(session, credential_id, "plagiarised the write-up", actor="cli:test")
        session.commit()
        with pytest.raises(Conflict):
            credentials.revoke(session, credential_id, "again", actor="cli:test")
    revoked = the_credential(loaded, credential_id)
    assert revoked.status == "revoked" and revoked.revocation_reason == "plagiarised the write-up"
    report = check(loaded, settings, document)
    assert not report.verified and "revocation" in report.check("status").detail

    # A regrade of the old work does not undo a revocation...
    set_basics_passed(loaded, holder, True)
    with loaded() as session:
        assert len(session.scalars(select(IssuedCredential)).all()) == 1
    # ...new work does, as a new credential; the revoked one stays revoked.
    again = pass_the_program(loaded, settings, holder)
    assert again != credential_id
    sign(loaded, settings, again)
    assert the_credential(loaded, credential_id).status == "revoked"
    assert the_credential(loaded, again).status == "active"
    with loaded() as session:
        first, second = (c.status_index for c in session.scalars(select(IssuedCredential)))
    assert first != second


@pytest.mark.node
def test_an_independent_verifier_accepts_what_the_service_issues_and_reads_its_status_lists(
    loaded: sessionmaker[Session], settings: Settings, holder: Account
) -> None:
    credential_id = pass_the_program(loaded, settings, holder)
    sign(loaded, settings, credential_id)
    issued = the_credential(loaded, credential_id)
    did_document = credentials.issuer_identity(settings).did_document()

    for proof_form in (issued.document, issued.jwt):
        verdict = verify_independently(proof_form, did_document, status_lists(loaded, settings))
        assert verdict.verified, verdict.errors
        assert (verdict.revoked, verdict.suspended) == (False, False)

    tampered = copy.deepcopy(issued.document)
    tampered["credentialSubject"]["result"][0]["value"] = "50"
    assert not verify_independently(tampered, did_document).verified

    set_basics_passed(loaded, holder, False)
    suspended = verify_independently(issued.document, did_document, status_lists(loaded, settings))
    assert not suspended.verified and suspended.suspended is True and suspended.revoked is False

    with loaded() as session:
        credentials.revoke(session, credential_id, "the quiz answers were shared", actor="cli:test")
        session.commit()
    revoked = verify_independently(issued.jwt, did_document, status_lists(loaded, settings))
    assert not revoked.verified and revoked.revoked is True


def test_the_issuer_profile_comes_from_the_settings(
    loaded: sessionmaker[Session], settings: Settings, holder: Account
) -> None:
    branded = settings.with_overrides(
        issuer_name="Example University",
        issuer_email="credentials@example.edu",
        issuer_image_url="https://example.edu/logo.png",
        public_url="https://credentials.example.edu",
        issuer_did="web",
    )
    credential_id = pass_the_program(loaded, branded, holder)
    sign(loaded, branded, credential_id)
    document = the_credential(loaded, credential_id).document
    assert document is not None
    issuer = document["issuer"]
    assert issuer["id"] == "did:web:credentials.example.edu"
    assert (issuer["name"], issuer["email"], issuer["image"]["id"]) == (
        "Example University",
        "credentials@example.edu",
        "https://example.edu/logo.png",
    )
    assert document["credentialStatus"][0]["statusListCredential"].startswith(
        "https://credentials.example.edu/credentials/status/"
    )
    report = verify(document, credentials.issuer_identity(branded).did_document())
    assert report.check("proof").outcome == "passed"
