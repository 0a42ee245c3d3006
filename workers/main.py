"""Entry module for `celery -A workers.main worker`: builds the app from `GRADER_*` settings.

Also the worker's operations wiring (docs/operations.md): its log lines in the configured format with
the run and submission ids of the task at hand, and its Prometheus metrics served on
`GRADER_WORKER_METRICS_PORT`, added up over the prefork pool's processes.
"""

from __future__ import annotations

from typing import Any

from grader import metrics_dir
from grader.config import Settings

_settings = Settings.from_env()
if _settings.worker_metrics_port:
    # Before prometheus_client is imported (by the tasks' modules): the pool's children count into files.
    metrics_dir.prepare("worker")

from celery.signals import (  # noqa: E402 - after the metrics folder is chosen
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_shutdown,
)

from grader import logs  # noqa: E402
from grader.broker import GRADE_TASK, ISSUE_TASK  # noqa: E402
from workers.celery_app import make_celery, reset_runtime  # noqa: E402

app = make_celery(_settings)


@worker_process_init.connect
def _fresh_runtime_after_fork(**_: object) -> None:
    # A prefork child must open its own database connections rather than share its parent's.
    reset_runtime()


@setup_logging.connect
def _log_lines(loglevel: int | str | None = None, logfile: str | None = None, **_: object) -> None:
    # Connected, this replaces Celery's own logging set-up: one format for the whole service.
    from pathlib import Path

    logs.configure(_settings.log_format, level=loglevel or "INFO", path=Path(logfile) if logfile else None)


@task_prerun.connect
def _ids_on_every_line(task: Any = None, args: Any = None, **_: object) -> None:
    # Bound before the task runs and cleared after Celery's own "succeeded" line: all of them carry it.
    name = getattr(task, "name", "")
    first = args[0] if args else None
    if name == GRADE_TASK and isinstance(first, str):
        logs.bind(run_id=first)
    elif name == ISSUE_TASK and isinstance(first, str):
        logs.bind(credential_id=first)


@task_postrun.connect
def _forget_ids(**_: object) -> None:
    logs.clear()


@worker_init.connect
def _load_the_database_driver(**_: object) -> None:
    # In the main process, before the pool forks: each child would otherwise import the driver (about
    # a second of CPU) on its first task. Creating an engine opens no connection.
    from grader.db import make_engine

    make_engine(_settings).dispose()


@worker_init.connect
def _serve_metrics(**_: object) -> None:
    # In the worker's main process, before the pool starts: the children's counts are read from files.
    if not _settings.worker_metrics_port:
        return
    from grader import metrics

    folder = metrics_dir.active()
    if folder is not None:
        metrics_dir.wipe(folder)
    metrics.serve(_settings.worker_metrics_host, _settings.worker_metrics_port)


@worker_shutdown.connect
def _remove_metrics_folder(**_: object) -> None:
    metrics_dir.discard()
