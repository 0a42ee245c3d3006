"""Bounded reading of a box's output streams, and safe reading of files the box leaves behind.

A job may print gigabytes; we keep at most the limit and stop the job when it goes past, so the
worker's memory stays flat. Files are read through directory file descriptors with O_NOFOLLOW at
every step: a symlink planted by the job never leads the worker to a host file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable
from typing import BinaryIO

CHUNK = 64 * 1024


class BoundedStream:
    """Drains a pipe in a thread, keeping the first `limit` bytes; calls `on_overflow` once past it."""

    def __init__(self, stream: BinaryIO, limit: int, on_overflow: Callable[[], None]) -> None:
        self._stream = stream
        self._limit = limit
        self._on_overflow = on_overflow
        self._parts: list[bytes] = []
        self._kept = 0
        self.overflowed = False
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            while True:
                chunk = (
                    self._stream.read1(CHUNK) if hasattr(self._stream, "read1") else self._stream.read(CHUNK)
                )
                if not chunk:
                    return
                room = self._limit - self._kept
                if room > 0:
                    self._parts.append(chunk[:room])
                    self._kept += min(room, len(chunk))
                if len(chunk) > room and not self.overflowed:
                    self.overflowed = True
                    self._on_overflow()
        except (OSError, ValueError):
            return  # the pipe closed under us when the job was killed
        finally:
            with contextlib.suppress(OSError):
                self._stream.close()

    def result(self, timeout: float = 5.0) -> bytes:
        self._thread.join(timeout)
        return b"".join(self._parts)


def read_no_follow(root: str, relative: str, limit: int) -> bytes | None:
    """Read `relative` under the directory `root` without following any symlink; None if absent,
    not a regular file, or larger than `limit`."""
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root, flags | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        # O_NONBLOCK: a FIFO planted by the job must not hang the worker on open.
        file_fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES, errno.ENXIO):
            raise
        return None
    finally:
        os.close(fd)
    try:
        import stat

        if not stat.S_ISREG(os.fstat(file_fd).st_mode):
            return None
        data = b""
        while len(data) <= limit:
            chunk = os.read(file_fd, min(CHUNK, limit + 1 - len(data)))
            if not chunk:
                break
            data += chunk
        return None if len(data) > limit else data
    finally:
        os.close(file_fd)
