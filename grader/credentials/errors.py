"""Errors of the credential library, in the service's one hierarchy (`grader.errors`).

A credential someone hands us that cannot even be read (not JSON, bad multibase, a term no shipped context
defines) is their input at fault: `MalformedCredential` and its kinds, 4xx. A key store that does not open
with the secret we were given is our fault: `KeyStoreError`, 500. A credential that reads well but does not
verify is neither: `verify()` reports that as a failed check, not as an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grader.errors import GraderError, InvalidInput


class MalformedCredential(InvalidInput):
    """The credential, proof or key cannot be read as what it claims to be."""

    code = "malformed_credential"
    http_status = 422


class UnsafeJsonLd(MalformedCredential):
    """JSON-LD safe mode: a term or IRI that the contexts do not define would be dropped or left relative."""

    code = "jsonld_unsafe"

    def __init__(self, term: str, where: str, reason: str) -> None:
        super().__init__(
            f"JSON-LD safe mode: {term!r} at {where} {reason}", details={"term": term, "path": where}
        )
        self.term = term
        self.where = where


class ContextNotShipped(MalformedCredential):
    """The document names a JSON-LD context this package does not ship; contexts are never fetched."""

    code = "jsonld_context_refused"

    def __init__(self, url: str) -> None:
        super().__init__(
            f"the JSON-LD context {url} is not one this verifier ships, and contexts are never fetched",
            details={"context": url},
        )
        self.url = url


class KeyStoreError(GraderError):
    """The issuer's key store cannot be opened or used (wrong secret, damaged file, no current key)."""

    code = "key_store"
    http_status = 500

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
