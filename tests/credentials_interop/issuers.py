"""Issuers for the interoperability tests: did:web as in production, did:key as in `grader demo`.

Each signs with the project's own core (`grader.credentials`), exactly as the service does, and publishes
what a third party would be handed: its DID document and its signed status lists. Credentials are dated
an hour ago, because the independent verifier checks the status lists' dates against the real clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from grader.credentials import (
    Image,
    Issuer,
    KeyAlgorithm,
    KeySet,
    StatusList,
    StatusPurpose,
    build_status_list_credential,
    data_integrity,
    did_document,
    did_key,
    did_web,
)
from grader.credentials.did import verification_method_id
from grader.credentials.issuing import SignedCredential, sign_both
from grader.credentials.keys import generate_ed25519_key, generate_rsa_key
from tests.unit.credentials.sample_award import (
    BASE_URL,
    REVOCATION_LIST,
    SUSPENSION_LIST,
    IssuerWorld,
    make_credential,
)

ISSUED_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
STATUS_INDEX = 42


@dataclass(frozen=True)
class PublishingIssuer:
    """An issuer with its keys, and what it publishes: the DID document and signed status lists."""

    kind: str
    world: IssuerWorld

    @property
    def did(self) -> str:
        return self.world.did

    @property
    def did_document(self) -> dict[str, Any]:
        """Every key of the set; for did:key this is the only place its RSA (JWT) key is published."""
        return did_document(self.did, self.world.keys.public_keys())

    def credential(self, **changes: Any) -> dict[str, Any]:
        return make_credential(self.world, **({"valid_from": ISSUED_AT} | changes))

    def sign(self, credential: dict[str, Any], created: datetime = ISSUED_AT) -> SignedCredential:
        return sign_both(credential, self.world.keys, self.did, created)

    def status_list(self, purpose: StatusPurpose, set_bits: tuple[int, ...] = ()) -> dict[str, Any]:
        bits = StatusList()
        for index in set_bits:
            bits.set(index)
        url = REVOCATION_LIST if purpose is StatusPurpose.REVOCATION else SUSPENSION_LIST
        unsigned = build_status_list_credential(
            list_url=url, issuer_id=self.did, purpose=purpose, status_list=bits, valid_from=ISSUED_AT
        )
        key = self.world.keys.current(KeyAlgorithm.ED25519)
        return data_integrity.sign(
            unsigned, key, verification_method_id(self.did, key.public_key()), ISSUED_AT
        )


def _issuer_profile(did: str) -> Issuer:
    return Issuer(did, "Example Academy", BASE_URL, "registrar@example.org", Image(f"{BASE_URL}/issuer.png"))


def make_issuer(kind: str) -> PublishingIssuer:
    created = ISSUED_AT - timedelta(days=30)
    if kind == "did:web":
        did = did_web(BASE_URL)
        keys = KeySet.create(created, rsa_bits=2048)
    else:
        keys = KeySet((generate_ed25519_key(created), generate_rsa_key(created, 2048)))
        did = did_key(keys.current(KeyAlgorithm.ED25519).public_key())
    return PublishingIssuer(kind, IssuerWorld(did, keys, _issuer_profile(did)))
