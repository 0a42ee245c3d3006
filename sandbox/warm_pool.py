"""A warm pool of boxes: per key, a few boxes made and started ahead of their job, each used once.

Making a Docker box (create, attach, start) costs about 0.3 s of the daemon's time and removing it
about 0.1 s; the pool takes both off the job's path. A key names everything a box fixes when it
is made (for Docker: the image and the limits the container is created with); a job takes a ready
box of exactly its key or, when none is ready, the caller makes one on the job's own path (a cold
start). Either way the key is then wanted: a filler thread keeps `size` ready boxes for each of the
`max_keys` keys used most recently, and a reaper thread discards used boxes. No box is ever given
to a second job. `close` (also run at exit) stops both threads and discards every box the pool
holds; a box made by a process that was killed is the backend's to sweep by its label.

Backend-neutral and free of Docker: the backend hands in how to make and discard a box.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Box = TypeVar("Box")
Key = TypeVar("Key", bound=Hashable)

JOIN_SECONDS = 30.0  # a box being made at close is waited for (then discarded), not leaked
FAILURE_PAUSE_SECONDS = 1.0  # the daemon failed to make a box: do not hammer it


@dataclass(frozen=True)
class PoolStats:
    """How jobs found the pool: `hits` took a ready box, `misses` had to have one made."""

    hits: int
    misses: int
    ready: int  # boxes ready now, all keys
    made: int  # boxes the filler made
    discarded: int  # boxes the reaper (or close) discarded
    failures: int  # boxes the filler failed to make


class WarmPool(Generic[Key, Box]):
    def __init__(
        self,
        make: Callable[[Key], Box],
        discard: Callable[[Box], None],
        *,
        size: int,
        max_keys: int = 4,
        name: str = "warm-pool",
    ) -> None:
        if size < 0 or max_keys < 1:
            raise ValueError("a warm pool has size >= 0 and max_keys >= 1")
        self.size = size
        self.max_keys = max_keys
        self._make = make
        self._discard = discard
        self._name = name
        self._lock = threading.Condition()
        self._ready: OrderedDict[Key, list[Box]] = OrderedDict()  # least recently wanted first
        self._making: dict[Key, int] = {}
        self._used: deque[Box] = deque()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._pid = os.getpid()
        self._hits = self._misses = self._made = self._discarded = self._failures = 0
        self._failed_at = 0.0
        atexit.register(self.close)
        os.register_at_fork(after_in_child=_forget_in_child(weakref.ref(self)))

    def take(self, key: Key) -> Box | None:
        """A ready box of `key` (the caller's alone from now on), or None: make one yourself."""
        with self._lock:
            if self._closed or self.size == 0:
                self._misses += 1
                return None
            self._start_threads()
            ready = self._ready.pop(key, [])
            box = ready.pop() if ready else None
            self._ready[key] = ready  # now the most recently wanted key
            evicted = self._evict()
            if box is None:
                self._misses += 1
            else:
                self._hits += 1
            self._used.extend(evicted)
            self._lock.notify_all()
        return box

    def discard(self, box: Box) -> None:
        """A used (or unusable) box: discarded off the caller's path."""
        with self._lock:
            closed = self._closed
            if not closed:
                self._start_threads()
                self._used.append(box)
                self._lock.notify_all()
        if closed:
            self._discard_quietly(box)

    def want(self, key: Key) -> None:
        """Keep boxes of `key` ready from now on, before any job of it came."""
        with self._lock:
            if self._closed or self.size == 0:
                return
            self._start_threads()
            self._ready[key] = self._ready.pop(key, [])
            self._used.extend(self._evict())
            self._lock.notify_all()

    def boxes(self, key: Key) -> list[Box]:
        """The boxes of `key` ready now (a copy: taking one is `take`'s)."""
        with self._lock:
            return list(self._ready.get(key, []))

    def ready(self, key: Key) -> int:
        with self._lock:
            return len(self._ready.get(key, []))

    def wait_ready(self, key: Key, count: int | None = None, timeout: float = 30.0) -> bool:
        """Wait until `key` has `count` (default: `size`) ready boxes and no used box waits to be
        discarded; False on timeout. For benches and tests: a worker never waits for its pool."""
        want = self.size if count is None else count
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._ready.get(key, [])) < want or self._used:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._lock.wait(remaining)
            return True

    def stats(self) -> PoolStats:
        with self._lock:
            return PoolStats(
                hits=self._hits,
                misses=self._misses,
                ready=sum(len(boxes) for boxes in self._ready.values()),
                made=self._made,
                discarded=self._discarded,
                failures=self._failures,
            )

    def close(self) -> None:
        """Stop making boxes and discard every box the pool holds. Idempotent; also run at exit."""
        with self._lock:
            if self._pid != os.getpid():
                return  # a forked child: the boxes are its parent's
            self._closed = True
            self._lock.notify_all()
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(JOIN_SECONDS)
        with self._lock:
            left = [box for boxes in self._ready.values() for box in boxes]
            left += self._used
            self._ready.clear()
            self._used.clear()
        for box in left:
            self._discard_quietly(box)
        with contextlib.suppress(ValueError):
            atexit.unregister(self.close)

    # The threads. Daemon threads, so a process that never calls close still exits; atexit runs
    # close while they are alive, and close waits for a box being made so that none leaks.

    def _start_threads(self) -> None:
        if self._threads:
            return
        for role, loop in (("filler", self._fill_loop), ("reaper", self._reap_loop)):
            thread = threading.Thread(target=loop, name=f"{self._name}-{role}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _fill_loop(self) -> None:
        while True:
            with self._lock:
                key = self._wanted()
                while key is None and not self._closed:
                    self._lock.wait()
                    key = self._wanted()
                if self._closed or key is None:
                    return
                self._making[key] = self._making.get(key, 0) + 1
                pause = self._failed_at + FAILURE_PAUSE_SECONDS - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            box: Box | None = None
            try:
                box = self._make(key)
            except Exception:  # the backend's own errors: counted, and the filler tries again later
                with self._lock:
                    self._failures += 1
                    self._failed_at = time.monotonic()
                    if not self._ready.get(key) and self._making.get(key) == 1:
                        # Wanted no more until a job asks again (its image may be gone for good).
                        self._ready.pop(key, None)
            with self._lock:
                self._making[key] -= 1
                if box is None:
                    continue
                self._made += 1
                if self._closed or key not in self._ready:
                    self._used.append(box)  # closed meanwhile, or the key was evicted
                else:
                    self._ready[key].append(box)
                self._lock.notify_all()

    def _reap_loop(self) -> None:
        while True:
            with self._lock:
                while not self._used and not self._closed:
                    self._lock.wait()
                if not self._used:
                    return  # closed; close discards what arrives after this
                box = self._used.popleft()
            self._discard_quietly(box)
            with self._lock:
                self._lock.notify_all()  # wait_ready also waits for the reaper

    def _wanted(self) -> Key | None:
        """The most recently wanted key short of `size` ready or in the making, if any."""
        for key in reversed(self._ready):
            if len(self._ready[key]) + self._making.get(key, 0) < self.size:
                return key
        return None

    def _evict(self) -> list[Box]:
        evicted: list[Box] = []
        while len(self._ready) > self.max_keys:
            _, boxes = self._ready.popitem(last=False)
            evicted += boxes
        return evicted

    def _discard_quietly(self, box: Box) -> None:
        # Best effort: whatever is left behind, the backend's sweep finds by its label.
        with contextlib.suppress(Exception):
            self._discard(box)
        with self._lock:
            self._discarded += 1

    def _forget_parent(self) -> None:
        """In a forked child (a prefork worker) the parent's boxes and threads are not ours: the
        child starts empty, with threads of its own once it runs a job."""
        self._pid = os.getpid()
        self._lock = threading.Condition()
        self._ready = OrderedDict()
        self._making = {}
        self._used = deque()
        self._threads = []


def _forget_in_child(pool: weakref.ref[WarmPool[Any, Any]]) -> Callable[[], None]:
    def forget() -> None:
        alive = pool()
        if alive is not None:
            alive._forget_parent()

    return forget


__all__ = ["PoolStats", "WarmPool"]
