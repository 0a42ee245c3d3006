"""The warm pool's bookkeeping with plain objects for boxes (Docker's real boxes: tests/sandbox)."""

from __future__ import annotations

import itertools
import threading

from sandbox.warm_pool import WarmPool


class Boxes:
    """Makes numbered boxes and records which were discarded."""

    def __init__(self, fail_for: str = "") -> None:
        self.numbers = itertools.count(1)
        self.made: list[tuple[str, int]] = []
        self.discarded: list[tuple[str, int]] = []
        self.fail_for = fail_for
        self.lock = threading.Lock()

    def make(self, key: str) -> tuple[str, int]:
        if key == self.fail_for:
            raise OSError("the daemon said no")
        with self.lock:
            box = (key, next(self.numbers))
            self.made.append(box)
        return box

    def discard(self, box: tuple[str, int]) -> None:
        with self.lock:
            self.discarded.append(box)


def test_a_key_is_filled_once_wanted_and_each_box_is_given_once() -> None:
    boxes = Boxes()
    pool: WarmPool[str, tuple[str, int]] = WarmPool(boxes.make, boxes.discard, size=2)
    assert pool.take("a") is None  # nothing ready yet: the caller makes its own
    assert pool.wait_ready("a", timeout=5)
    taken = {pool.take("a"), pool.take("a")}
    assert None not in taken and len(taken) == 2
    assert pool.wait_ready("a", timeout=5)
    assert not taken & set(pool.boxes("a"))  # refilled with new boxes, never the taken ones
    stats = pool.stats()
    assert (stats.hits, stats.misses, stats.ready) == (2, 1, 2)
    pool.close()
    assert sorted(boxes.discarded) == sorted(set(boxes.made) - taken)


def test_used_boxes_are_discarded_and_close_discards_the_rest() -> None:
    boxes = Boxes()
    pool: WarmPool[str, tuple[str, int]] = WarmPool(boxes.make, boxes.discard, size=1)
    pool.want("a")
    assert pool.wait_ready("a", timeout=5)
    box = pool.take("a")
    assert box is not None
    pool.discard(box)
    assert pool.wait_ready("a", timeout=5)
    assert box in boxes.discarded
    pool.close()
    assert sorted(boxes.discarded) == sorted(boxes.made)
    assert pool.take("a") is None  # closed: nothing is made any more
    pool.discard(("x", 0))  # a box handed back after close is discarded at once
    assert ("x", 0) in boxes.discarded


def test_only_the_most_recent_keys_keep_boxes() -> None:
    boxes = Boxes()
    pool: WarmPool[str, tuple[str, int]] = WarmPool(boxes.make, boxes.discard, size=1, max_keys=2)
    for key in ("a", "b", "c"):
        pool.want(key)
        assert pool.wait_ready(key, timeout=5)
    assert pool.ready("a") == 0 and pool.ready("b") == 1 and pool.ready("c") == 1
    assert any(key == "a" for key, _ in boxes.discarded)
    pool.close()


def test_a_key_that_cannot_be_made_is_dropped_until_asked_again() -> None:
    boxes = Boxes(fail_for="gone")
    pool: WarmPool[str, tuple[str, int]] = WarmPool(boxes.make, boxes.discard, size=2)
    pool.want("gone")
    assert not pool.wait_ready("gone", count=1, timeout=0.5)
    assert pool.stats().failures >= 1
    failures = pool.stats().failures
    assert not pool.wait_ready("gone", count=1, timeout=1.5)
    assert pool.stats().failures <= failures + 1  # not retried in a loop
    pool.close()


def test_size_zero_makes_nothing() -> None:
    boxes = Boxes()
    pool: WarmPool[str, tuple[str, int]] = WarmPool(boxes.make, boxes.discard, size=0)
    assert pool.take("a") is None
    pool.discard(("a", 99))
    pool.close()
    assert boxes.made == [] and boxes.discarded == [("a", 99)]
