"""What the tests with real Celery workers share: settings on a private Redis broker, and a factory of
worker processes that stops every worker it started."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grader.config import Settings
from tests.support.services import RedisServer, WorkerProcess


def broker_settings(tmp_path: Path, database_url: str, redis: RedisServer, **overrides: Any) -> Settings:
    """Settings on `redis` as the broker, with SQLite in `tmp_path` unless a database URL is given."""
    data_dir = tmp_path / "var"
    return Settings(
        data_dir=data_dir,
        database_url=database_url or f"sqlite:///{data_dir / 'grader.db'}",
        broker_url=redis.url,
        secret_key="test-secret-key",
        catalog_path=tmp_path / "catalog",
        **overrides,
    )


@contextmanager
def worker_factory(
    settings: Settings, log_dir: Path, **defaults: Any
) -> Iterator[Callable[..., WorkerProcess]]:
    """`make(**env)` builds a worker on `settings` (with `env` on top); each is stopped at the end.
    `defaults` and `make`'s own `app`, `concurrency` go to `WorkerProcess`."""
    workers: list[WorkerProcess] = []

    def make(app: str | None = None, concurrency: int | None = None, **env: str) -> WorkerProcess:
        options = dict(defaults)
        if app is not None:
            options["app"] = app
        if concurrency is not None:
            options["concurrency"] = concurrency
        worker = WorkerProcess(
            env={**settings.to_env(), **env}, log_path=log_dir / f"worker-{len(workers)}.log", **options
        )
        workers.append(worker)
        return worker

    try:
        yield make
    finally:
        for worker in workers:
            worker.stop()
