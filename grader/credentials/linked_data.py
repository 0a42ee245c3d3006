"""JSON-LD for credentials: the shipped contexts, safe-mode expansion and RDF Dataset Canonicalization.

Contexts are served from `grader/credentials/contexts/` only; any other URL is refused, so processing a
credential never touches the network and a document cannot pull in a context of its choosing.

Safe mode is what 1EdTech's issuer certification checks: expansion must lose nothing. PyLD reports each
property it drops; on top of that, every property, type and node id left after expansion must be an absolute
IRI (or a blank node), because RDF conversion silently discards relative ones. Any such term is an error
naming it and where it was.

Canonicalization is RDFC-1.0 (the W3C name of URDNA2015, which is what PyLD calls it), output as N-Quads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any

from cachetools import LRUCache
from pyld import jsonld
from pyld.context_resolver import ContextResolver

from grader.credentials.errors import ContextNotShipped, MalformedCredential, UnsafeJsonLd

CREDENTIALS_V2 = "https://www.w3.org/ns/credentials/v2"
OPEN_BADGES_V3 = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
DATA_INTEGRITY_V2 = "https://w3id.org/security/data-integrity/v2"
MULTIKEY_V1 = "https://w3id.org/security/multikey/v1"
DID_V1 = "https://www.w3.org/ns/did/v1"
CID_V1 = "https://www.w3.org/ns/cid/v1"
BITSTRING_STATUS_LIST_V1 = "https://www.w3.org/ns/credentials/status/v1"

SHIPPED_CONTEXTS: dict[str, str] = {
    CREDENTIALS_V2: "credentials-v2.jsonld",
    OPEN_BADGES_V3: "ob-v3p0-context-3.0.3.jsonld",
    DATA_INTEGRITY_V2: "data-integrity-v2.jsonld",
    MULTIKEY_V1: "multikey-v1.jsonld",
    DID_V1: "did-v1.jsonld",
    CID_V1: "cid-v1.jsonld",
    BITSTRING_STATUS_LIST_V1: "vc-bitstring-status-list-v1.jsonld",
}

JsonObject = dict[str, Any]

# An OpenBadgeCredential nests about eight levels; JSON-LD processing recurses a few frames per level, so
# a document nested thousands deep would exhaust the stack instead of failing with a reason.
MAX_NESTING = 64

_ABSOLUTE_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


@cache
def shipped_context(url: str) -> JsonObject:
    """The parsed context file shipped for `url`; `ContextNotShipped` for any other URL."""
    name = SHIPPED_CONTEXTS.get(url)
    if name is None:
        raise ContextNotShipped(url)
    text = resources.files("grader.credentials").joinpath("contexts").joinpath(name).read_text("utf-8")
    document: JsonObject = json.loads(text)
    return document


def load_document(url: str, options: Any = None) -> JsonObject:
    """PyLD's document loader: shipped contexts only, never the network."""
    return {"contextUrl": None, "documentUrl": url, "document": shipped_context(url)}


# Resolved contexts cached here, apart from PyLD's process-wide cache, which other callers' loaders fill.
_resolved_contexts: LRUCache[Any, Any] = LRUCache(maxsize=64)


def _options() -> JsonObject:
    return {
        "documentLoader": load_document,
        "contextResolver": ContextResolver(_resolved_contexts, load_document),
        "base": None,
        "processingMode": "json-ld-1.1",
    }


def nesting(value: Any) -> int:
    """How deep `value` nests, counted up to just past MAX_NESTING (without recursing)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_NESTING:
            break
        children = node.values() if isinstance(node, Mapping) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _is_absolute_iri(value: str) -> bool:
    return _ABSOLUTE_IRI.match(value) is not None


def _is_vocabulary_iri(value: str) -> bool:
    # Every vocabulary the shipped contexts map to is http(s); "ex:name" with no "ex" prefix defined expands
    # to itself and looks absolute, but it is an undefined term all the same.
    return value.startswith(("https://", "http://"))


def _first_unsafe(node: Any) -> tuple[str, str] | None:
    """The first key, type or id left after expansion that is neither a keyword nor an absolute IRI."""
    if isinstance(node, list):
        for item in node:
            found = _first_unsafe(item)
            if found:
                return found
        return None
    if not isinstance(node, dict):
        return None
    if "@value" in node:
        value_type = node.get("@type")
        if isinstance(value_type, str) and value_type != "@json" and not _is_absolute_iri(value_type):
            return value_type, "is a datatype that is not an absolute IRI"
        return None
    for key, value in node.items():
        if key == "@type":
            for type_iri in value if isinstance(value, list) else [value]:
                if isinstance(type_iri, str) and not _is_vocabulary_iri(type_iri):
                    return type_iri, "is a type that no context defines"
        elif key == "@id":
            if isinstance(value, str) and not value.startswith("_:") and not _is_absolute_iri(value):
                return value, "is an id that is not an absolute IRI, which RDF would drop"
        elif not key.startswith("@") and not _is_vocabulary_iri(key):
            return key, "is a term that no context defines"
        found = _first_unsafe(value)
        if found:
            return found
    return None


def _locate(node: Any, needle: str, path: str = "$") -> str | None:
    """Where in the document as written `needle` appears, as a key or a value: `$.credentialSubject.x`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == needle or value == needle:
                return f"{path}.{key}"
            found = _locate(value, needle, f"{path}.{key}")
            if found:
                return found
    elif isinstance(node, list):
        for index, item in enumerate(node):
            if item == needle:
                return f"{path}[{index}]"
            found = _locate(item, needle, f"{path}[{index}]")
            if found:
                return found
    return None


def safe_expand(document: JsonObject) -> list[Any]:
    """Expand `document` in JSON-LD safe mode: `UnsafeJsonLd` naming the first term that would be lost."""
    if not isinstance(document, dict):
        raise MalformedCredential("a JSON-LD document must be a JSON object")
    if nesting(document) > MAX_NESTING:
        raise MalformedCredential(f"the document nests deeper than {MAX_NESTING} levels")
    contexts = document.get("@context")
    for context in contexts if isinstance(contexts, list) else [contexts]:
        if isinstance(context, str):
            shipped_context(context)
    dropped: list[str | None] = []
    on_dropped: Callable[[str | None], None] = dropped.append
    try:
        expanded: list[Any] = jsonld.expand(document, _options(), on_property_dropped=on_dropped)
    except jsonld.JsonLdError as error:
        cause = _root_cause(error)
        if isinstance(cause, MalformedCredential):
            raise cause from error
        raise MalformedCredential(f"the document is not valid JSON-LD: {_describe(error)}") from error
    if dropped:
        term = str(dropped[0])
        raise UnsafeJsonLd(term, _locate(document, term) or "$", "is a term that no context defines")
    unsafe = _first_unsafe(expanded)
    if unsafe:
        term, reason = unsafe
        raise UnsafeJsonLd(term, _locate(document, term) or "$", reason)
    return expanded


def canonicalize(document: JsonObject) -> str:
    """RDFC-1.0 canonical N-Quads of `document`, after safe-mode expansion."""
    expanded = safe_expand(document)
    options = _options() | {"algorithm": "URDNA2015", "format": "application/n-quads"}
    try:
        canonical: str = jsonld.normalize(expanded, options)
    except jsonld.JsonLdError as error:
        raise MalformedCredential(f"the document cannot be canonicalized: {_describe(error)}") from error
    return canonical


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _describe(error: BaseException) -> str:
    messages = []
    current: BaseException | None = error
    while current is not None:
        # JsonLdError's str() is its args tuple and type; its first argument is the sentence.
        text = current.args[0] if current.args and isinstance(current.args[0], str) else str(current)
        messages.append(text.splitlines()[0] if text else type(current).__name__)
        current = current.__cause__
    return "; ".join(dict.fromkeys(messages))
