"""Readiness: can this process reach what it needs to do its work (the database, the broker, the file
store)? Each check answers in words, within a bounded time, and never raises.

The web app's /readyz and `grader worker-ready` ask these; a check says which part failed and how, in
a sentence an operator can act on, without the part's address or credentials (those go to the log).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as TimedOut
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.storage import LocalFileStore, S3FileStore, file_store

log = logging.getLogger(__name__)

# A probe that waits longer than this is already a failure: orchestrators time out around 5 s.
CHECK_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 4)}


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    def summary(self) -> str:
        if self.ok:
            return "ready: " + ", ".join(f"{c.name} {c.detail}" for c in self.checks)
        return "not ready: " + "; ".join(f"{c.name}: {c.detail}" for c in self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {check.name: check.to_dict() for check in self.checks}


def database(sessions: sessionmaker[Session]) -> str:
    with sessions() as session:
        session.execute(text("SELECT 1"))
    return "reachable"


def broker(settings: Settings) -> str:
    url = settings.broker_url
    if url.startswith("filesystem://"):
        folder = settings.broker_dir / "queue"
        folder.mkdir(parents=True, exist_ok=True)  # as the Celery client makes it, on first use
        if not os.access(folder, os.W_OK | os.X_OK):
            raise RuntimeError("the broker's folder is not writable by this process")
        return "reachable (filesystem transport)"
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return "reachable"
    from kombu.connection import Connection  # another transport Celery knows (amqp://, …)

    with Connection(url, connect_timeout=2) as connection:  # type: ignore[no-untyped-call]
        connection.ensure_connection(max_retries=1)
    return "reachable"


def store(settings: Settings) -> str:
    opened = file_store(settings)
    if isinstance(opened, LocalFileStore):
        opened.root.mkdir(parents=True, exist_ok=True)
        if not os.access(opened.root, os.W_OK | os.X_OK):
            raise RuntimeError("the file store's folder is not writable by this process")
        return "reachable (local folder)"
    if isinstance(opened, S3FileStore):
        opened.client.head_bucket(Bucket=opened.bucket)
        return "reachable (S3 bucket)"
    return "reachable"


def check_all(probes: Mapping[str, Callable[[], str]], timeout: float = CHECK_TIMEOUT_SECONDS) -> Readiness:
    """Run the probes side by side; each one that raises or outlasts `timeout` fails, saying why."""
    pool = ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="readiness")
    started = time.monotonic()
    futures = {name: pool.submit(_timed, probe) for name, probe in probes.items()}
    checks = []
    for name, future in futures.items():
        remaining = max(0.0, timeout - (time.monotonic() - started))
        try:
            detail, seconds = future.result(timeout=remaining)
            checks.append(Check(name, True, detail, seconds))
        except TimedOut:
            checks.append(Check(name, False, f"did not answer within {timeout:g} s", timeout))
        except Exception as exc:
            # The whole story, address included, for the operator's log; one line, no traceback.
            log.warning("readiness: %s is not reachable: %s: %s", name, type(exc).__name__, exc)
            checks.append(Check(name, False, _in_words(name, exc), time.monotonic() - started))
    # A probe still waiting on a dead host must not hold the request: its thread finishes on its own.
    pool.shutdown(wait=False, cancel_futures=True)
    return Readiness(tuple(checks))


def readiness(settings: Settings, sessions: sessionmaker[Session], *, with_store: bool = True) -> Readiness:
    probes: dict[str, Callable[[], str]] = {
        "database": lambda: database(sessions),
        "broker": lambda: broker(settings),
    }
    if with_store:
        probes["store"] = lambda: store(settings)
    return check_all(probes)


def _timed(probe: Callable[[], str]) -> tuple[str, float]:
    started = time.monotonic()
    detail = probe()
    return detail, time.monotonic() - started


_WHAT = {"database": "the database", "broker": "the broker", "store": "the file store"}


def _in_words(name: str, exc: BaseException) -> str:
    """Why a part failed, without its address or credentials: the kind of fault, and our own sentences."""
    what = _WHAT.get(name, name)
    if isinstance(exc, RuntimeError) and type(exc) is RuntimeError:
        return str(exc)  # written here, by this module
    from grader.errors import GraderError

    if isinstance(exc, GraderError):
        return exc.message
    message = str(exc).lower()
    if "refused" in message:
        return f"{what} refused the connection ({type(exc).__name__})"
    if "does not exist" in message:
        return (
            f"{what} answered, but the database named in the settings does not exist ({type(exc).__name__})"
        )
    if "timeout" in message or "timed out" in message:
        return f"{what} did not answer in time ({type(exc).__name__})"
    if "authentication" in message or "password" in message or "auth" in message:
        return f"{what} refused the credentials in the settings ({type(exc).__name__})"
    return f"{what} is not reachable ({type(exc).__name__})"
