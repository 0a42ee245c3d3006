"""The issuer's keys: Ed25519 for Data Integrity proofs, RSA for VC-JWT, kept as a set that rotates.

A `SigningKey` holds a private key and its lifecycle: `created_at`, `retired_at` (rotated out: it signs
nothing new, and what it signed before stays valid) and `revoked_at` (compromised: nothing it signed is to
be trusted). A `KeySet` has at most one current key per algorithm and keeps every retired one, because
credentials signed before a rotation must still verify.

At rest the set is JSON in which every private key is a PKCS#8 PEM encrypted with the caller's secret
(cryptography's `BestAvailableEncryption`); the file alone gives nothing away. Public keys are published
as Multikey (Ed25519) and JWK (RSA); a key's id is its Multikey for Ed25519 (as did:key does) and its RFC
7638 JWK thumbprint for RSA, so an id always names exactly one key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from grader.credentials.dates import format_datetime, parse_datetime
from grader.credentials.errors import KeyStoreError, MalformedCredential
from grader.credentials.multiformats import ed25519_multikey, ed25519_public_key_from_multikey

MINIMUM_RSA_BITS = 2048
DEFAULT_RSA_BITS = 3072
# A secret shorter than this is a password, not a key: the PEM's key derivation cannot make it strong.
MINIMUM_SECRET_BYTES = 16
KEY_STORE_FORMAT = 1

PublicKeyObject = ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKeyObject = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


class KeyAlgorithm(StrEnum):
    ED25519 = "Ed25519"
    RS256 = "RS256"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def rsa_public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _b64url(_int_bytes(numbers.n)), "e": _b64url(_int_bytes(numbers.e))}


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 of the required members in lexicographic order, without whitespace."""
    if jwk.get("kty") != "RSA":
        raise MalformedCredential("only RSA JSON Web Keys are used here", details={"field": "kty"})
    if not isinstance(jwk.get("e"), str) or not isinstance(jwk.get("n"), str):
        raise MalformedCredential("an RSA JSON Web Key needs its n and e", details={"field": "jwk"})
    required = {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode("ascii")
    return _b64url(hashlib.sha256(canonical).digest())


def rsa_public_key_from_jwk(jwk: Any) -> rsa.RSAPublicKey:
    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
        raise MalformedCredential(
            "publicKeyJwk must be an RSA JSON Web Key", details={"field": "publicKeyJwk"}
        )
    if "d" in jwk or "p" in jwk:
        raise MalformedCredential(
            "publicKeyJwk carries private key material and is refused", details={"field": "publicKeyJwk"}
        )
    try:
        modulus = int.from_bytes(_b64url_decode(str(jwk["n"])), "big")
        exponent = int.from_bytes(_b64url_decode(str(jwk["e"])), "big")
        public_key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except (KeyError, ValueError) as error:
        raise MalformedCredential(
            "publicKeyJwk is not a valid RSA key", details={"field": "publicKeyJwk"}
        ) from error
    if public_key.key_size < MINIMUM_RSA_BITS:
        raise MalformedCredential(
            f"the RSA key has {public_key.key_size} bits; at least {MINIMUM_RSA_BITS} are required",
            details={"field": "publicKeyJwk"},
        )
    return public_key


@dataclass(frozen=True)
class PublicKey:
    """A public key as a verifier holds it, with what it knows of the key's lifecycle."""

    key_id: str
    algorithm: KeyAlgorithm
    key: PublicKeyObject
    created_at: datetime | None = None
    retired_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def multikey(self) -> str:
        if not isinstance(self.key, ed25519.Ed25519PublicKey):
            raise ValueError("only Ed25519 keys have a Multikey form here")
        return ed25519_multikey(
            self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )

    @property
    def jwk(self) -> dict[str, str]:
        if not isinstance(self.key, rsa.RSAPublicKey):
            raise ValueError("only RSA keys are published as JWK here")
        return rsa_public_jwk(self.key)

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, message)
            else:
                self.key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    @classmethod
    def from_multikey(cls, multikey: str, **lifecycle: datetime | None) -> PublicKey:
        raw = ed25519_public_key_from_multikey(multikey)
        return cls(
            multikey, KeyAlgorithm.ED25519, ed25519.Ed25519PublicKey.from_public_bytes(raw), **lifecycle
        )

    @classmethod
    def from_jwk(cls, jwk: Any, **lifecycle: datetime | None) -> PublicKey:
        public_key = rsa_public_key_from_jwk(jwk)
        return cls(jwk_thumbprint(rsa_public_jwk(public_key)), KeyAlgorithm.RS256, public_key, **lifecycle)


@dataclass(frozen=True)
class SigningKey:
    """A private key of the issuer and its lifecycle."""

    algorithm: KeyAlgorithm
    private_key: PrivateKeyObject = field(repr=False)
    created_at: datetime
    retired_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def key_id(self) -> str:
        return self.public_key().key_id

    @property
    def active(self) -> bool:
        return self.retired_at is None and self.revoked_at is None

    def public_key(self) -> PublicKey:
        lifecycle = {
            "created_at": self.created_at,
            "retired_at": self.retired_at,
            "revoked_at": self.revoked_at,
        }
        public = self.private_key.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return PublicKey(ed25519_multikey(raw), KeyAlgorithm.ED25519, public, **lifecycle)
        return PublicKey(jwk_thumbprint(rsa_public_jwk(public)), KeyAlgorithm.RS256, public, **lifecycle)

    def sign(self, message: bytes) -> bytes:
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            return self.private_key.sign(message)
        return self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())


def generate_ed25519_key(now: datetime) -> SigningKey:
    return SigningKey(KeyAlgorithm.ED25519, ed25519.Ed25519PrivateKey.generate(), created_at=now)


def generate_rsa_key(now: datetime, bits: int = DEFAULT_RSA_BITS) -> SigningKey:
    if bits < MINIMUM_RSA_BITS:
        raise ValueError(f"RSA keys for RS256 need at least {MINIMUM_RSA_BITS} bits")
    return SigningKey(KeyAlgorithm.RS256, rsa.generate_private_key(65537, bits), created_at=now)


def generate_key(algorithm: KeyAlgorithm, now: datetime, rsa_bits: int = DEFAULT_RSA_BITS) -> SigningKey:
    if algorithm is KeyAlgorithm.ED25519:
        return generate_ed25519_key(now)
    return generate_rsa_key(now, rsa_bits)


def _secret_bytes(secret: bytes | str) -> bytes:
    encoded = secret.encode("utf-8") if isinstance(secret, str) else secret
    if len(encoded) < MINIMUM_SECRET_BYTES:
        raise KeyStoreError(f"the key store secret must have at least {MINIMUM_SECRET_BYTES} bytes")
    return encoded


@dataclass(frozen=True)
class KeySet:
    """Every key the issuer has had: at most one active key per algorithm, and the retired ones."""

    keys: tuple[SigningKey, ...] = ()

    @classmethod
    def create(cls, now: datetime, rsa_bits: int = DEFAULT_RSA_BITS) -> KeySet:
        return cls((generate_ed25519_key(now), generate_rsa_key(now, rsa_bits)))

    def current(self, algorithm: KeyAlgorithm) -> SigningKey:
        active = [key for key in self.keys if key.algorithm is algorithm and key.active]
        if not active:
            raise KeyStoreError(
                f"the key set has no current {algorithm} key", details={"algorithm": algorithm}
            )
        return max(active, key=lambda key: key.created_at)

    def find(self, key_id: str) -> SigningKey | None:
        return next((key for key in self.keys if key.key_id == key_id), None)

    def rotate(self, algorithm: KeyAlgorithm, now: datetime, rsa_bits: int = DEFAULT_RSA_BITS) -> KeySet:
        """A new current key for `algorithm`; the one it replaces is retired at `now` and kept."""
        retired = tuple(
            replace(key, retired_at=now) if key.algorithm is algorithm and key.active else key
            for key in self.keys
        )
        return KeySet((*retired, generate_key(algorithm, now, rsa_bits)))

    def revoke(self, key_id: str, at: datetime) -> KeySet:
        """Mark a key compromised from `at`: verifiers then trust nothing it signed."""
        if self.find(key_id) is None:
            raise KeyStoreError(f"no key {key_id} in the key set", details={"key_id": key_id})
        return KeySet(
            tuple(replace(key, revoked_at=at) if key.key_id == key_id else key for key in self.keys)
        )

    def public_keys(self) -> list[PublicKey]:
        return [key.public_key() for key in self.keys]

    def to_json(self, secret: bytes | str) -> str:
        """The set as JSON with every private key encrypted under `secret`."""
        encryption = serialization.BestAvailableEncryption(_secret_bytes(secret))
        entries = []
        for key in self.keys:
            pem = key.private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
            entries.append(
                {
                    "key_id": key.key_id,
                    "algorithm": str(key.algorithm),
                    "created_at": format_datetime(key.created_at),
                    "retired_at": format_datetime(key.retired_at) if key.retired_at else None,
                    "revoked_at": format_datetime(key.revoked_at) if key.revoked_at else None,
                    "private_key_pem": pem.decode("ascii"),
                }
            )
        return json.dumps({"format": KEY_STORE_FORMAT, "keys": entries}, indent=2)

    @classmethod
    def from_json(cls, text: str, secret: bytes | str) -> KeySet:
        password = _secret_bytes(secret)
        try:
            stored = json.loads(text)
            if stored.get("format") != KEY_STORE_FORMAT:
                raise KeyStoreError(f"the key store is not in format {KEY_STORE_FORMAT}")
            entries = stored["keys"]
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as error:
            raise KeyStoreError("the key store is not a key set written by this service") from error
        keys = []
        for number, entry in enumerate(entries, start=1):
            keys.append(_load_entry(entry, password, number))
        return cls(tuple(keys))


def _load_entry(entry: dict[str, Any], password: bytes, number: int) -> SigningKey:
    try:
        algorithm = KeyAlgorithm(entry["algorithm"])
        private_key = serialization.load_pem_private_key(entry["private_key_pem"].encode("ascii"), password)
    except ValueError as error:
        # cryptography says only "Bad decrypt" for a wrong password; name the likely cause.
        raise KeyStoreError(
            f"key {number} of the key store does not open: wrong secret, or a damaged file",
            details={"key": number},
        ) from error
    except (KeyError, TypeError) as error:
        raise KeyStoreError(
            f"key {number} of the key store is incomplete", details={"key": number}
        ) from error
    expected_type = ed25519.Ed25519PrivateKey if algorithm is KeyAlgorithm.ED25519 else rsa.RSAPrivateKey
    if not isinstance(private_key, expected_type):
        raise KeyStoreError(
            f"key {number} of the key store is not an {algorithm} key", details={"key": number}
        )
    key = SigningKey(
        algorithm,
        private_key,
        created_at=parse_datetime(entry["created_at"], "created_at"),
        retired_at=parse_datetime(entry["retired_at"], "retired_at") if entry.get("retired_at") else None,
        revoked_at=parse_datetime(entry["revoked_at"], "revoked_at") if entry.get("revoked_at") else None,
    )
    if key.key_id != entry.get("key_id"):
        raise KeyStoreError(
            f"key {number} of the key store does not match its key id", details={"key": number}
        )
    return key
