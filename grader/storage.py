"""Files kept by the service, content-addressed: the evidence reviewers read, behind one interface.

A file is stored under the SHA-256 of its bytes and read back by it; a read checks the bytes against
their key, so a corrupted or tampered store is an error, never a wrong file shown. The embedded
default keeps them in a local folder under the data directory; a store shared by web and worker
hosts (S3-compatible) implements the same `FileStore` protocol.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from grader.config import Settings
from grader.errors import NotFound, ServiceUnavailable

_KEY = re.compile(r"^[0-9a-f]{64}$")


class FileStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store `data`; its key (the hex SHA-256) is returned. Storing it twice stores it once."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`; `NotFound` when there are none."""
        ...


class LocalFileStore:
    """A folder of files named by their SHA-256 (two levels, so no folder grows too large)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise NotFound("no such file")
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        path = self._path(key)
        if path.exists():
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a reader never sees half a file under its final name.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
            handle.write(data)
        os.replace(handle.name, path)
        return key

    def get(self, key: str) -> bytes:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound("no such file") from None
        if hashlib.sha256(data).hexdigest() != key:
            raise ServiceUnavailable(f"stored file {key[:12]}… does not match its checksum")
        return data


def file_store(settings: Settings) -> FileStore:
    return LocalFileStore(settings.files_dir / "blobs")
