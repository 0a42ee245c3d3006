"""Signing one credential both ways with the issuer's current keys: what the service stores per award."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from grader.credentials import data_integrity, vc_jwt
from grader.credentials.did import verification_method_id
from grader.credentials.keys import KeyAlgorithm, KeySet
from grader.credentials.linked_data import JsonObject


@dataclass(frozen=True)
class SignedCredential:
    json_ld: JsonObject
    jwt: str
    data_integrity_method: str
    jwt_method: str


def sign_both(
    credential: JsonObject, key_set: KeySet, controller: str, created: datetime
) -> SignedCredential:
    """The credential with an eddsa-rdfc-2022 proof, and as a VC-JWT, by the set's current keys.

    `controller` is the issuer's DID (`issuer.id`); both keys are named as DID URLs under it, which is
    what the DID document lists. For a did:key issuer the RSA key is not in the DID document, so the JWT
    then embeds its key (`jwk`) instead of naming it.
    """
    ed25519_key = key_set.current(KeyAlgorithm.ED25519)
    rsa_key = key_set.current(KeyAlgorithm.RS256)
    ed25519_method = verification_method_id(controller, ed25519_key.public_key())
    rsa_method = verification_method_id(controller, rsa_key.public_key())
    signed = data_integrity.sign(credential, ed25519_key, ed25519_method, created)
    if controller.startswith("did:key:"):
        token = vc_jwt.sign(credential, rsa_key, embed_jwk=True)
    else:
        token = vc_jwt.sign(credential, rsa_key, kid=rsa_method)
    return SignedCredential(signed, token, ed25519_method, rsa_method)
