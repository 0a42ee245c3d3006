"""Verifying credentials in both formats, and rejecting each tampered form with its reason."""

from __future__ import annotations

import base64
import copy
import json
from datetime import timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from grader.credentials import (
    KeyAlgorithm,
    KeySet,
    Outcome,
    TrustedKeys,
    data_integrity,
    did_key,
    vc_jwt,
    verify,
)
from grader.credentials.issuing import SignedCredential, sign_both
from grader.credentials.keys import generate_ed25519_key, generate_rsa_key
from grader.credentials.verify import MAX_CREDENTIAL_BYTES
from tests.unit.credentials.sample_award import A_DAY_LATER, ISSUED_AT, IssuerWorld, make_credential


def proof_failure(report: Any) -> str:
    assert not report.verified
    check = report.check("proof")
    assert check.outcome is Outcome.FAILED
    return str(check.detail)


def tampered_jwt(token: str, edit: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    edit(claims)
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return ".".join([header, encoded, signature])


# --- both formats verify -----------------------------------------------------------------------------


def test_the_json_ld_credential_verifies_against_the_published_did_document(
    world: IssuerWorld, signed: SignedCredential
) -> None:
    report = verify(signed.json_ld, world.trusted(), now=A_DAY_LATER)
    assert report.verified, report.lines()
    assert report.proof_format == "Data Integrity proof (eddsa-rdfc-2022)"
    assert signed.data_integrity_method in report.check("proof").detail
    assert report.check("status").outcome is Outcome.NOT_CHECKED


def test_the_jwt_verifies_and_carries_the_same_credential(
    world: IssuerWorld, signed: SignedCredential
) -> None:
    report = verify(signed.jwt, world.trusted(), now=A_DAY_LATER)
    assert report.verified, report.lines()
    assert report.proof_format == "VC-JWT (RS256)"
    unsigned = {key: value for key, value in signed.json_ld.items() if key != "proof"}
    assert report.credential == unsigned


def test_a_credential_handed_in_as_text_or_bytes_verifies_too(
    world: IssuerWorld, signed: SignedCredential
) -> None:
    text = json.dumps(signed.json_ld, indent=2)
    assert verify(text, world.trusted(), now=A_DAY_LATER).verified
    assert verify(signed.jwt.encode() + b"\n", world.trusted(), now=A_DAY_LATER).verified


def test_the_jwt_header_has_only_alg_kid_and_typ(signed: SignedCredential) -> None:
    header, payload = vc_jwt.read_unverified(signed.jwt)
    assert header == {"alg": "RS256", "kid": signed.jwt_method, "typ": "JWT"}
    assert payload["iss"] == signed.json_ld["issuer"]["id"]
    assert payload["jti"] == signed.json_ld["id"]
    assert payload["nbf"] == int(ISSUED_AT.timestamp())
    assert payload["sub"] == signed.json_ld["credentialSubject"]["identifier"][0]["identityHash"]
    assert "exp" not in payload and "proof" not in payload
    assert payload["credentialSubject"] == signed.json_ld["credentialSubject"]


def test_the_jwt_carries_exp_when_the_credential_has_valid_until(world: IssuerWorld) -> None:
    until = ISSUED_AT + timedelta(days=365)
    both = sign_both(make_credential(world, valid_until=until), world.keys, world.did, ISSUED_AT)
    _, payload = vc_jwt.read_unverified(both.jwt)
    assert payload["exp"] == int(until.timestamp())
    assert verify(both.jwt, world.trusted(), now=A_DAY_LATER).verified


def test_a_did_key_issuer_verifies_with_no_keys_given() -> None:
    key_set = KeySet((generate_ed25519_key(ISSUED_AT), generate_rsa_key(ISSUED_AT, 2048)))
    issuer = did_key(key_set.current(KeyAlgorithm.ED25519).public_key())
    credential = make_credential(_world_for(issuer, key_set))
    both = sign_both(credential, key_set, issuer, ISSUED_AT)
    assert verify(both.json_ld, None, now=A_DAY_LATER).verified
    # The RSA key is not in a did:key's document: the JWT embeds it, and only the key set vouches for it.
    assert "jwk" in vc_jwt.read_unverified(both.jwt)[0]
    assert "not one of the issuer's keys" in proof_failure(verify(both.jwt, None, now=A_DAY_LATER))
    assert verify(both.jwt, TrustedKeys.from_key_set(issuer, key_set), now=A_DAY_LATER).verified


def _world_for(issuer_id: str, key_set: KeySet) -> IssuerWorld:
    from dataclasses import replace

    from tests.unit.credentials.sample_award import make_world

    base = make_world()
    return IssuerWorld(issuer_id, key_set, replace(base.issuer, id=issuer_id))


# --- tampered forms ----------------------------------------------------------------------------------


def test_a_changed_score_breaks_the_proof(world: IssuerWorld, signed: SignedCredential) -> None:
    tampered = copy.deepcopy(signed.json_ld)
    tampered["credentialSubject"]["result"][0]["value"] = "10"
    assert "changed after signing" in proof_failure(verify(tampered, world.trusted(), now=A_DAY_LATER))
    token = tampered_jwt(
        signed.jwt, lambda claims: claims["credentialSubject"]["result"][0].update(value="10")
    )
    assert "signature does not match" in proof_failure(verify(token, world.trusted(), now=A_DAY_LATER))


def test_a_swapped_subject_breaks_the_proof(world: IssuerWorld, signed: SignedCredential) -> None:
    other = make_credential(world, email="mallory@example.org")["credentialSubject"]["identifier"]
    tampered = copy.deepcopy(signed.json_ld)
    tampered["credentialSubject"]["identifier"] = other
    assert "changed after signing" in proof_failure(verify(tampered, world.trusted(), now=A_DAY_LATER))

    def swap(claims: dict[str, Any]) -> None:
        claims["credentialSubject"]["identifier"] = other
        claims["sub"] = other[0]["identityHash"]

    token = tampered_jwt(signed.jwt, swap)
    assert "signature does not match" in proof_failure(verify(token, world.trusted(), now=A_DAY_LATER))


def test_a_copy_re_signed_with_an_unknown_key_under_the_issuers_key_id_is_rejected(
    world: IssuerWorld, signed: SignedCredential
) -> None:
    forged = data_integrity.sign(
        make_credential(world), generate_ed25519_key(ISSUED_AT), signed.data_integrity_method, ISSUED_AT
    )
    assert "signed by another key" in proof_failure(verify(forged, world.trusted(), now=A_DAY_LATER))
    forged_jwt = vc_jwt.sign(make_credential(world), generate_rsa_key(ISSUED_AT, 2048), kid=signed.jwt_method)
    assert "signed by another key" in proof_failure(verify(forged_jwt, world.trusted(), now=A_DAY_LATER))


def test_a_copy_re_signed_with_a_key_the_issuer_never_listed_is_rejected(world: IssuerWorld) -> None:
    stranger = generate_ed25519_key(ISSUED_AT)
    method = f"{did_key(stranger.public_key())}#{stranger.key_id}"
    forged = data_integrity.sign(make_credential(world), stranger, method, ISSUED_AT)
    assert "not an assertion key of did:web:grader.example.org" in proof_failure(
        verify(forged, world.trusted(), now=A_DAY_LATER)
    )
    forged_jwt = vc_jwt.sign(make_credential(world), generate_rsa_key(ISSUED_AT, 2048), embed_jwk=True)
    assert "not one of the issuer's keys" in proof_failure(
        verify(forged_jwt, world.trusted(), now=A_DAY_LATER)
    )


def test_a_credential_reissued_under_another_issuer_is_not_verified_with_our_keys(world: IssuerWorld) -> None:
    stranger = KeySet((generate_ed25519_key(ISSUED_AT), generate_rsa_key(ISSUED_AT, 2048)))
    issuer = did_key(stranger.current(KeyAlgorithm.ED25519).public_key())
    both = sign_both(make_credential(_world_for(issuer, stranger)), stranger, issuer, ISSUED_AT)
    assert "but the credential's issuer is did:key:" in proof_failure(
        verify(both.json_ld, world.trusted(), now=A_DAY_LATER)
    )


def test_a_proof_from_a_key_retired_before_the_credentials_valid_from_is_rejected(world: IssuerWorld) -> None:
    # The old key signs a credential dated after the key was rotated out, as a thief of it would.
    both = sign_both(make_credential(world, valid_from=ISSUED_AT), world.keys, world.did, ISSUED_AT)
    rotated = world.keys.rotate(KeyAlgorithm.ED25519, ISSUED_AT - timedelta(days=1))
    rotated = rotated.rotate(KeyAlgorithm.RS256, ISSUED_AT - timedelta(days=1), rsa_bits=2048)
    trusted = TrustedKeys.from_key_set(world.did, rotated)
    detail = proof_failure(verify(both.json_ld, trusted, now=A_DAY_LATER))
    assert (
        "retired on 2026-11-30T09:30:00Z, before the credential's validFrom (2026-12-01T09:30:00Z)" in detail
    )
    assert "retired on 2026-11-30T09:30:00Z" in proof_failure(verify(both.jwt, trusted, now=A_DAY_LATER))


def test_what_a_retired_key_signed_before_its_retirement_still_verifies(world: IssuerWorld) -> None:
    earlier = ISSUED_AT - timedelta(days=10)
    both = sign_both(make_credential(world, valid_from=earlier), world.keys, world.did, earlier)
    rotated = world.keys.rotate(KeyAlgorithm.ED25519, ISSUED_AT - timedelta(days=1))
    assert verify(both.json_ld, TrustedKeys.from_key_set(world.did, rotated), now=A_DAY_LATER).verified
    assert verify(
        both.json_ld, TrustedKeys.from_document(_document(world, rotated)), now=A_DAY_LATER
    ).verified


def _document(world: IssuerWorld, key_set: KeySet) -> dict[str, Any]:
    from grader.credentials import did_document

    return did_document(world.did, key_set.public_keys())


def test_a_proof_by_a_revoked_key_is_rejected_whatever_its_date(
    world: IssuerWorld, signed: SignedCredential
) -> None:
    ed25519_id = world.keys.current(KeyAlgorithm.ED25519).key_id
    revoked = world.keys.revoke(ed25519_id, A_DAY_LATER)
    detail = proof_failure(
        verify(signed.json_ld, TrustedKeys.from_document(_document(world, revoked)), now=A_DAY_LATER)
    )
    assert "revoked on 2026-12-02T09:30:00Z" in detail


def test_jwt_claims_that_disagree_with_the_credential_are_rejected(world: IssuerWorld) -> None:
    credential = make_credential(world)
    payload = credential | vc_jwt.claims_for(credential) | {"sub": "did:example:someone-else"}
    rsa_key = world.keys.current(KeyAlgorithm.RS256)
    kid = f"{world.did}#{rsa_key.key_id}"
    token = jwt.encode(
        {"alg": "RS256", "kid": kid, "typ": "JWT"}, payload, RSAKey.import_key(rsa_key.private_key)
    )
    detail = proof_failure(verify(token, world.trusted(), now=A_DAY_LATER))
    assert "the JWT claim sub is 'did:example:someone-else'" in detail


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"alg": "RS256", "typ": "JWT", "x5u": "https://attacker.example/key"}, "only alg, kid/jwk, typ"),
        ({"alg": "HS256", "typ": "JWT"}, "only RS256 is accepted"),
        ({"alg": "none", "typ": "JWT"}, "only RS256 is accepted"),
    ],
)
def test_a_jwt_header_outside_ob_3_section_8_2_is_rejected(
    world: IssuerWorld, signed: SignedCredential, header: dict[str, str], reason: str
) -> None:
    _, payload, signature = signed.jwt.split(".")
    encoded = base64.urlsafe_b64encode(json.dumps(header | {"kid": signed.jwt_method}).encode()).rstrip(b"=")
    token = ".".join([encoded.decode(), payload, signature])
    assert reason in proof_failure(verify(token, world.trusted(), now=A_DAY_LATER))


def test_an_undefined_term_added_to_the_proof_is_named(world: IssuerWorld, signed: SignedCredential) -> None:
    tampered = copy.deepcopy(signed.json_ld)
    tampered["proof"]["note"] = "trust me"
    assert "'note'" in proof_failure(verify(tampered, world.trusted(), now=A_DAY_LATER))


# --- dates and unreadable input ----------------------------------------------------------------------


def test_a_credential_is_not_valid_before_valid_from_nor_after_valid_until(world: IssuerWorld) -> None:
    until = ISSUED_AT + timedelta(days=30)
    both = sign_both(make_credential(world, valid_until=until), world.keys, world.did, ISSUED_AT)
    early = verify(both.json_ld, world.trusted(), now=ISSUED_AT - timedelta(hours=1))
    assert early.check("dates").detail == "not valid before 2026-12-01T09:30:00Z" and not early.verified
    late = verify(both.jwt, world.trusted(), now=until + timedelta(seconds=1))
    assert late.check("dates").detail == "expired on 2026-12-31T09:30:00Z" and not late.verified
    assert late.check("proof").outcome is Outcome.PASSED


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ('{"@context": [', "not valid JSON (line 1, column 15"),
        ("hello", "neither JSON-LD nor a VC-JWT"),
        ("x" * (MAX_CREDENTIAL_BYTES + 1), "over 1000000 bytes"),
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nests deeper than 64 levels"),
        ('{"a": ' + "[" * 200 + "]" * 200 + "}", "nests deeper than 64 levels"),
    ],
)
def test_unreadable_input_fails_the_structure_check_without_raising(given: str | bytes, reason: str) -> None:
    report = verify(given, None)
    assert report.check("structure").outcome is Outcome.FAILED
    assert reason in report.check("structure").detail
    assert {report.check(name).outcome for name in ("proof", "dates", "status")} == {Outcome.NOT_CHECKED}


def test_json_that_is_not_an_open_badge_fails_the_structure_check_with_what_is_missing(
    world: IssuerWorld,
) -> None:
    report = verify(
        '{"@context": ["https://www.w3.org/ns/credentials/v2"], "type": ["VerifiableCredential"]}',
        world.trusted(),
    )
    detail = report.check("structure").detail
    assert "OpenBadgeCredential" in detail and "issuer must be a Profile" in detail
    assert not report.verified


def test_an_unknown_term_in_a_signed_credential_fails_the_structure_check(
    world: IssuerWorld, signed: SignedCredential
) -> None:
    tampered = copy.deepcopy(signed.json_ld)
    tampered["credentialSubject"]["grade"] = "A+"
    report = verify(tampered, world.trusted(), now=A_DAY_LATER)
    assert (
        "'grade' at $.credentialSubject.grade is a term that no context defines"
        in report.check("structure").detail
    )


def test_the_report_reads_as_one_line_per_check(world: IssuerWorld, signed: SignedCredential) -> None:
    lines = verify(signed.json_ld, world.trusted(), now=A_DAY_LATER).lines()
    assert lines[0] == "Data Integrity proof (eddsa-rdfc-2022): verified"
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["structure", "proof", "dates", "status"]


@pytest.mark.parametrize("keys", [["not", "a", "document"], "did:web:grader.example.org"])
def test_keys_that_are_not_a_did_document_fail_the_proof_check_with_a_reason(
    signed: SignedCredential, keys: Any
) -> None:
    detail = proof_failure(verify(signed.json_ld, keys, now=A_DAY_LATER))
    assert detail == "the issuer's keys must be a DID document or controller document object"
