"""Safe reading of files a box leaves behind on the host (the bubblewrap backend's work dir).

Files are read through directory file descriptors with O_NOFOLLOW at every step: a symlink planted
by the job never leads the worker to a host file, and a FIFO never blocks it.
"""

from __future__ import annotations

import errno
import os
import stat

CHUNK = 64 * 1024


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
