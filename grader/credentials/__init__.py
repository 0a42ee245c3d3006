"""The credential's signing core: Open Badges 3.0 credentials, signed two ways, verifiable offline.

No Flask, no Celery, no database: the service turns an award into the dataclasses of `document`, and this
package builds the `OpenBadgeCredential`, signs it (an `eddsa-rdfc-2022` Data Integrity proof with the
issuer's Ed25519 key, and a VC-JWT with its RSA key), keeps the issuer's keys and DID documents, the
Bitstring Status Lists that revoke and suspend, and verifies any of it with each check in words.

The modules, in the order a credential meets them:
- `keys`: Ed25519 and RSA keys, the rotating key set, encrypted at rest;
- `did`: did:web and did:key, DID documents, the keys a verifier trusts;
- `document`: the dataclasses and the OpenBadgeCredential builder;
- `linked_data`: the shipped JSON-LD contexts, safe mode, RDFC-1.0 canonicalization;
- `data_integrity`, `vc_jwt`: the two proof formats;
- `status_list`: Bitstring Status List v1.0;
- `verify`: structure, proof, dates and status of a credential handed in.

See docs/credentials.md.
"""

from __future__ import annotations

from grader.credentials.did import TrustedKeys, did_document, did_key, did_web, resolve_did_key
from grader.credentials.document import (
    Achievement,
    Alignment,
    CriterionResult,
    EvidenceItem,
    Image,
    Issuer,
    Recipient,
    RequirementResult,
    ResultStatus,
    RubricLevel,
    StatusEntry,
    StatusPurpose,
    build_credential,
)
from grader.credentials.keys import KeyAlgorithm, KeySet, PublicKey, SigningKey
from grader.credentials.status_list import StatusList, build_status_list_credential
from grader.credentials.verify import Check, Outcome, VerificationReport, verify

__all__ = [
    "Achievement",
    "Alignment",
    "Check",
    "CriterionResult",
    "EvidenceItem",
    "Image",
    "Issuer",
    "KeyAlgorithm",
    "KeySet",
    "Outcome",
    "PublicKey",
    "Recipient",
    "RequirementResult",
    "ResultStatus",
    "RubricLevel",
    "SigningKey",
    "StatusEntry",
    "StatusList",
    "StatusPurpose",
    "TrustedKeys",
    "VerificationReport",
    "build_credential",
    "build_status_list_credential",
    "did_document",
    "did_key",
    "did_web",
    "resolve_did_key",
    "verify",
]
