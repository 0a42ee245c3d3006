"""The issuer's keys: encodings, key ids, rotation, and the key store encrypted at rest."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from grader.credentials import KeyAlgorithm, KeySet, PublicKey
from grader.credentials.errors import KeyStoreError, MalformedCredential
from grader.credentials.keys import generate_ed25519_key, generate_rsa_key, jwk_thumbprint
from grader.credentials.multiformats import (
    base58btc_decode,
    base58btc_encode,
    ed25519_public_key_from_multikey,
    multibase_base64url,
    multibase_decode,
)
from tests.unit.credentials.sample_award import ISSUED_AT, IssuerWorld

SECRET = "correct horse battery staple, from the environment"

# RFC 7638 section 3.1: this JWK's thumbprint is NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjB"
        "ZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8"
        "KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_"
        "xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


@pytest.mark.parametrize("data", [b"", b"\0", b"\0\0\x01", b"hello world", bytes(range(256))])
def test_base58btc_round_trips_and_keeps_leading_zero_bytes(data: bytes) -> None:
    assert base58btc_decode(base58btc_encode(data)) == data


def test_base58btc_matches_the_bitcoin_alphabet() -> None:
    assert base58btc_encode(b"hello world") == "StV1DL6CwTryKyV"
    assert base58btc_encode(b"\0\0\x01") == "112"


def test_multibase_names_its_encoding_and_refuses_others() -> None:
    assert multibase_base64url(b"\xff\xfe") == "u__4"
    assert multibase_decode("u__4") == b"\xff\xfe"
    with pytest.raises(MalformedCredential, match="prefix 'f'"):
        multibase_decode("f00")
    with pytest.raises(MalformedCredential, match="padded"):
        multibase_decode("u__4=")


def test_an_ed25519_public_key_is_a_z6mk_multikey_and_back() -> None:
    key = generate_ed25519_key(ISSUED_AT).public_key()
    assert key.multikey.startswith("z6Mk")
    assert key.key_id == key.multikey
    assert PublicKey.from_multikey(key.multikey).multikey == key.multikey


def test_a_multikey_of_another_key_type_is_refused() -> None:
    # 0xe7 0x01 is the multicodec of a secp256k1 public key.
    secp256k1 = "z" + base58btc_encode(b"\xe7\x01" + bytes(33))
    with pytest.raises(MalformedCredential, match="not an Ed25519 public key"):
        ed25519_public_key_from_multikey(secp256k1)


def test_the_jwk_thumbprint_is_rfc_7638s() -> None:
    assert jwk_thumbprint(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert PublicKey.from_jwk(RFC7638_JWK).key_id == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_an_rsa_key_is_published_as_a_public_jwk_named_by_its_thumbprint(world: IssuerWorld) -> None:
    rsa_key = world.keys.current(KeyAlgorithm.RS256).public_key()
    assert set(rsa_key.jwk) == {"kty", "n", "e"}
    assert rsa_key.key_id == jwk_thumbprint(rsa_key.jwk)


def test_rsa_keys_under_2048_bits_are_refused() -> None:
    with pytest.raises(ValueError, match="2048"):
        generate_rsa_key(ISSUED_AT, bits=1024)


def test_a_jwk_with_private_parts_is_refused_as_a_public_key() -> None:
    with pytest.raises(MalformedCredential, match="private key material"):
        PublicKey.from_jwk({**RFC7638_JWK, "d": "secret"})


def test_rotation_retires_the_current_key_and_keeps_it(world: IssuerWorld) -> None:
    before = world.keys.current(KeyAlgorithm.ED25519)
    later = ISSUED_AT + timedelta(days=90)
    rotated = world.keys.rotate(KeyAlgorithm.ED25519, later)
    current = rotated.current(KeyAlgorithm.ED25519)
    assert current.key_id != before.key_id
    kept = rotated.find(before.key_id)
    assert kept is not None and kept.retired_at == later and not kept.active
    assert rotated.current(KeyAlgorithm.RS256).key_id == world.keys.current(KeyAlgorithm.RS256).key_id
    assert len(rotated.keys) == len(world.keys.keys) + 1


def test_revoking_marks_the_key_and_leaves_no_current_one_of_its_kind(world: IssuerWorld) -> None:
    ed25519_id = world.keys.current(KeyAlgorithm.ED25519).key_id
    revoked = world.keys.revoke(ed25519_id, ISSUED_AT)
    with pytest.raises(KeyStoreError, match="no current Ed25519 key"):
        revoked.current(KeyAlgorithm.ED25519)
    with pytest.raises(KeyStoreError, match="no key"):
        world.keys.revoke("z6MkNotOurs", ISSUED_AT)


def test_the_key_store_round_trips_with_its_secret_and_holds_no_plain_private_key(world: IssuerWorld) -> None:
    rotated = world.keys.rotate(KeyAlgorithm.ED25519, ISSUED_AT)
    stored = rotated.to_json(SECRET)
    entries = json.loads(stored)["keys"]
    assert all(
        entry["private_key_pem"].startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----") for entry in entries
    )
    assert "BEGIN PRIVATE KEY" not in stored
    loaded = KeySet.from_json(stored, SECRET)
    assert [key.key_id for key in loaded.keys] == [key.key_id for key in rotated.keys]
    assert [key.retired_at for key in loaded.keys] == [key.retired_at for key in rotated.keys]
    message = b"the same key signs the same way"
    original = rotated.current(KeyAlgorithm.ED25519)
    assert loaded.current(KeyAlgorithm.ED25519).sign(message) == original.sign(message)


def test_the_key_store_does_not_open_with_another_secret(world: IssuerWorld) -> None:
    stored = world.keys.to_json(SECRET)
    with pytest.raises(KeyStoreError, match="wrong secret"):
        KeySet.from_json(stored, "another secret of sufficient length")


def test_a_short_secret_is_refused_before_anything_is_written(world: IssuerWorld) -> None:
    with pytest.raises(KeyStoreError, match="at least 16 bytes"):
        world.keys.to_json("hunter2")


def test_a_key_store_whose_key_id_was_edited_is_refused(world: IssuerWorld) -> None:
    stored = json.loads(world.keys.to_json(SECRET))
    stored["keys"][0]["key_id"] = "z6MkSomeoneElse"
    with pytest.raises(KeyStoreError, match="does not match its key id"):
        KeySet.from_json(json.dumps(stored), SECRET)
