"""Entry module for `celery -A workers.main worker`: builds the app from `GRADER_*` settings."""

from __future__ import annotations

from celery.signals import worker_process_init

from grader.config import Settings
from workers.celery_app import make_celery, reset_runtime

app = make_celery(Settings.from_env())


@worker_process_init.connect
def _fresh_runtime_after_fork(**_: object) -> None:
    # A prefork child must open its own database connections rather than share its parent's.
    reset_runtime()
