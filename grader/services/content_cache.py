"""A bounded, thread-safe LRU of what the viewer derives from stored content, keyed by content hashes.

What the viewer computes from a file (its highlighted lines, the diff between two versions) depends
only on the bytes, so it is keyed by their SHA-256 and shared by every request, reviewer and
submission that shows the same content: a cached value can never be shown for the wrong file.
Bounded both by entries and by an estimate of the memory the values hold, so a host that shows many
large files keeps the most recently used and forgets the rest.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ContentCache(Generic[K, V]):
    """At most `entries` values, weighing at most `budget` as `weigh` counts them (roughly bytes)."""

    def __init__(self, *, entries: int, budget: int, weigh: Callable[[V], int]) -> None:
        self.entries = entries
        self.budget = budget
        self._weigh = weigh
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V) -> V:
        """Keep `value` unless it alone outweighs the budget; the least recently used go first."""
        weight = self._weigh(value)
        if weight > self.budget:
            return value
        with self._lock:
            previous = self._items.pop(key, None)
            if previous is not None:
                self._weight -= previous[1]
            self._items[key] = (value, weight)
            self._weight += weight
            while len(self._items) > self.entries or self._weight > self.budget:
                _, (_, dropped) = self._items.popitem(last=False)
                self._weight -= dropped
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._weight = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def weight(self) -> int:
        return self._weight
