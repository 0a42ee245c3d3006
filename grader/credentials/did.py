"""The issuer's identifiers: `did:web` with its DID document, `did:key` for the demo, resolved offline.

`did:web:example.org` is the DID of `https://example.org`, whose document is served at
`/.well-known/did.json`; a base URL with a path (`https://example.org/org/x`) becomes
`did:web:example.org:org:x`, served at `/org/x/did.json`, and a port is written `%3A`. The document lists
every key of the set, retired ones included, under `verificationMethod` and `assertionMethod`: Ed25519 as
Multikey, RSA as JsonWebKey. A revoked key carries `revoked` (Controlled Identifiers v1), which standard
verifiers read as "trust nothing it signed". Retirement is not published: a retired key still verifies
what it signed before, and only a verifier given the key set itself (`TrustedKeys.from_key_set`) can also
refuse what claims to be signed by it later.

`did:key:z6Mk…` is an Ed25519 public key written as a DID; its document is derived from the key alone,
so it resolves without any network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from grader.credentials.dates import format_datetime, parse_datetime
from grader.credentials.errors import MalformedCredential
from grader.credentials.keys import KeyAlgorithm, KeySet, PublicKey
from grader.credentials.linked_data import CID_V1, DID_V1, MULTIKEY_V1, JsonObject


def did_web(base_url: str) -> str:
    """The did:web of a deployment's base URL: host (and %3A port), then each path part after a colon."""
    parts = urlsplit(base_url)
    if parts.scheme != "https" and not (
        parts.scheme == "http" and parts.hostname in {"localhost", "127.0.0.1"}
    ):
        raise ValueError("did:web needs an https base URL")
    if not parts.hostname:
        raise ValueError("did:web needs a host name")
    host = parts.hostname.lower()
    if parts.port:
        host += quote(f":{parts.port}", safe="")
    path = [quote(part, safe="") for part in parts.path.split("/") if part]
    return ":".join(["did", "web", host, *path])


def did_web_document_url(did: str) -> str:
    """Where a did:web's DID document is served: `/.well-known/did.json`, or `<path>/did.json`."""
    if not did.startswith("did:web:"):
        raise ValueError("not a did:web")
    host, *path = did.removeprefix("did:web:").split(":")
    location = "/".join(unquote(part) for part in path) + "/did.json" if path else ".well-known/did.json"
    return f"https://{unquote(host)}/{location}"


def did_key(public_key: PublicKey) -> str:
    if public_key.algorithm is not KeyAlgorithm.ED25519:
        raise ValueError("did:key is made here from an Ed25519 key only")
    return f"did:key:{public_key.multikey}"


def verification_method_id(controller: str, public_key: PublicKey) -> str:
    return f"{controller}#{public_key.key_id}"


def _verification_method(controller: str, public_key: PublicKey) -> JsonObject:
    method: JsonObject = {"id": verification_method_id(controller, public_key), "controller": controller}
    if public_key.algorithm is KeyAlgorithm.ED25519:
        method |= {"type": "Multikey", "publicKeyMultibase": public_key.multikey}
    else:
        method |= {"type": "JsonWebKey", "publicKeyJwk": public_key.jwk}
    if public_key.revoked_at:
        method["revoked"] = format_datetime(public_key.revoked_at)
    return method


def did_document(did: str, public_keys: Iterable[PublicKey]) -> JsonObject:
    """The DID document of `did` listing every key for assertions (credentials), oldest first."""
    methods = [_verification_method(did, key) for key in public_keys]
    return {
        "@context": [DID_V1, CID_V1],
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": [method["id"] for method in methods],
    }


def resolve_did_key(did: str) -> JsonObject:
    """The DID document of a did:key, derived from the key in it (no network)."""
    if not did.startswith("did:key:"):
        raise MalformedCredential(f"{did[:80]} is not a did:key", details={"field": "issuer"})
    multikey = did.removeprefix("did:key:").split("#", 1)[0]
    public_key = PublicKey.from_multikey(multikey)
    method_id = f"did:key:{multikey}#{multikey}"
    return {
        "@context": [DID_V1, MULTIKEY_V1],
        "id": f"did:key:{multikey}",
        "verificationMethod": [
            {
                "id": method_id,
                "type": "Multikey",
                "controller": f"did:key:{multikey}",
                "publicKeyMultibase": public_key.multikey,
            }
        ],
        "authentication": [method_id],
        "assertionMethod": [method_id],
        "capabilityDelegation": [method_id],
        "capabilityInvocation": [method_id],
    }


@dataclass(frozen=True)
class TrustedKeys:
    """What a verifier trusts: the controller (the issuer's id) and its assertion keys by method id."""

    controller: str
    methods: Mapping[str, PublicKey] = field(default_factory=dict)

    @classmethod
    def from_key_set(cls, controller: str, key_set: KeySet) -> TrustedKeys:
        """Trust in the issuer's own key set: lifecycle dates (retirement too) are known exactly."""
        return cls.from_public_keys(controller, key_set.public_keys())

    @classmethod
    def from_public_keys(cls, controller: str, public_keys: Iterable[PublicKey]) -> TrustedKeys:
        return cls(controller, {verification_method_id(controller, key): key for key in public_keys})

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> TrustedKeys:
        """Trust in a DID or controller document: the keys its `assertionMethod` lists.

        Methods may be listed under `verificationMethod` and referred to by id, or embedded in
        `assertionMethod` (as the 1EdTech test vector's controller document does).
        """
        controller = document.get("id")
        if not isinstance(controller, str) or not controller:
            raise MalformedCredential("the DID document has no id", details={"field": "id"})
        listed = {
            method["id"]: method
            for method in _as_list(document.get("verificationMethod"))
            if isinstance(method, dict) and isinstance(method.get("id"), str)
        }
        methods: dict[str, PublicKey] = {}
        for entry in _as_list(document.get("assertionMethod")):
            method = listed.get(entry) if isinstance(entry, str) else entry
            if not isinstance(method, dict) or not isinstance(method.get("id"), str):
                continue
            method_id = _absolute_method_id(controller, method["id"])
            if method.get("controller", controller) != controller or not method_id.startswith(
                controller + "#"
            ):
                raise MalformedCredential(
                    f"key {method_id} is controlled by {method.get('controller')}, not by {controller}",
                    details={"field": "controller"},
                )
            methods[method_id] = _public_key_of(method, method_id)
        return cls(controller, methods)

    def find(self, method_id: str) -> PublicKey | None:
        return self.methods.get(_absolute_method_id(self.controller, method_id))


def _absolute_method_id(controller: str, method_id: str) -> str:
    return controller + method_id if method_id.startswith("#") else method_id


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _public_key_of(method: Mapping[str, Any], method_id: str) -> PublicKey:
    revoked = method.get("revoked")
    revoked_at = parse_datetime(revoked, f"{method_id} revoked") if revoked is not None else None
    kind = method.get("type")
    if kind == "Multikey" and isinstance(method.get("publicKeyMultibase"), str):
        return PublicKey.from_multikey(method["publicKeyMultibase"], revoked_at=revoked_at)
    if kind in {"JsonWebKey", "JsonWebKey2020"} and "publicKeyJwk" in method:
        return PublicKey.from_jwk(method["publicKeyJwk"], revoked_at=revoked_at)
    raise MalformedCredential(
        f"key {method_id} is of type {kind!r}; only Multikey (Ed25519) and JsonWebKey (RSA) are supported",
        details={"field": "verificationMethod"},
    )
