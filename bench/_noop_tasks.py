"""Bench-only Celery task that does nothing: the anchor for what a task costs on this broker and worker."""

from __future__ import annotations

from celery import shared_task

NOOP_TASK = "bench.noop"


@shared_task(name=NOOP_TASK, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def noop() -> None:
    """Nothing: what is measured is Celery's own path from send to ack."""
