"""Mounts below a grading root filesystem: a box must see the root filesystem's own files only.

bwrap's `--ro-bind` is recursive, so a mount that appears below the root filesystem on the host
later (a bind mount another tool left there once put an assignment's hidden tests inside every box)
would show inside every box. The runner refuses such a root instead. The mount table is read from
/proc/self/mountinfo once, then again only when the kernel says it changed: poll() on the open file
reports POLLPRI|POLLERR after any mount or unmount, so a job costs one poll() call, not a read.
The runner's own mounts (each job's work dir) go through `own_change`, which keeps them from
counting as changes; since a foreign change made in the same microseconds would be missed with
them, the table is also read again when it is older than MAX_AGE_SECONDS.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

MOUNTINFO = "/proc/self/mountinfo"
MAX_AGE_SECONDS = 10.0
Result = TypeVar("Result")
_ESCAPE = re.compile(r"\\([0-7]{3})")


class MountWatch:
    def __init__(self, mountinfo: str = MOUNTINFO) -> None:
        self._path = mountinfo
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._owner = 0  # a forked child shares the open file, and with it the change notice
        self._poll = select.poll()
        self._mount_points: tuple[str, ...] = ()
        self._real: dict[str, str] = {}
        self._stale = True
        self._read_at = 0.0
        self.reads = 0

    def below(self, root: Path) -> list[str]:
        """The mount points strictly below `root` (after resolving symlinks), sorted."""
        with self._lock:
            if self._needs_reading():
                self._reload()
            real = self._real.get(str(root))
            if real is None:
                real = self._real[str(root)] = os.path.realpath(root)
            prefix = real.rstrip("/") + "/"
            return sorted(point for point in self._mount_points if point.startswith(prefix))

    def own_change(self, change: Callable[[], Result]) -> Result:
        """Run `change` (a mount or unmount of ours) without it making the next job read the table."""
        with self._lock:
            if self._fd is not None and self._owner == os.getpid() and self._changed():
                self._stale = True  # a change before ours is somebody else's: it is read
            try:
                return change()
            finally:
                if self._fd is not None and self._owner == os.getpid():
                    self._changed()  # takes our own change's notice

    def _needs_reading(self) -> bool:
        if self._fd is None or self._owner != os.getpid() or self._stale:
            return True
        return self._changed() or time.monotonic() - self._read_at > MAX_AGE_SECONDS

    def _changed(self) -> bool:
        return any(events & (select.POLLPRI | select.POLLERR) for _, events in self._poll.poll(0))

    def _reload(self) -> None:
        if self._fd is None or self._owner != os.getpid():
            if self._fd is not None:
                self._poll.unregister(self._fd)
                os.close(self._fd)
            self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
            self._owner = os.getpid()
            self._poll.register(self._fd, select.POLLPRI | select.POLLERR)
        os.lseek(self._fd, 0, os.SEEK_SET)
        parts = []
        while chunk := os.read(self._fd, 65536):
            parts.append(chunk)
        points = []
        for line in b"".join(parts).decode(errors="surrogateescape").splitlines():
            fields = line.split(" ")
            if len(fields) > 4:
                points.append(_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
        self._mount_points = tuple(points)
        self._stale = False
        self._read_at = time.monotonic()
        self.reads += 1


MOUNTS = MountWatch()


def foreign_mounts_problem(root: Path) -> str | None:
    """Why `root` cannot serve as a box's root filesystem because of mounts below it, or None."""
    found = MOUNTS.below(root)
    if not found:
        return None
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    return f"mounts below the root filesystem {root} would show inside every box: {shown}"


def foreign_mounts_fix(root: Path) -> str:
    found = MOUNTS.below(root)
    return "unmount them (" + "; ".join(f"umount {point}" for point in found[:5]) + ")"
