"""Ports the domain services call out through; implementations are wired by the composition roots."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol


class TaskQueue(Protocol):
    """Carries a grading run id to a worker; the run row, not the message, is the source of truth."""

    def enqueue_grading(self, run_id: str, queue: str) -> None:
        """Send one run id to the named queue; raise on a broker fault (the reconciler retries)."""
        ...

    def enqueue_issue(self, credential_id: str) -> None:
        """Send a pending credential to the signing workers; raise on a broker fault."""
        ...

    def pending_count(self, queue: str) -> int | None:
        """Messages waiting in a queue, or None when the broker cannot tell cheaply."""
        ...

    def messages_for(self, queue: str, run_ids: Collection[str]) -> set[str] | None:
        """Of `run_ids`, those whose message the broker still holds (waiting in `queue`, or taken by
        a worker that lives and has not acknowledged it); None when this broker cannot tell. Raises
        ServiceUnavailable while the broker is down."""
        ...

    def live_workers(self, names: Collection[str]) -> dict[str, datetime] | None:
        """When each of the named workers that answers now was started (one that does not answer is
        left out); None when this broker cannot ask them. Raises ServiceUnavailable while it is down."""
        ...


class RecordingQueue:
    """A TaskQueue that only remembers what was sent: for unit tests and dry runs."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.issued: list[str] = []

    def enqueue_grading(self, run_id: str, queue: str) -> None:
        self.sent.append((run_id, queue))

    def enqueue_issue(self, credential_id: str) -> None:
        self.issued.append(credential_id)

    def pending_count(self, queue: str) -> int | None:
        return sum(1 for _, q in self.sent if q == queue)

    def messages_for(self, queue: str, run_ids: Collection[str]) -> set[str] | None:
        return None  # a recording is not a broker: the reconciler falls back to its older rule

    def live_workers(self, names: Collection[str]) -> dict[str, datetime] | None:
        return None


class ResultSignal(Protocol):
    """Tells a waiting request that a submission's result was written: long polls without polling."""

    available: bool  # False: nothing is ever announced, and waiters poll the database instead

    def announce(self, submission_id: str) -> None:
        """Say that the submission's result is committed; best effort (waiters also look themselves)."""
        ...

    def wait(self, submission_id: str, timeout: float) -> bool:
        """Block up to `timeout` seconds for an announcement; False on timeout or when unavailable."""
        ...


class NoSignal:
    """A ResultSignal for brokers without one (the demo's filesystem transport): waiters poll."""

    available = False

    def announce(self, submission_id: str) -> None:
        return None

    def wait(self, submission_id: str, timeout: float) -> bool:
        return False
