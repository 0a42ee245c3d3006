"""Data Integrity proofs with the `eddsa-rdfc-2022` cryptosuite (W3C VC Data Integrity EdDSA 1.0).

Signing: canonicalise the document without its proof, and the proof options (the proof without
`proofValue`, under the document's `@context`), with RDFC-1.0; hash each with SHA-256; sign
proofHash + documentHash with Ed25519; `proofValue` is the signature in base58btc multibase. Verifying
recomputes both hashes the same way and checks the signature against the key the proof names.

Both canonicalisations run in JSON-LD safe mode, so a proof never covers a document some of whose
statements the canonical form would silently leave out.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from datetime import datetime

from grader.credentials.dates import format_datetime, parse_datetime
from grader.credentials.errors import MalformedCredential
from grader.credentials.keys import KeyAlgorithm, PublicKey, SigningKey
from grader.credentials.linked_data import JsonObject, canonicalize
from grader.credentials.multiformats import multibase_base58btc, multibase_decode

PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-rdfc-2022"
ASSERTION_METHOD = "assertionMethod"


@dataclass(frozen=True)
class HashData:
    """What an eddsa-rdfc-2022 signature covers, kept apart so tests can compare each stage."""

    document_canonical: str
    proof_canonical: str

    @property
    def document_hash(self) -> bytes:
        return hashlib.sha256(self.document_canonical.encode("utf-8")).digest()

    @property
    def proof_hash(self) -> bytes:
        return hashlib.sha256(self.proof_canonical.encode("utf-8")).digest()

    @property
    def signed_bytes(self) -> bytes:
        return self.proof_hash + self.document_hash


def hash_data(document: JsonObject, proof_options: JsonObject) -> HashData:
    """Canonical forms of the unsigned document and of the proof options under its context."""
    unsigned = {key: value for key, value in document.items() if key != "proof"}
    options = {key: value for key, value in proof_options.items() if key not in {"proofValue", "@context"}}
    options = {"@context": document.get("@context"), **options}
    return HashData(canonicalize(unsigned), canonicalize(options))


def sign(document: JsonObject, key: SigningKey, verification_method: str, created: datetime) -> JsonObject:
    """A copy of `document` with an eddsa-rdfc-2022 proof made by `key`."""
    if key.algorithm is not KeyAlgorithm.ED25519:
        raise ValueError("eddsa-rdfc-2022 signs with an Ed25519 key")
    if not key.active:
        raise ValueError(f"key {key.key_id} is retired or revoked and signs nothing new")
    proof: JsonObject = {
        "type": PROOF_TYPE,
        "created": format_datetime(created),
        "verificationMethod": verification_method,
        "cryptosuite": CRYPTOSUITE,
        "proofPurpose": ASSERTION_METHOD,
    }
    data = hash_data(document, proof)
    proof["proofValue"] = multibase_base58btc(key.sign(data.signed_bytes))
    signed = copy.deepcopy({key_name: value for key_name, value in document.items() if key_name != "proof"})
    signed["proof"] = proof
    return signed


@dataclass(frozen=True)
class ProofCheck:
    """The outcome of checking one proof; `reason` says in words why it failed."""

    valid: bool
    reason: str
    verification_method: str | None = None
    created: datetime | None = None


def read_proof(document: JsonObject) -> JsonObject:
    proof = document.get("proof")
    if isinstance(proof, list):
        if len(proof) != 1:
            raise MalformedCredential("the credential must carry exactly one Data Integrity proof")
        proof = proof[0]
    if not isinstance(proof, dict):
        raise MalformedCredential("the credential has no Data Integrity proof", details={"field": "proof"})
    return proof


def verify(document: JsonObject, public_key: PublicKey) -> ProofCheck:
    """Check the document's eddsa-rdfc-2022 proof against `public_key` (the key its method names)."""
    proof = read_proof(document)
    method = proof.get("verificationMethod")
    if proof.get("type") != PROOF_TYPE or proof.get("cryptosuite") != CRYPTOSUITE:
        return ProofCheck(False, f"the proof is not a {PROOF_TYPE} with cryptosuite {CRYPTOSUITE}")
    if proof.get("proofPurpose") != ASSERTION_METHOD:
        return ProofCheck(False, f"the proof's purpose is {proof.get('proofPurpose')!r}, not assertionMethod")
    if public_key.algorithm is not KeyAlgorithm.ED25519:
        return ProofCheck(False, f"{method} is not an Ed25519 key")
    value = proof.get("proofValue")
    if not isinstance(value, str) or not value.startswith("z"):
        return ProofCheck(False, "proofValue is not base58btc multibase")
    created = parse_datetime(proof.get("created"), "proof.created") if "created" in proof else None
    signature = multibase_decode(value)
    if len(signature) != 64:
        return ProofCheck(False, "proofValue is not a 64-byte Ed25519 signature")
    if not public_key.verify(signature, hash_data(document, proof).signed_bytes):
        return ProofCheck(
            False,
            f"the signature does not match the document and {method}: the credential was changed after "
            "signing, or signed by another key",
            str(method),
            created,
        )
    return ProofCheck(True, f"eddsa-rdfc-2022 signature by {method} is valid", str(method), created)
