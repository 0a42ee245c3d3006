"""Bitstring Status Lists: the encoding the W3C spec fixes, and revocation and suspension as verified."""

from __future__ import annotations

import copy
import gzip
from datetime import timedelta

import pytest

from grader.credentials import (
    KeyAlgorithm,
    Outcome,
    StatusList,
    StatusPurpose,
    build_status_list_credential,
    data_integrity,
    vc_jwt,
    verify,
)
from grader.credentials.errors import MalformedCredential
from grader.credentials.issuing import SignedCredential
from grader.credentials.linked_data import JsonObject
from grader.credentials.multiformats import multibase_base64url, multibase_decode
from grader.credentials.status_list import MINIMUM_BITS
from tests.unit.credentials.sample_award import (
    A_DAY_LATER,
    ISSUED_AT,
    REVOCATION_LIST,
    SUSPENSION_LIST,
    IssuerWorld,
)

# The spec's example encodedList: a 131,072-entry list with every bit clear.
SPEC_EMPTY_LIST = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"


def signed_list(world: IssuerWorld, purpose: StatusPurpose, set_bits: tuple[int, ...] = ()) -> JsonObject:
    status_list = StatusList()
    for index in set_bits:
        status_list.set(index)
    url = REVOCATION_LIST if purpose is StatusPurpose.REVOCATION else SUSPENSION_LIST
    unsigned = build_status_list_credential(
        list_url=url, issuer_id=world.did, purpose=purpose, status_list=status_list, valid_from=ISSUED_AT
    )
    key = world.keys.current(KeyAlgorithm.ED25519)
    return data_integrity.sign(unsigned, key, f"{world.did}#{key.key_id}", ISSUED_AT)


def test_a_list_has_at_least_131072_entries_gzipped_in_base64url_multibase() -> None:
    status_list = StatusList()
    assert status_list.size == MINIMUM_BITS
    encoded = status_list.encode()
    assert encoded.startswith("u") and "=" not in encoded
    assert len(gzip.decompress(multibase_decode(encoded))) == 16 * 1024
    with pytest.raises(ValueError, match="at least 131072"):
        StatusList(1024)


def test_the_specs_example_list_decodes_to_all_clear() -> None:
    decoded = StatusList.decode(SPEC_EMPTY_LIST)
    assert decoded.size == MINIMUM_BITS
    assert not any(decoded.get(index) for index in (0, 1, 42, MINIMUM_BITS - 1))


def test_index_zero_is_the_leftmost_bit_of_the_first_byte() -> None:
    status_list = StatusList()
    status_list.set(0)
    status_list.set(9)
    raw = gzip.decompress(multibase_decode(status_list.encode()))
    assert raw[:2] == bytes([0b1000_0000, 0b0100_0000])


def test_bits_set_and_clear_and_survive_encoding() -> None:
    status_list = StatusList()
    status_list.set(42)
    status_list.set(MINIMUM_BITS - 1)
    status_list.clear(42)
    decoded = StatusList.decode(status_list.encode())
    assert (decoded.get(41), decoded.get(42), decoded.get(MINIMUM_BITS - 1)) == (False, False, True)
    with pytest.raises(IndexError):
        status_list.set(MINIMUM_BITS)


def test_the_same_bits_always_encode_the_same_way() -> None:
    first, second = StatusList(), StatusList()
    first.set(7)
    second.set(7)
    assert first.encode() == second.encode()


def test_a_list_too_short_or_a_decompression_bomb_is_refused() -> None:
    with pytest.raises(MalformedCredential, match="at least 131072"):
        StatusList.decode(multibase_base64url(gzip.compress(bytes(1024))))
    with pytest.raises(MalformedCredential, match="more than 16 MiB"):
        StatusList.decode(multibase_base64url(gzip.compress(bytes(17 * 1024 * 1024))))
    with pytest.raises(MalformedCredential, match="not GZIP"):
        StatusList.decode(multibase_base64url(b"plain bytes"))


def test_the_status_list_credential_is_signed_and_verifies_as_a_credential(world: IssuerWorld) -> None:
    listed = signed_list(world, StatusPurpose.REVOCATION)
    assert listed["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert listed["credentialSubject"]["statusPurpose"] == "revocation"
    assert listed["proof"]["cryptosuite"] == "eddsa-rdfc-2022"


def test_a_credential_whose_bits_are_clear_is_neither_revoked_nor_suspended(
    world: IssuerWorld, signed: SignedCredential
) -> None:
    lists = [
        signed_list(world, StatusPurpose.REVOCATION, (41, 43)),
        signed_list(world, StatusPurpose.SUSPENSION),
    ]
    report = verify(signed.json_ld, world.trusted(), status_list=lists, now=A_DAY_LATER)
    assert report.verified, report.lines()
    assert report.check("status").detail == "not revoked; not suspended"


@pytest.mark.parametrize(
    ("purpose", "word"), [(StatusPurpose.REVOCATION, "revoked"), (StatusPurpose.SUSPENSION, "suspended")]
)
def test_a_set_bit_revokes_or_suspends_in_both_formats(
    world: IssuerWorld, signed: SignedCredential, purpose: StatusPurpose, word: str
) -> None:
    lists = [signed_list(world, purpose, (42,))]
    for form in (signed.json_ld, signed.jwt):
        report = verify(form, world.trusted(), status_list=lists, now=A_DAY_LATER)
        assert not report.verified
        assert report.check("status").outcome is Outcome.FAILED
        assert report.check("status").detail.startswith(f"{word}: bit 42 of ")


def test_only_one_list_given_checks_that_purpose_and_says_the_other_was_not_checked(
    world: IssuerWorld, signed: SignedCredential
) -> None:
    report = verify(
        signed.json_ld,
        world.trusted(),
        status_list=signed_list(world, StatusPurpose.REVOCATION),
        now=A_DAY_LATER,
    )
    status = report.check("status")
    assert status.outcome is Outcome.NOT_CHECKED
    assert status.detail == f"not revoked; not checked: suspension ({SUSPENSION_LIST}): no list given"


def test_a_status_list_with_a_bit_cleared_after_signing_is_refused(
    world: IssuerWorld, signed: SignedCredential
) -> None:
    listed = signed_list(world, StatusPurpose.REVOCATION, (42,))
    forged = copy.deepcopy(listed)
    forged["credentialSubject"]["encodedList"] = StatusList().encode()
    report = verify(signed.json_ld, world.trusted(), status_list=[forged], now=A_DAY_LATER)
    assert report.check("status").outcome is Outcome.FAILED
    assert "does not verify" in report.check("status").detail


def test_a_status_list_from_another_issuer_is_refused(world: IssuerWorld, signed: SignedCredential) -> None:
    listed = signed_list(world, StatusPurpose.REVOCATION)
    listed["issuer"] = "did:web:attacker.example"
    report = verify(signed.json_ld, world.trusted(), status_list=[listed], now=A_DAY_LATER)
    assert "issued by did:web:attacker.example" in report.check("status").detail


def test_a_status_list_signed_as_a_jwt_is_read_too(world: IssuerWorld, signed: SignedCredential) -> None:
    status_list = StatusList()
    status_list.set(42)
    unsigned = build_status_list_credential(
        list_url=SUSPENSION_LIST,
        issuer_id=world.did,
        purpose=StatusPurpose.SUSPENSION,
        status_list=status_list,
        valid_from=ISSUED_AT - timedelta(hours=1),
    )
    rsa_key = world.keys.current(KeyAlgorithm.RS256)
    token = vc_jwt.sign(unsigned, rsa_key, kid=f"{world.did}#{rsa_key.key_id}")
    report = verify(signed.json_ld, world.trusted(), status_list=[token], now=A_DAY_LATER)
    assert report.check("status").detail.startswith("suspended: bit 42")
