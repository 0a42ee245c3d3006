"""The 1EdTech OB 3.0 test vector: our canonical forms, hashes and signature check agree with theirs."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grader.credentials import Outcome, TrustedKeys, verify
from grader.credentials.data_integrity import hash_data, read_proof
from grader.credentials.data_integrity import verify as verify_proof
from grader.credentials.multiformats import ed25519_multikey, multibase_decode

VECTORS = Path(__file__).parent / "vectors"


def vector(name: str) -> Any:
    text = (VECTORS / f"1edtech-ob3-ldp-{name}").read_text()
    return json.loads(text) if name.endswith(".json") else text


def test_the_canonical_document_and_proof_options_match_the_vector_byte_for_byte() -> None:
    signed = vector("signed.json")
    data = hash_data(signed, read_proof(signed))
    assert data.document_canonical == vector("document-canon.txt")
    assert data.proof_canonical == vector("proof-canon.txt")


def test_the_hashes_and_the_signature_are_the_vectors() -> None:
    signed = vector("signed.json")
    expected = vector("expected.json")
    data = hash_data(signed, read_proof(signed))
    assert data.document_hash.hex() == expected["documentHashHex"]
    assert data.proof_hash.hex() == expected["proofHashHex"]
    assert multibase_decode(signed["proof"]["proofValue"]).hex() == expected["signatureHex"]


def test_the_controller_documents_multikey_is_the_vectors_public_key() -> None:
    controller = vector("controller.json")
    expected = vector("expected.json")
    assert controller["assertionMethod"][0]["publicKeyMultibase"] == ed25519_multikey(
        bytes.fromhex(expected["publicKeyHex"])
    )


def test_the_vectors_signature_verifies_with_its_controller_documents_key() -> None:
    signed = vector("signed.json")
    trusted = TrustedKeys.from_document(vector("controller.json"))
    public_key = trusted.find(signed["proof"]["verificationMethod"])
    assert public_key is not None
    assert verify_proof(signed, public_key).valid


def test_verify_accepts_the_vector_and_says_why_each_check_holds() -> None:
    report = verify(vector("signed.json"), vector("controller.json"), now=datetime(2026, 12, 1, tzinfo=UTC))
    assert report.verified, report.lines()
    assert [check.outcome for check in report.checks] == [
        Outcome.PASSED,
        Outcome.PASSED,
        Outcome.PASSED,
        Outcome.NOT_CHECKED,
    ]
    assert "z6MkjZRZv3aez3r18pB1RBFJR1kwUVJ5jHt92JmQwXbd5hwi" in report.check("proof").detail


def test_the_vector_with_one_word_changed_no_longer_verifies() -> None:
    tampered = copy.deepcopy(vector("signed.json"))
    tampered["credentialSubject"]["achievement"]["name"] = "Teamwork (gold)"
    report = verify(tampered, vector("controller.json"), now=datetime(2026, 12, 1, tzinfo=UTC))
    assert not report.verified
    assert report.check("proof").outcome is Outcome.FAILED
    assert "does not match" in report.check("proof").detail
