"""VC-JWT as Open Badges 3.0 section 8.2 defines it, signed RS256.

The JOSE header has only `alg` (RS256), `typ` ("JWT") and either `kid` (the verification method's DID
URL, which dereferences to the JWK in the DID document) or `jwk` (the public key itself). The payload is
the credential itself, without any embedded proof, plus the registered claims OB 3.0 asks for: `iss` the
issuer's id, `jti` the credential's id, `nbf` its validFrom, `sub` the subject's id (or, when the subject
is known only by a hashed identifier, that identifier's `identityHash`), and `exp` its validUntil when
there is one. Verifying checks the signature, then that every claim says what the credential says.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry

from grader.credentials.dates import parse_datetime
from grader.credentials.did import TrustedKeys
from grader.credentials.errors import MalformedCredential
from grader.credentials.keys import PublicKey, SigningKey, jwk_thumbprint
from grader.credentials.linked_data import JsonObject

ALGORITHM = "RS256"
ALLOWED_HEADER = {"alg", "typ", "kid", "jwk"}
# A credential is kilobytes; refuse anything far larger before decoding a byte of it.
MAX_TOKEN_CHARS = 1_000_000
JWT_CLAIMS = ("iss", "jti", "nbf", "sub", "exp")


class _CredentialRegistry(JWSRegistry):
    # joserfc's default 512-character header has no room for an embedded 2048-bit `jwk`.
    max_header_length = 4096
    max_payload_length = MAX_TOKEN_CHARS


REGISTRY = _CredentialRegistry(algorithms=[ALGORITHM])


def subject_claim(credential: JsonObject) -> str:
    subject = credential.get("credentialSubject")
    if not isinstance(subject, dict):
        raise MalformedCredential(
            "credentialSubject must be an object", details={"field": "credentialSubject"}
        )
    if isinstance(subject.get("id"), str):
        return str(subject["id"])
    identifiers = subject.get("identifier")
    first = identifiers[0] if isinstance(identifiers, list) and identifiers else identifiers
    if isinstance(first, dict) and isinstance(first.get("identityHash"), str):
        return str(first["identityHash"])
    raise MalformedCredential(
        "credentialSubject has neither an id nor an identifier", details={"field": "credentialSubject"}
    )


def claims_for(credential: JsonObject) -> JsonObject:
    """The registered claims OB 3.0 section 8.2 derives from a credential."""
    issuer = credential.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, dict) else issuer
    claims: JsonObject = {
        "iss": issuer_id,
        "jti": credential.get("id"),
        "nbf": int(parse_datetime(credential.get("validFrom"), "validFrom").timestamp()),
        "sub": subject_claim(credential),
    }
    if "validUntil" in credential:
        claims["exp"] = int(parse_datetime(credential["validUntil"], "validUntil").timestamp())
    return claims


def sign(credential: JsonObject, key: SigningKey, *, kid: str | None = None, embed_jwk: bool = False) -> str:
    """The credential as a compact JWS (VC-JWT), naming its key by `kid` or embedding it as `jwk`."""
    if not isinstance(key.private_key, rsa.RSAPrivateKey):
        raise ValueError("VC-JWT is signed here with an RSA key (RS256)")
    if not key.active:
        raise ValueError(f"key {key.key_id} is retired or revoked and signs nothing new")
    if (kid is None) == (not embed_jwk):
        raise ValueError("name the key by kid or embed it as jwk, one of the two")
    header: JsonObject = {"alg": ALGORITHM, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    else:
        header["jwk"] = key.public_key().jwk
    payload = {name: value for name, value in credential.items() if name != "proof"}
    payload |= claims_for(payload)
    return jwt.encode(
        header, payload, RSAKey.import_key(key.private_key), registry=REGISTRY, default_type=None
    )


@dataclass(frozen=True)
class JwtCheck:
    valid: bool
    reason: str
    credential: JsonObject | None = None
    key_id: str | None = None


def _segment(token: str, index: int, name: str) -> Any:
    try:
        part = token.split(".")[index]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, binascii.Error, RecursionError) as error:
        raise MalformedCredential(
            f"the JWT's {name} is not base64url JSON", details={"field": name}
        ) from error


def read_unverified(token: str) -> tuple[JsonObject, JsonObject]:
    """Header and payload of a compact JWS, not yet verified: only to choose the key and report."""
    if len(token) > MAX_TOKEN_CHARS:
        raise MalformedCredential("the JWT is too large to be a credential", details={"field": "jwt"})
    if token.count(".") != 2:
        raise MalformedCredential(
            "a VC-JWT is three base64url parts separated by dots", details={"field": "jwt"}
        )
    header, payload = _segment(token, 0, "header"), _segment(token, 1, "payload")
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise MalformedCredential(
            "the JWT's header and payload must be JSON objects", details={"field": "jwt"}
        )
    return header, payload


def _key_for(header: JsonObject, trusted: TrustedKeys) -> tuple[str, PublicKey] | str:
    if "kid" in header:
        kid = str(header["kid"])
        public_key = trusted.find(kid)
        if public_key is None:
            return f"the JWT is signed by {kid}, which is not one of the issuer's keys"
        return kid, public_key
    if "jwk" in header:
        thumbprint = jwk_thumbprint(header["jwk"]) if isinstance(header["jwk"], dict) else ""
        for method_id, public_key in trusted.methods.items():
            if public_key.key_id == thumbprint:
                return method_id, public_key
        return "the JWT embeds a key that is not one of the issuer's keys"
    return "the JWT header names no key (neither kid nor jwk)"


def verify(token: str, trusted: TrustedKeys) -> JwtCheck:
    """Check a VC-JWT's header, RS256 signature and claims; the credential comes back when all hold."""
    header, payload = read_unverified(token)
    extra = sorted(set(header) - ALLOWED_HEADER)
    if extra:
        return JwtCheck(False, f"the JWT header has {', '.join(extra)}; OB 3.0 allows only alg, kid/jwk, typ")
    if header.get("alg") != ALGORITHM:
        return JwtCheck(False, f"the JWT is signed with {header.get('alg')!r}; only RS256 is accepted")
    if header.get("typ", "JWT") != "JWT":
        return JwtCheck(False, f"the JWT typ is {header.get('typ')!r}, not 'JWT'")
    found = _key_for(header, trusted)
    if isinstance(found, str):
        return JwtCheck(False, found)
    method_id, public_key = found
    if not isinstance(public_key.key, rsa.RSAPublicKey):
        return JwtCheck(False, f"{method_id} is not an RSA key", key_id=method_id)
    try:
        jwt.decode(token, RSAKey.import_key(public_key.key), registry=REGISTRY)
    except BadSignatureError:
        return JwtCheck(
            False,
            f"the JWT signature does not match {method_id}: changed after signing, or signed by another key",
            key_id=method_id,
        )
    except JoseError as error:
        return JwtCheck(
            False, f"the JWT cannot be checked: {error.error} {error.description}".strip(), key_id=method_id
        )
    credential = {name: value for name, value in payload.items() if name not in JWT_CLAIMS}
    try:
        expected = claims_for(credential)
    except MalformedCredential as error:
        return JwtCheck(False, f"the JWT's credential is malformed: {error.message}", key_id=method_id)
    for claim in JWT_CLAIMS:
        if payload.get(claim) != expected.get(claim):
            return JwtCheck(
                False,
                f"the JWT claim {claim} is {payload.get(claim)!r} but the credential says "
                f"{expected.get(claim)!r}",
                key_id=method_id,
            )
    return JwtCheck(
        True, f"RS256 signature by {method_id} is valid and its claims match", credential, method_id
    )
