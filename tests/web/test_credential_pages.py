"""The credential pages as their people use them: the learner's own page (status, date, downloads, the
share and LinkedIn links, which results the public page shows), the public page, and staff revocation.

The learner earns `test-program` for real (both quizzes through the API, graded by the quiz grader) and
the pending credential is signed in-process, as the worker task signs it. What a person would check is
checked: the words on the page, the downloaded files against the signed document, the status list bit
in the next request after a revocation, and that nobody else reaches any of it.
"""

from __future__ import annotations

import html
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from grader.config import Settings
from grader.credentials import StatusList, verify
from grader.interfaces import RecordingQueue
from grader.models import AuditEvent, CredentialAward, CredentialStatus, IssuedCredential
from grader.services import credentials
from tests.conftest import Account, bearer, make_account
from tests.support.catalogs import BASICS_ANSWERS
from tests.support.reviewed import run_queued
from tests.web.test_pages import csrf_token, log_in

TIMED_ANSWERS = {"t1": False, "t2": True, "t3": True}
PROGRAM = "test-program"


def take_quiz(client: FlaskClient, account: Account, slug: str, answers: dict[str, object]) -> None:
    started = client.post(f"/api/v1/assessments/{slug}/attempts", json={}, headers=bearer(account))
    assert started.status_code == 201, started.get_json()
    attempt = started.get_json()
    drawn = {q["id"]: answers[q["id"]] for q in attempt["questions"]}
    sent = client.post(
        "/api/v1/submissions",
        json={"assessment": slug, "attempt": attempt["id"], "answers": drawn},
        headers=bearer(account),
    )
    assert sent.status_code == 202, sent.get_json()


def earn(
    client: FlaskClient,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
    account: Account,
) -> str:
    """The learner passes both quizzes of test-program; its credential, signed. Its id."""
    take_quiz(client, account, "basics", BASICS_ANSWERS)
    take_quiz(client, account, "timed", TIMED_ANSWERS)
    run_queued(queue, loaded, settings)
    with loaded() as session:
        award = session.scalars(select(CredentialAward).where(CredentialAward.user_id == account.id)).one()
        live = credentials.live_credential(award)
        assert live is not None
        credential_id = live.id
    with loaded() as session:
        assert credentials.issue(session, credential_id, credentials.issuer_identity(settings))
    return credential_id


@pytest.fixture
def ada(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada@example.org", programs=(PROGRAM,))


@pytest.fixture
def credential_id(
    client: FlaskClient,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
    ada: Account,
) -> str:
    return earn(client, queue, loaded, settings, ada)


@pytest.fixture
def stella(loaded: sessionmaker[Session]) -> Account:
    """Staff of test-program."""
    return make_account(loaded, "stella@example.org", "reviewer", runs=(PROGRAM,))


def row(loaded: sessionmaker[Session], credential_id: str) -> IssuedCredential:
    with loaded() as session:
        found = session.get(IssuedCredential, credential_id)
        assert found is not None
        session.expunge(found)
        return found


def text_of(response: TestResponse) -> str:
    """The page as a person reads it: tags gone, entities decoded, white space collapsed."""
    body = response.get_data(as_text=True)
    body = re.sub(r"</?(strong|em|code|time|a)\b[^>]*>", "", body)  # inline: no word break
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def section(response: TestResponse, credential_id: str) -> str:
    body = response.get_data(as_text=True)
    match = re.search(rf'<section[^>]*id="credential-{credential_id}".*?</section>', body, flags=re.S)
    assert match, f"no section for credential {credential_id}"
    return match.group(0)


def public_page(client: FlaskClient, credential_id: str) -> TestResponse:
    response = client.get(f"/credentials/{credential_id}")
    assert response.status_code == 200
    return response


def status_bit(client: FlaskClient, purpose: str, index: int) -> bool:
    listed = client.get(f"/credentials/status/{purpose}").get_json()
    return StatusList.decode(listed["credentialSubject"]["encodedList"]).get(index)


# ---------------------------------------------------------------- the learner's own page


def test_the_learner_sees_their_credential_its_status_its_date_and_every_way_to_use_it(
    client: FlaskClient, ada: Account, credential_id: str, loaded: sessionmaker[Session], settings: Settings
) -> None:
    log_in(client, ada)
    home = client.get("/")
    assert home.get_data(as_text=True).count('href="/me/credentials"') == 2  # the menu, the earned program
    program = client.get(f"/programs/{PROGRAM}").get_data(as_text=True)
    assert "your credential was awarded" in program and 'href="/me/credentials"' in program

    page = client.get("/me/credentials")
    assert page.status_code == 200
    issued = row(loaded, credential_id)
    assert issued.issued_at is not None
    words = text_of(page)
    assert "Test credential" in words and "Test program" in words
    assert "valid Valid" in words
    assert f"Issued {issued.issued_at:%Y-%m-%d}" in words

    card = section(page, credential_id)
    links = set(re.findall(r'href="([^"]+)"', card))
    assert {
        f"/credentials/{credential_id}",
        f"/me/credentials/{credential_id}/credential.json",
        f"/me/credentials/{credential_id}/credential.jwt",
        f"/credentials/{credential_id}/certificate.pdf",
        f"/credentials/{credential_id}/badge.png",
    } <= links
    public_url = f"{settings.public_url}/credentials/{credential_id}"
    share = re.search(r'<input[^>]*id="share-[^"]+"[^>]*>', card)
    assert share and f'value="{public_url}"' in share.group(0) and "readonly" in share.group(0)

    (linkedin,) = [html.unescape(link) for link in links if "linkedin.com" in link]
    parts = urlsplit(linkedin)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "www.linkedin.com", "/profile/add")
    assert parse_qs(parts.query) == {
        "startTask": ["CERTIFICATION_NAME"],
        "name": ["Test credential"],
        "organizationName": [settings.issuer_name],
        "issueYear": [str(issued.issued_at.year)],
        "issueMonth": [str(issued.issued_at.month)],
        "certUrl": [public_url],
        "certId": [credential_id],
    }
    # Both results are shown to start with; the boxes say so.
    assert len(re.findall(r'<input type="checkbox" name="shown" value="(basics|timed)" checked>', card)) == 2


def test_the_downloads_are_the_signed_credential_as_attachments_that_verify(
    client: FlaskClient, ada: Account, credential_id: str, loaded: sessionmaker[Session], settings: Settings
) -> None:
    log_in(client, ada)
    issued = row(loaded, credential_id)
    as_json = client.get(f"/me/credentials/{credential_id}/credential.json")
    assert as_json.status_code == 200 and as_json.mimetype == "application/ld+json"
    assert as_json.headers["Content-Disposition"] == 'attachment; filename="test-program-credential.json"'
    assert json.loads(as_json.get_data()) == issued.document
    as_jwt = client.get(f"/me/credentials/{credential_id}/credential.jwt")
    assert as_jwt.status_code == 200 and as_jwt.mimetype == "application/vc+jwt"
    assert as_jwt.headers["Content-Disposition"] == 'attachment; filename="test-program-credential.jwt"'
    assert as_jwt.get_data(as_text=True) == issued.jwt
    issuer = credentials.issuer_identity(settings).did_document()
    lists = [client.get(f"/credentials/status/{p}").get_json() for p in ("revocation", "suspension")]
    for downloaded in (as_json.get_data(), as_jwt.get_data()):
        report = verify(downloaded, issuer, lists)
        assert report.verified, report.lines()


def test_another_learner_finds_none_of_it_and_nobody_logged_out_either(
    client: FlaskClient,
    loaded: sessionmaker[Session],
    credential_id: str,
) -> None:
    bob = make_account(loaded, "bob@example.org", programs=(PROGRAM,))
    log_in(client, bob)
    mine = client.get("/me/credentials")
    assert mine.status_code == 200 and credential_id not in mine.get_data(as_text=True)
    assert "You have no credential yet" in text_of(mine)
    for suffix in ("credential.json", "credential.jwt"):
        assert client.get(f"/me/credentials/{credential_id}/{suffix}").status_code == 404
    token = csrf_token(mine.get_data(as_text=True))
    refused = client.post(f"/me/credentials/{credential_id}/shown", data={"csrf_token": token})
    assert refused.status_code == 404
    assert row(loaded, credential_id).hidden_results == []
    client.post("/logout", data={"csrf_token": token})
    gone = client.get(f"/me/credentials/{credential_id}/credential.json")
    assert gone.status_code == 302 and urlsplit(gone.headers["Location"]).path == "/login"


def test_a_hidden_result_leaves_the_public_page_but_stays_in_the_signed_credential(
    client: FlaskClient, ada: Account, credential_id: str, loaded: sessionmaker[Session], settings: Settings
) -> None:
    log_in(client, ada)
    before = text_of(public_page(client, credential_id))
    assert "HTTP basics" in before and "Timed pool quiz" in before
    token = csrf_token(client.get("/me/credentials").get_data(as_text=True))
    saved = client.post(
        f"/me/credentials/{credential_id}/shown", data={"csrf_token": token, "shown": ["timed"]}
    )
    assert saved.status_code == 303
    assert saved.headers["Location"].endswith(f"/me/credentials#credential-{credential_id}")
    assert row(loaded, credential_id).hidden_results == ["basics"]
    mine = client.get("/me/credentials")
    assert "shows 1 of 2 results" in text_of(mine)
    assert '<input type="checkbox" name="shown" value="basics" >' in section(mine, credential_id)

    client.post("/logout", data={"csrf_token": token})  # what a visitor sees
    shown = public_page(client, credential_id)
    words = text_of(shown)
    assert "HTTP basics" not in words
    assert "1 more result not shown here by the holder's choice" in words
    # The signed document keeps the hidden result and its evidence, and still verifies.
    document = client.get(
        f"/credentials/{credential_id}", headers={"Accept": "application/ld+json"}
    ).get_json()
    described = {d["name"] for d in document["credentialSubject"]["achievement"]["resultDescription"]}
    assert "HTTP basics" in described
    assert any(e["name"] == "HTTP basics" for e in document["evidence"])
    assert document == row(loaded, credential_id).document
    assert verify(document, credentials.issuer_identity(settings).did_document()).verified

    log_in(client, ada)  # and shown again
    token = csrf_token(client.get("/me/credentials").get_data(as_text=True))
    client.post(
        f"/me/credentials/{credential_id}/shown", data={"csrf_token": token, "shown": ["basics", "timed"]}
    )
    assert "HTTP basics" in text_of(public_page(client, credential_id))


def test_a_result_of_no_requirement_is_refused_naming_the_field(
    client: FlaskClient, ada: Account, credential_id: str, loaded: sessionmaker[Session]
) -> None:
    log_in(client, ada)
    token = csrf_token(client.get("/me/credentials").get_data(as_text=True))
    refused = client.post(
        f"/me/credentials/{credential_id}/shown", data={"csrf_token": token, "shown": ["basics", "essay"]}
    )
    assert refused.status_code == 400
    card = section(refused, credential_id)
    assert "The results to show: no requirement 'essay' in this program" in html.unescape(card)
    assert 'class="invalid"' in card
    assert row(loaded, credential_id).hidden_results == []
    without_token = client.post(f"/me/credentials/{credential_id}/shown", data={"shown": ["basics"]})
    assert without_token.status_code == 400 and row(loaded, credential_id).hidden_results == []


# ---------------------------------------------------------------- the public page


def test_the_public_page_shows_the_achievement_the_evidence_and_how_to_verify_it(
    client: FlaskClient, credential_id: str, loaded: sessionmaker[Session], settings: Settings
) -> None:
    page = public_page(client, credential_id)
    words = text_of(page)
    issued = row(loaded, credential_id)
    assert issued.document is not None
    assert "Test credential" in words and settings.issuer_name in words
    assert "Valid: not revoked and not suspended" in words
    assert "Shows the learner passed both quizzes." in words and "Pass both quizzes." in words
    assert f"Valid from {issued.document['validFrom'][:10]}" in words
    # Each result with its score, how it was graded (roles only) and its evidence hashes in full.
    assert "5 of 5 points" in words and "Graded by automatic tests." in words
    for evidence in issued.document["evidence"]:
        receipt = re.search(r"receipt SHA-256: `([0-9a-f]{64})`", evidence["narrative"])
        assert receipt and f'<code class="hash">{receipt.group(1)}</code>' in page.get_data(as_text=True)
    # The holder is a salted hash in the document, and nameless here (a word: the page's hex hashes may
    # hold the letters).
    assert re.search(r"\bada\b", words.lower()) is None
    body = page.get_data(as_text=True)
    assert f'href="/credentials/{credential_id}?format=json"' in body
    assert 'href="/verify"' in body and "grader credential verify credential.json" in words
    downloaded = client.get(f"/credentials/{credential_id}?format=json")
    assert downloaded.mimetype == "application/ld+json" and downloaded.get_json() == issued.document


def test_a_suspended_credential_says_so_on_both_pages(
    client: FlaskClient, ada: Account, credential_id: str, loaded: sessionmaker[Session]
) -> None:
    with loaded() as session:
        issued = session.get(IssuedCredential, credential_id)
        assert issued is not None
        issued.status = CredentialStatus.SUSPENDED
        session.commit()
    assert "Suspended while a requirement it rests on is graded again" in text_of(
        public_page(client, credential_id)
    )
    log_in(client, ada)
    words = text_of(client.get("/me/credentials"))
    assert "suspended Suspended while a requirement it rests on is graded again" in words


def test_a_credential_still_being_signed_offers_nothing_to_download_yet(
    client: FlaskClient, ada: Account, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    take_quiz(client, ada, "basics", BASICS_ANSWERS)
    take_quiz(client, ada, "timed", TIMED_ANSWERS)
    run_queued(queue, loaded)
    log_in(client, ada)
    page = client.get("/me/credentials")
    words = text_of(page)
    assert "being signed Being signed: ready in a few seconds" in words and "Awarded" in words
    assert "credential.json" not in page.get_data(as_text=True)
    with loaded() as session:
        (pending,) = session.scalars(select(IssuedCredential.id)).all()
    assert client.get(f"/me/credentials/{pending}/credential.json").status_code == 409


# ---------------------------------------------------------------- staff revocation


def test_staff_revoke_only_with_a_reason_and_it_shows_everywhere_at_once(
    client: FlaskClient,
    ada: Account,
    stella: Account,
    credential_id: str,
    loaded: sessionmaker[Session],
) -> None:
    index = row(loaded, credential_id).status_index
    log_in(client, stella)
    gradebook = client.get(f"/staff/programs/{PROGRAM}/gradebook").get_data(as_text=True)
    assert f'href="/staff/programs/{PROGRAM}/credentials"' in gradebook
    listing = client.get(f"/staff/programs/{PROGRAM}/credentials")
    assert listing.status_code == 200
    card = section(listing, credential_id)
    assert "ada" in card and "ada@example.org" in card and "Valid" in card
    token = csrf_token(listing.get_data(as_text=True))

    for blank in ("", "   "):
        refused = client.post(
            f"/staff/credentials/{credential_id}/revoke", data={"csrf_token": token, "reason": blank}
        )
        assert refused.status_code == 400
        card = section(refused, credential_id)
        assert "The reason: give the reason for the revocation" in card
        assert 'aria-invalid="true"' in card
        assert row(loaded, credential_id).status == CredentialStatus.ACTIVE
    assert not status_bit(client, "revocation", index)

    reason = "The hand-in was copied from another learner."
    revoked = client.post(
        f"/staff/credentials/{credential_id}/revoke", data={"csrf_token": token, "reason": reason}
    )
    assert revoked.status_code == 303
    assert revoked.headers["Location"].endswith(
        f"/staff/programs/{PROGRAM}/credentials#credential-{credential_id}"
    )
    after = client.get(f"/staff/programs/{PROGRAM}/credentials")
    card = section(after, credential_id)
    assert f"Revoked: {reason}" in html.unescape(card) and "<form" not in card
    assert f"Revoked the credential of ada: {reason}" in html.unescape(after.get_data(as_text=True))

    # In the very next requests: the status list, the public page, the learner's page, the audit log.
    assert status_bit(client, "revocation", index)
    assert not status_bit(client, "suspension", index)
    assert f"Revoked by its issuer: {reason}" in text_of(public_page(client, credential_id))
    with loaded() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "credential.revoked")).one()
        assert event.reason == reason
    log_in(client, ada)
    card = section(client.get("/me/credentials"), credential_id)
    assert f"Revoked: {reason}" in html.unescape(card)
    assert "linkedin.com" not in card and 'id="share-' not in card

    log_in(client, stella)
    again = client.post(
        f"/staff/credentials/{credential_id}/revoke",
        data={"csrf_token": csrf_token(client.get("/staff").get_data(as_text=True)), "reason": reason},
    )
    assert again.status_code == 409 and "revoked already" in text_of(again)


def test_only_the_programs_staff_and_admins_see_and_revoke_its_credentials(
    client: FlaskClient, ada: Account, credential_id: str, loaded: sessionmaker[Session]
) -> None:
    outsider = make_account(loaded, "otto@example.org", "reviewer", runs=("other-program",))
    admin = make_account(loaded, "root@example.org", "admin")
    log_in(client, ada)
    token = csrf_token(client.get("/me/credentials").get_data(as_text=True))
    assert client.get(f"/staff/programs/{PROGRAM}/credentials").status_code == 403
    refused = client.post(
        f"/staff/credentials/{credential_id}/revoke", data={"csrf_token": token, "reason": "Mine."}
    )
    assert refused.status_code == 403

    log_in(client, outsider)
    token = csrf_token(client.get("/staff").get_data(as_text=True))
    assert client.get(f"/staff/programs/{PROGRAM}/credentials").status_code == 403
    assert client.get("/staff/programs/other-program/credentials").status_code == 200
    unseen = client.post(
        f"/staff/credentials/{credential_id}/revoke", data={"csrf_token": token, "reason": "Not mine."}
    )
    assert unseen.status_code == 404
    assert row(loaded, credential_id).status == CredentialStatus.ACTIVE

    log_in(client, admin)
    assert credential_id in client.get(f"/staff/programs/{PROGRAM}/credentials").get_data(as_text=True)
    assert client.get("/staff/programs/no-such-program/credentials").status_code == 404
