"""The broker adapter: Celery configuration shared by senders and workers, and the Celery TaskQueue.

This is the only module of `grader` that imports Celery; the domain services see only the
`TaskQueue` port. Messages carry nothing but a run id (JSON), so a lost or duplicated message can
never change a grade: the database decides.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery

from grader.config import Settings
from grader.errors import ServiceUnavailable
from grader.interfaces import NoSignal, ResultSignal
from grader.kinds import KINDS

log = logging.getLogger(__name__)

GRADE_TASK = "grader.grade_run"
ISSUE_TASK = "grader.issue_credential"
ISSUE_QUEUE = "credentials"
QUEUES = tuple(dict.fromkeys(kind.queue for kind in KINDS.values()))
# What a worker that serves everything listens to: the kinds' queues and the signing of credentials.
WORKER_QUEUES = (*QUEUES, ISSUE_QUEUE)
# Longer than any grading task may run, so Redis never re-delivers a task that is still running.
VISIBILITY_TIMEOUT_SECONDS = 3600
# How long the reconciler waits for workers to say which messages they hold, or that they live: a
# worker that answers slower counts as gone (its runs are sent again; the database grades them once).
WORKER_REPLY_SECONDS = 1.0


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        # At-least-once delivery: ack after the task returns, and re-deliver if the worker process dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": QUEUES[0],
        "task_create_missing_queues": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }
    if settings.broker_url.startswith("filesystem://"):
        folder = settings.broker_dir
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        config["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            # kombu's default is ./control: beside whatever directory the process was started in
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.05,
        }
    else:
        config["broker_transport_options"] = {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS}
    return config


def make_client(settings: Settings, name: str = "grader") -> Celery:
    """A Celery app configured for our broker; cheap, connects only when first used."""
    app = Celery(name)
    app.conf.update(celery_config(settings))
    return app


class CeleryTaskQueue:
    """Sends run ids to the workers by task name, so the web process never imports the tasks."""

    def __init__(self, settings: Settings, app: Celery | None = None) -> None:
        self._settings = settings
        self._app = app or make_client(settings)

    def enqueue_grading(self, run_id: str, queue: str) -> None:
        # Fail fast when the broker is down: the run is committed, the reconciler will resend it.
        self._app.send_task(
            GRADE_TASK,
            args=[run_id],
            queue=queue,
            retry=True,
            retry_policy={
                "max_retries": 2,
                "interval_start": 0,
                "interval_step": 0.2,
                "interval_max": 0.5,
            },
        )

    def enqueue_issue(self, credential_id: str) -> None:
        self._app.send_task(
            ISSUE_TASK,
            args=[credential_id],
            queue=ISSUE_QUEUE,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
        )

    def _on_redis(self) -> bool:
        return self._settings.broker_url.startswith(("redis://", "rediss://"))

    def pending_count(self, queue: str) -> int | None:
        if not self._on_redis():
            return None
        import redis

        layout = RedisLayout.of(self._app.conf.broker_transport_options or {})
        client = redis.Redis.from_url(self._settings.broker_url, socket_timeout=2)
        try:
            with client.pipeline(transaction=False) as pipe:
                for key in layout.queue_keys(queue):
                    pipe.llen(key)
                return sum(int(size) for size in pipe.execute())
        except redis.RedisError:
            return None
        finally:
            client.close()

    def messages_for(self, queue: str, run_ids: Collection[str]) -> set[str] | None:
        """Of `run_ids`, the runs the broker still holds a grading message for: waiting in `queue`
        (any of its priority lists), or delivered to a worker that answers and has not acked it.

        A message in kombu's `unacked` hash that no answering worker holds was held by a worker that
        died: Redis gives it back only after the visibility timeout (an hour), so it counts as lost.
        While no worker answers at all, nobody can tell, and such messages count as held. Raises
        ServiceUnavailable when Redis does not answer: what it holds is unknown, so nothing is lost yet.
        """
        wanted = set(run_ids)
        if not wanted:
            return set()
        if not self._on_redis():
            return None
        import redis

        layout = RedisLayout.of(self._app.conf.broker_transport_options or {})
        client = redis.Redis.from_url(self._settings.broker_url, socket_timeout=10)
        try:
            # One MULTI: a message moving from a list to `unacked` is seen in one or the other.
            with client.pipeline(transaction=True) as pipe:
                for key in layout.queue_keys(queue):
                    pipe.lrange(key, 0, -1)
                pipe.hvals(layout.unacked_key)
                *waiting_lists, unacked = pipe.execute()
        except redis.RedisError as exc:  # down, or still loading its append-only file after a restart
            raise ServiceUnavailable(f"the broker cannot say which messages it holds: {exc}") from exc
        finally:
            client.close()
        held = {run for raw in _chain(waiting_lists) if (run := _run_of(raw)) in wanted}
        delivered: dict[str, str] = {}  # task id -> run id, of messages a worker took and did not ack
        for raw in unacked:
            try:
                payload, _exchange, _routing_key = json.loads(raw)
            except (ValueError, TypeError):
                continue
            run = _run_of_payload(payload)
            if run in wanted and run not in held:
                task_id = (payload.get("headers") or {}).get("id")
                if isinstance(task_id, str):
                    delivered[task_id] = run
        if delivered:
            try:
                replies = self._app.control.inspect(timeout=WORKER_REPLY_SECONDS).query_task(*delivered) or {}
            except Exception:  # the control channel is the broker too: no answer, no verdict
                replies = {}
            if not replies:
                # No worker answered at all (they are reconnecting after a broker restart, or
                # starting): whether they still hold these is unknown, so they are not lost yet.
                held.update(delivered.values())
            for tasks in replies.values():
                held.update(delivered[task_id] for task_id in tasks or {} if task_id in delivered)
        return held

    def live_workers(self, names: Collection[str]) -> dict[str, datetime] | None:
        """When each of the named workers that answers was started; one that does not is left out.

        Raises ServiceUnavailable when the broker that carries the question is down.
        """
        wanted = sorted(set(names))
        if not wanted:
            return {}
        try:
            replies = (
                self._app.control.inspect(
                    destination=wanted, timeout=WORKER_REPLY_SECONDS, limit=len(wanted)
                ).stats()
                or {}
            )
        except Exception as exc:
            raise ServiceUnavailable(f"the broker does not carry the workers' answers: {exc}") from exc
        now = datetime.now(UTC)
        started: dict[str, datetime] = {}
        for name, stats in replies.items():
            uptime = stats.get("uptime") if isinstance(stats, dict) else None
            if isinstance(uptime, int | float):
                started[name] = now - timedelta(seconds=uptime)
        return started


@dataclass(frozen=True)
class RedisLayout:
    """Where kombu's Redis transport keeps a queue's messages and the delivered, unacked ones.

    A queue is one list per priority step (`quiz`, `quiz\x06\x163`, ...: kombu's `_q_for_pri`),
    messages taken by a worker sit in the `unacked` hash until acked; all keys carry the global
    prefix. The defaults are kombu's own, so a transport option that changes one is followed.
    """

    separator: str
    priority_steps: tuple[int, ...]
    unacked_key: str
    prefix: str

    @classmethod
    def of(cls, transport_options: dict[str, Any]) -> RedisLayout:
        from kombu.transport.redis import Channel

        return cls(
            separator=transport_options.get("sep", Channel.sep),
            priority_steps=tuple(transport_options.get("priority_steps", Channel.priority_steps)),
            unacked_key=transport_options.get("global_keyprefix", "")
            + transport_options.get("unacked_key", Channel.unacked_key),
            prefix=transport_options.get("global_keyprefix", ""),
        )

    def queue_keys(self, queue: str) -> list[str]:
        return [
            self.prefix + (f"{queue}{self.separator}{step}" if step else queue)
            for step in self.priority_steps
        ]


def _chain(lists: Iterable[list[bytes]]) -> Iterable[bytes]:
    for items in lists:
        yield from items


def _run_of(raw: bytes | str) -> str | None:
    try:
        return _run_of_payload(json.loads(raw))
    except (ValueError, TypeError):
        return None


def _run_of_payload(payload: Any) -> str | None:
    """The run id a grading message carries (Celery's protocol 2: the body is `[args, kwargs, embed]`)."""
    if not isinstance(payload, dict) or (payload.get("headers") or {}).get("task") != GRADE_TASK:
        return None
    body = payload.get("body")
    if not isinstance(body, str | bytes):
        return None
    try:
        if (payload.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
    except (ValueError, TypeError, IndexError, KeyError, binascii.Error):
        return None
    return args[0] if isinstance(args, list) and args and isinstance(args[0], str) else None


# How long an announcement waits for a request that comes late (a client that long-polls after the
# result was written finds it in the database anyway; this only spares it a look).
ANNOUNCEMENT_TTL_SECONDS = 60


class RedisResultSignal:
    """Announcements on the broker's Redis: one short list per submission that waiters BLPOP.

    A list, not pub/sub, so that an announcement made just before a request starts waiting is not lost;
    a waiter puts the announcement back for any other request waiting on the same submission.
    """

    available = True

    def __init__(self, settings: Settings) -> None:
        import redis

        self._errors: tuple[type[Exception], ...] = (redis.RedisError,)
        # One pool per process, shared by its threads; a blocking wait holds one connection.
        self._client = redis.Redis.from_url(settings.broker_url, socket_timeout=MAX_WAIT_SOCKET_SECONDS)

    @staticmethod
    def _key(submission_id: str) -> str:
        return f"grader:result:{submission_id}"

    def announce(self, submission_id: str) -> None:
        key = self._key(submission_id)
        try:
            with self._client.pipeline(transaction=False) as pipe:
                pipe.lpush(key, 1)
                pipe.ltrim(key, 0, 0)
                pipe.expire(key, ANNOUNCEMENT_TTL_SECONDS)
                pipe.execute()
        except self._errors:
            log.warning("could not announce the result of %s; its waiters will look", submission_id)

    def wait(self, submission_id: str, timeout: float) -> bool:
        if timeout <= 0:
            return False
        key = self._key(submission_id)
        try:
            # BLPOP counts whole seconds in old servers; below one second, 0.1 s steps are fine.
            got = self._client.blpop([key], timeout=max(timeout, 0.01))
            if got is None:
                return False
            self.announce(submission_id)  # for another request waiting on the same submission
            return True
        except self._errors:
            return False


# A blocking wait is cut short by the socket after this long; waits are shorter (the long poll's slices).
MAX_WAIT_SOCKET_SECONDS = 5.0


def make_result_signal(settings: Settings) -> ResultSignal:
    """Announcements on Redis when the broker is Redis; otherwise none (waiters poll the database)."""
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return RedisResultSignal(settings)
    return NoSignal()
