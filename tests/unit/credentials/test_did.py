"""DIDs of the issuer: did:web and its DID document, did:key resolved offline, the keys a verifier trusts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from grader.credentials import KeyAlgorithm, TrustedKeys, did_document, did_key, did_web, resolve_did_key
from grader.credentials.did import did_web_document_url
from grader.credentials.errors import MalformedCredential
from grader.credentials.keys import generate_ed25519_key
from grader.credentials.linked_data import safe_expand
from tests.unit.credentials.sample_award import ISSUED_AT, IssuerWorld


@pytest.mark.parametrize(
    ("base_url", "did", "document_url"),
    [
        ("https://example.org", "did:web:example.org", "https://example.org/.well-known/did.json"),
        ("https://Example.org/", "did:web:example.org", "https://example.org/.well-known/did.json"),
        (
            "https://example.org/schools/data",
            "did:web:example.org:schools:data",
            "https://example.org/schools/data/did.json",
        ),
        (
            "https://example.org:8443",
            "did:web:example.org%3A8443",
            "https://example.org:8443/.well-known/did.json",
        ),
    ],
)
def test_did_web_names_the_base_url_and_the_document_url_names_it_back(
    base_url: str, did: str, document_url: str
) -> None:
    assert did_web(base_url) == did
    assert did_web_document_url(did) == document_url


def test_did_web_refuses_a_plain_http_host() -> None:
    with pytest.raises(ValueError, match="https"):
        did_web("http://example.org")


def test_the_did_document_lists_every_key_for_assertions(world: IssuerWorld) -> None:
    rotated = world.keys.rotate(KeyAlgorithm.ED25519, ISSUED_AT + timedelta(days=1))
    document = did_document(world.did, rotated.public_keys())
    assert document["id"] == world.did
    types = [method["type"] for method in document["verificationMethod"]]
    assert types == ["Multikey", "JsonWebKey", "Multikey"]
    assert document["assertionMethod"] == [method["id"] for method in document["verificationMethod"]]
    assert all(method["controller"] == world.did for method in document["verificationMethod"])
    multikeys = [
        method["publicKeyMultibase"]
        for method in document["verificationMethod"]
        if "publicKeyMultibase" in method
    ]
    assert all(key.startswith("z6Mk") for key in multikeys)
    # a retired key is still listed, unmarked: what it signed before its retirement still verifies
    assert not any("revoked" in method for method in document["verificationMethod"])


def test_a_revoked_key_is_published_with_its_revocation_date(world: IssuerWorld) -> None:
    ed25519_id = world.keys.current(KeyAlgorithm.ED25519).key_id
    document = did_document(world.did, world.keys.revoke(ed25519_id, ISSUED_AT).public_keys())
    revoked = [method for method in document["verificationMethod"] if "revoked" in method]
    assert [method["id"] for method in revoked] == [f"{world.did}#{ed25519_id}"]
    assert revoked[0]["revoked"] == "2026-12-01T09:30:00Z"
    assert TrustedKeys.from_document(document).find(revoked[0]["id"]).revoked_at == ISSUED_AT  # type: ignore[union-attr]


def test_the_did_document_uses_only_defined_terms(world: IssuerWorld) -> None:
    document = did_document(world.did, world.keys.revoke(world.keys.keys[0].key_id, ISSUED_AT).public_keys())
    safe_expand(document)


def test_did_key_resolves_offline_to_its_own_key() -> None:
    public_key = generate_ed25519_key(ISSUED_AT).public_key()
    did = did_key(public_key)
    document = resolve_did_key(did)
    assert did == f"did:key:{public_key.multikey}"
    assert document["verificationMethod"][0]["publicKeyMultibase"] == public_key.multikey
    assert document["assertionMethod"] == [f"{did}#{public_key.multikey}"]
    trusted = TrustedKeys.from_document(document)
    found = trusted.find(f"{did}#{public_key.multikey}")
    assert found is not None and found.multikey == public_key.multikey
    safe_expand(document)


def test_a_did_document_cannot_vouch_for_a_key_of_another_controller(world: IssuerWorld) -> None:
    document = did_document(world.did, world.keys.public_keys())
    document["verificationMethod"][0]["controller"] = "did:web:attacker.example"
    with pytest.raises(MalformedCredential, match=r"controlled by did:web:attacker\.example"):
        TrustedKeys.from_document(document)


def test_keys_listed_but_not_for_assertions_are_not_trusted(world: IssuerWorld) -> None:
    document = did_document(world.did, world.keys.public_keys())
    first = document["assertionMethod"].pop(0)
    assert TrustedKeys.from_document(document).find(first) is None
