"""The verification page, /verify: anyone hands in a credential (a file or pasted) and reads every check.

A credential of this service is verified with its own keys and status lists: every check passes, in each
of the three forms (JSON-LD, VC-JWT, baked PNG), and a revoked one says so with the reason. Each bad input
gets its own message naming the field; each tampered form fails its proof with the reason; another
issuer's DID document is never fetched (the test forbids every network connection to prove it).
"""

from __future__ import annotations

import base64
import copy
import html
import io
import json
import re
import socket
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from grader.config import Settings
from grader.credentials import KeyAlgorithm, KeySet, data_integrity, did_key
from grader.credentials.issuing import sign_both
from grader.interfaces import RecordingQueue
from grader.models import IssuedCredential, utcnow
from grader.services import credentials
from grader.services.credential_files import badge_png
from grader.services.credential_verification import MAX_UPLOAD_BYTES
from grader.web import create_app
from tests.support.issued_credentials import issued_credential
from tests.unit.credentials.sample_award import IssuerWorld, make_credential, make_world


@pytest.fixture
def credential_id(loaded: sessionmaker[Session], settings: Settings) -> str:
    return issued_credential(loaded, settings)


@pytest.fixture
def issued(loaded: sessionmaker[Session], credential_id: str) -> IssuedCredential:
    with loaded() as session:
        row = session.get(IssuedCredential, credential_id)
        assert row is not None and row.document is not None and row.jwt is not None
        session.expunge(row)
        return row


def csrf_token(client: FlaskClient) -> str:
    page = client.get("/verify")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match
    return match.group(1)


def send(
    client: FlaskClient, *, file: tuple[bytes, str] | None = None, text: str = "", token: str | None = None
) -> TestResponse:
    data: dict[str, Any] = {"csrf_token": csrf_token(client) if token is None else token, "text": text}
    if file is not None:
        data["file"] = (io.BytesIO(file[0]), file[1])
    return client.post("/verify", data=data, content_type="multipart/form-data")


def page_text(response: TestResponse) -> str:
    """The page as a person reads it: tags gone, entities decoded, white space collapsed."""
    body = response.get_data(as_text=True)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def checks(response: TestResponse) -> dict[str, tuple[str, str]]:
    """Each check's row: name -> (outcome, detail), as shown."""
    body = response.get_data(as_text=True)
    rows = re.findall(
        r'<span class="badge [a-z]+">([a-z ]+)</span> (\w+)</h3>\s*<p>(.*?)</p>', body, flags=re.S
    )
    return {name: (outcome, html.unescape(detail)) for outcome, name, detail in rows}


def verdict(response: TestResponse) -> str:
    match = re.search(r'<h2 id="verdict-title">(.*?)</h2>', response.get_data(as_text=True), flags=re.S)
    assert match, "no verdict on the page"
    return html.unescape(match.group(1)).strip()


def field_error(response: TestResponse, field: str) -> str:
    body = response.get_data(as_text=True)
    match = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', body, flags=re.S)
    assert match, f"no error at the {field} field"
    assert f'aria-describedby="{field}-hint {field}-error"' in body
    return html.unescape(match.group(1))


def jwt_with(token: str, edit: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    edit(claims)
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


# ---------------------------------------------------------------- the page


def test_the_page_offers_a_file_and_a_text_box_and_states_the_limit(client: FlaskClient) -> None:
    response = client.get("/verify")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'enctype="multipart/form-data"' in body
    assert '<input type="file" id="file" name="file"' in body
    assert '<textarea id="text" name="text"' in body
    assert "at most 1 MB" in page_text(response)
    assert MAX_UPLOAD_BYTES == 1024 * 1024
    assert "<script" not in body  # works as it is with JavaScript off


# ---------------------------------------------------------------- this service's credentials


def test_a_credential_of_this_service_passes_every_check_as_json_ld(
    client: FlaskClient, credential_id: str
) -> None:
    document = client.get(f"/credentials/{credential_id}", headers={"Accept": "application/ld+json"})
    response = send(client, file=(document.data, "credential.json"))
    assert response.status_code == 200
    assert verdict(response) == "Verified"
    assert "Read as JSON-LD, signed as a Data Integrity proof (eddsa-rdfc-2022)" in page_text(response)
    shown = checks(response)
    assert {name: outcome for name, (outcome, _) in shown.items()} == {
        "Structure": "passed",
        "Signature": "passed",
        "Dates": "passed",
        "Status": "passed",
    }
    assert shown["Status"][1] == "not revoked; not suspended"
    assert f"/credentials/{credential_id}" in response.get_data(as_text=True)  # its page, linked


def test_the_vc_jwt_pasted_and_the_baked_badge_verify_too(
    client: FlaskClient, issued: IssuedCredential
) -> None:
    assert issued.jwt is not None
    pasted = send(client, text=issued.jwt)
    assert pasted.status_code == 200
    assert "Read as a VC-JWT, signed as a VC-JWT (RS256)" in page_text(pasted)
    assert all(outcome == "passed" for outcome, _ in checks(pasted).values())
    assert len(checks(pasted)) == 4

    baked = client.get(f"/credentials/{issued.id}/badge.png")
    assert baked.status_code == 200
    response = send(client, file=(baked.data, "other-program-credential.png"))
    assert "Read as a baked PNG badge" in page_text(response)
    assert all(outcome == "passed" for outcome, _ in checks(response).values())


def test_a_revoked_credential_is_reported_revoked_with_the_reason(
    client: FlaskClient, loaded: sessionmaker[Session], issued: IssuedCredential
) -> None:
    with loaded() as session:
        credentials.revoke(session, issued.id, "The work was copied.", actor="test")
        session.commit()
    assert issued.jwt is not None
    response = send(client, text=issued.jwt)
    assert response.status_code == 200
    text = page_text(response)
    assert verdict(response) == "Not verified: revoked by its issuer"
    assert "Revoked: The work was copied." in text
    outcome, detail = checks(response)["Status"]
    assert outcome == "failed"
    assert detail.startswith(
        f"revoked: bit {issued.status_index} of http://localhost:5000/credentials/status/"
    )


def test_a_did_web_issuer_of_this_service_is_checked_with_its_own_keys(
    settings: Settings, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    web = replace(settings, issuer_did="web")
    credential_id = issued_credential(loaded, web)
    client = create_app(web, queue=queue).test_client()
    with loaded() as session:
        row = session.get(IssuedCredential, credential_id)
        assert row is not None and row.jwt is not None
        token = row.jwt
    response = send(client, text=token)
    shown = checks(response)
    assert all(outcome == "passed" for outcome, _ in shown.values()), shown
    assert "did:web:localhost%3A5000#" in shown["Signature"][1]


# ---------------------------------------------------------------- bad input


def test_an_upload_over_the_limit_is_refused_unread(client: FlaskClient) -> None:
    just_over = send(client, file=(b"{" + b" " * MAX_UPLOAD_BYTES, "big.json"))
    assert just_over.status_code == 413
    assert field_error(just_over, "file") == (
        "Credential file: the file big.json is larger than 1 MB, the most this page reads"
    )
    far_over = send(client, file=(b"x" * (3 * MAX_UPLOAD_BYTES), "huge.json"))
    assert far_over.status_code == 413
    assert field_error(far_over, "file").startswith(
        "Credential file: what you sent is larger than 1 MB, the most this page reads, so none of it was read"
    )


def test_a_file_that_is_not_json_says_where_it_breaks(client: FlaskClient) -> None:
    response = send(client, file=(b'{"@context": [', "credential.json"))
    assert response.status_code == 422
    assert field_error(response, "file") == (
        "Credential file: this is not a credential this page can read: the credential is not valid JSON "
        "(line 1, column 15: Expecting value)"
    )


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"hello, world", "Credential file: the file note.txt is not a credential: it is neither JSON-LD"),
        (bytes(range(256)), "Credential file: the file note.txt is neither a PNG image nor text"),
        (b"   \n", "Credential file: the file note.txt is empty"),
    ],
)
def test_a_file_that_is_neither_json_ld_nor_a_jwt_is_named_as_such(
    client: FlaskClient, content: bytes, said: str
) -> None:
    response = send(client, file=(content, "note.txt"))
    assert response.status_code == 400
    assert field_error(response, "file").startswith(said)


def test_a_pasted_text_that_is_no_jwt_is_named_at_the_text_box_and_kept(client: FlaskClient) -> None:
    response = send(client, text="eyJhbGciOi.not-a-jwt")
    assert response.status_code == 400
    assert field_error(response, "text").startswith("Pasted credential: the pasted text is not a credential")
    assert ">eyJhbGciOi.not-a-jwt</textarea>" in response.get_data(as_text=True)


def test_a_png_without_a_baked_credential_is_told_so(client: FlaskClient) -> None:
    response = send(client, file=(badge_png("Other"), "badge.png"))
    assert response.status_code == 400
    assert field_error(response, "file") == (
        "Credential file: the PNG image holds no baked credential: it has no iTXt chunk with the keyword "
        "openbadgecredential"
    )
    damaged = send(client, file=(badge_png("Other")[:100], "badge.png"))
    assert field_error(damaged, "file").startswith("Credential file: the PNG image is cut short")


def test_nothing_or_both_handed_in_is_refused(client: FlaskClient) -> None:
    nothing = send(client)
    assert nothing.status_code == 400
    assert field_error(nothing, "file") == (
        "Credential file: choose a credential file, or paste the credential into the text box"
    )
    both = send(client, file=(b"{}", "a.json"), text="a.b.c")
    assert field_error(both, "file").startswith(
        "Credential file: choose a file or paste a credential, not both"
    )


def test_json_ld_with_a_term_no_context_defines_fails_safe_mode(
    client: FlaskClient, credential_id: str
) -> None:
    document = client.get(
        f"/credentials/{credential_id}", headers={"Accept": "application/ld+json"}
    ).get_json()
    document["credentialSubject"]["grade"] = "A+"
    response = send(client, text=json.dumps(document))
    assert response.status_code == 200
    assert verdict(response) == "Not verified"
    outcome, detail = checks(response)["Structure"]
    assert outcome == "failed"
    assert detail == (
        "JSON-LD safe mode: 'grade' at $.credentialSubject.grade is a term that no context defines"
    )


def test_the_form_without_its_csrf_token_is_refused(client: FlaskClient, issued: IssuedCredential) -> None:
    assert issued.jwt is not None
    response = send(client, text=issued.jwt, token="")
    assert response.status_code == 400
    assert "Signature" not in page_text(response)


# ---------------------------------------------------------------- tampered credentials


def test_a_changed_score_fails_the_signature(client: FlaskClient, issued: IssuedCredential) -> None:
    document = copy.deepcopy(issued.document)
    assert document is not None
    document["credentialSubject"]["result"][0]["value"] = "100"
    response = send(client, file=(json.dumps(document).encode(), "credential.json"))
    outcome, detail = checks(response)["Signature"]
    assert outcome == "failed"
    assert "the signature does not match the document" in detail
    assert verdict(response) == "Not verified"


def test_a_swapped_subject_fails_the_signature(client: FlaskClient, issued: IssuedCredential) -> None:
    assert issued.jwt is not None

    def swap(claims: dict[str, Any]) -> None:
        claims["credentialSubject"]["identifier"][0]["identityHash"] = "sha256$" + "0" * 64
        claims["sub"] = "sha256$" + "0" * 64

    outcome, detail = checks(send(client, text=jwt_with(issued.jwt, swap)))["Signature"]
    assert outcome == "failed"
    assert "signature" in detail


def test_a_copy_re_signed_by_an_unknown_key_fails_the_signature(
    client: FlaskClient, issued: IssuedCredential
) -> None:
    assert issued.document is not None
    method = issued.document["proof"]["verificationMethod"]
    unsigned = {key: value for key, value in issued.document.items() if key != "proof"}
    unsigned["credentialSubject"]["result"][0]["value"] = "100"
    stranger = KeySet.create(utcnow() - timedelta(days=1)).current(KeyAlgorithm.ED25519)
    forged = data_integrity.sign(unsigned, stranger, method, utcnow() - timedelta(minutes=1))
    outcome, detail = checks(send(client, text=json.dumps(forged)))["Signature"]
    assert outcome == "failed"
    assert "the signature does not match the document" in detail


# ---------------------------------------------------------------- other issuers


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the verification page tried to connect to {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_another_issuers_did_document_is_not_fetched(client: FlaskClient, offline: None) -> None:
    world = make_world()  # did:web:grader.example.org
    signed = sign_both(make_credential(world), world.keys, world.did, utcnow() - timedelta(minutes=1))
    response = send(client, text=signed.jwt)
    assert response.status_code == 200
    shown = checks(response)
    assert shown["Signature"][0] == "not checked"
    assert shown["Signature"][1].startswith(
        "the issuer did:web:grader.example.org is not this service: its DID document was not fetched"
    )
    assert shown["Status"][0] == "not checked"
    assert shown["Status"][1].startswith("the status lists of other issuers are not fetched")
    assert shown["Structure"][0] == "passed", shown
    assert verdict(response) == "Not verified"


def test_another_did_key_issuer_is_resolved_from_its_own_name(client: FlaskClient, offline: None) -> None:
    keys = KeySet.create(utcnow() - timedelta(days=1), rsa_bits=2048)
    did = did_key(keys.current(KeyAlgorithm.ED25519).public_key())
    base = make_world()
    world = IssuerWorld(did, keys, replace(base.issuer, id=did))
    signed = sign_both(make_credential(world), keys, did, utcnow() - timedelta(minutes=1))
    response = send(client, file=(json.dumps(signed.json_ld).encode(), "credential.json"))
    shown = checks(response)
    assert shown["Signature"][0] == "passed", shown
    assert shown["Status"][0] == "not checked"
    assert verdict(response) == "Verified"
    assert "Some checks could not be made" in page_text(response)
