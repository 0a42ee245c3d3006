"""W3C Bitstring Status List v1.0: one bit per credential, revoked or suspended when set.

The list is at least 131,072 bits (16 KiB), the spec's minimum, so that a list says nothing about how many
credentials were issued; index 0 is the most significant bit of the first byte. `encodedList` is the
bitstring GZIP-compressed, then base64url without padding, with the multibase prefix `u`. The list is
published as a `BitstringStatusListCredential` (signed like any credential, by the caller) whose subject
states its `statusPurpose`: one list for revocation, another for suspension.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from grader.credentials.dates import format_datetime
from grader.credentials.document import StatusEntry, StatusPurpose
from grader.credentials.errors import MalformedCredential
from grader.credentials.linked_data import CREDENTIALS_V2, JsonObject
from grader.credentials.multiformats import multibase_base64url, multibase_decode

MINIMUM_BITS = 131_072
# Past this a decompressed list is a bomb, not a status list: 16 MiB is 128 million credentials.
MAXIMUM_BYTES = 16 * 1024 * 1024


class StatusList:
    """A mutable bitstring; `encode()` gives the `encodedList` to publish."""

    def __init__(self, size: int = MINIMUM_BITS) -> None:
        if size < MINIMUM_BITS or size % 8:
            raise ValueError(f"a status list has at least {MINIMUM_BITS} bits, in whole bytes")
        self._bits = bytearray(size // 8)

    @property
    def size(self) -> int:
        return len(self._bits) * 8

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self.size:
            raise IndexError(f"status index {index} is outside the list of {self.size} entries")
        return index // 8, 7 - index % 8

    def get(self, index: int) -> bool:
        byte, bit = self._locate(index)
        return bool(self._bits[byte] >> bit & 1)

    def set(self, index: int, value: bool = True) -> None:
        byte, bit = self._locate(index)
        if value:
            self._bits[byte] |= 1 << bit
        else:
            self._bits[byte] &= ~(1 << bit) & 0xFF

    def clear(self, index: int) -> None:
        self.set(index, False)

    def encode(self) -> str:
        # mtime=0: the same bits always give the same encodedList, so regenerating changes nothing.
        return multibase_base64url(gzip.compress(bytes(self._bits), mtime=0))

    @classmethod
    def decode(cls, encoded: str) -> StatusList:
        compressed = multibase_decode(encoded)
        decompressor = zlib.decompressobj(wbits=31)
        try:
            raw = decompressor.decompress(compressed, MAXIMUM_BYTES + 1)
        except zlib.error as error:
            raise MalformedCredential(
                "encodedList is not GZIP data", details={"field": "encodedList"}
            ) from error
        if len(raw) > MAXIMUM_BYTES or decompressor.unconsumed_tail:
            raise MalformedCredential(
                "encodedList decompresses to more than 16 MiB", details={"field": "encodedList"}
            )
        if len(raw) * 8 < MINIMUM_BITS:
            raise MalformedCredential(
                f"encodedList has {len(raw) * 8} entries; a status list has at least {MINIMUM_BITS}",
                details={"field": "encodedList"},
            )
        status_list = cls(len(raw) * 8)
        status_list._bits[:] = raw
        return status_list


def build_status_list_credential(
    *, list_url: str, issuer_id: str, purpose: StatusPurpose, status_list: StatusList, valid_from: datetime
) -> JsonObject:
    """The unsigned BitstringStatusListCredential published at `list_url`."""
    return {
        "@context": [CREDENTIALS_V2],
        "id": list_url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer_id,
        "validFrom": format_datetime(valid_from),
        "credentialSubject": {
            "id": f"{list_url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": str(purpose),
            "encodedList": status_list.encode(),
        },
    }


@dataclass(frozen=True)
class StatusReading:
    entry: StatusEntry
    is_set: bool


def read_entries(credential: JsonObject) -> list[StatusEntry]:
    """The BitstringStatusListEntry items of a credential's `credentialStatus`."""
    raw: Any = credential.get("credentialStatus")
    entries = raw if isinstance(raw, list) else [raw] if raw is not None else []
    read = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("type") != "BitstringStatusListEntry":
            raise MalformedCredential(
                "credentialStatus must hold BitstringStatusListEntry objects",
                details={"field": "credentialStatus"},
            )
        try:
            index = int(str(entry["statusListIndex"]))
            purpose = StatusPurpose(entry["statusPurpose"])
            list_url = str(entry["statusListCredential"])
        except (KeyError, ValueError) as error:
            raise MalformedCredential(
                "a credentialStatus entry lacks a valid statusListIndex, statusPurpose or "
                "statusListCredential",
                details={"field": "credentialStatus"},
            ) from error
        if index < 0:
            raise MalformedCredential(
                "statusListIndex must not be negative", details={"field": "credentialStatus"}
            )
        read.append(StatusEntry(list_url, index, purpose))
    return read


def read_status(entry: StatusEntry, list_credential: JsonObject) -> StatusReading:
    """The entry's bit in a (separately verified) status list credential of the same URL and purpose."""
    if list_credential.get("id") != entry.list_url:
        raise MalformedCredential(
            f"the status list given is {list_credential.get('id')}, not {entry.list_url}",
            details={"field": "statusListCredential"},
        )
    subject = list_credential.get("credentialSubject")
    if not isinstance(subject, dict) or subject.get("type") != "BitstringStatusList":
        raise MalformedCredential("the status list credential's subject is not a BitstringStatusList")
    if subject.get("statusPurpose") != str(entry.purpose):
        raise MalformedCredential(
            f"the status list is for {subject.get('statusPurpose')!r}, the entry for {entry.purpose}",
            details={"field": "statusPurpose"},
        )
    encoded = subject.get("encodedList")
    if not isinstance(encoded, str):
        raise MalformedCredential("the status list has no encodedList", details={"field": "encodedList"})
    return StatusReading(entry, StatusList.decode(encoded).get(entry.index))
