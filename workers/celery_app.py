"""The workers' composition root: builds the Celery app and the runtime the tasks call into.

`make_celery(settings)` is pure construction; `workers.main` is the module the `celery` command
loads, and the only place an app is built at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from grader.broker import celery_config
from grader.config import Settings
from grader.db import make_engine, make_session_factory
from grader.interfaces import ResultSignal, TaskQueue
from grader.kinds.base import KindGrader


@dataclass
class WorkerRuntime:
    """What a task needs, built once per worker process."""

    settings: Settings
    sessions: sessionmaker[Session]
    graders: Mapping[str, KindGrader]
    queue: TaskQueue
    signal: ResultSignal


def default_graders(settings: Settings) -> Mapping[str, KindGrader]:
    from grader.kinds import default_graders as build

    return build(settings)


_graders_factory: Callable[[Settings], Mapping[str, KindGrader]] = default_graders
_runtime: WorkerRuntime | None = None


def configure_graders(factory: Callable[[Settings], Mapping[str, KindGrader]]) -> None:
    """Swap the graders a worker uses (a test composition root wraps them, e.g. to slow them down)."""
    global _graders_factory, _runtime
    _graders_factory = factory
    _runtime = None


def runtime() -> WorkerRuntime:
    global _runtime
    if _runtime is None:
        from grader.broker import CeleryTaskQueue, make_result_signal
        from grader.services.credentials import dispatch_on_commit

        settings = Settings.from_env()
        sessions = make_session_factory(make_engine(settings))
        queue = CeleryTaskQueue(settings)
        # A grade that completes a program opens its credential; signing it is the next task.
        dispatch_on_commit(sessions, queue)
        _runtime = WorkerRuntime(
            settings=settings,
            sessions=sessions,
            graders=_graders_factory(settings),
            queue=queue,
            signal=make_result_signal(settings),
        )
    return _runtime


def reset_runtime() -> None:
    """Forget the runtime (after a fork, connections must not be shared with the parent)."""
    global _runtime
    _runtime = None


def make_celery(settings: Settings) -> Celery:
    app = Celery("grader-workers")
    app.conf.update(celery_config(settings))
    app.conf.include = ["workers.tasks"]
    return app
