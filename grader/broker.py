"""The broker adapter: Celery configuration shared by senders and workers, and the Celery TaskQueue.

This is the only module of `grader` that imports Celery; the domain services see only the
`TaskQueue` port. Messages carry nothing but a run id (JSON), so a lost or duplicated message can
never change a grade: the database decides.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from grader.config import Settings
from grader.kinds import KINDS

GRADE_TASK = "grader.grade_run"
ISSUE_TASK = "grader.issue_credential"
ISSUE_QUEUE = "credentials"
QUEUES = tuple(dict.fromkeys(kind.queue for kind in KINDS.values()))
# What a worker that serves everything listens to: the kinds' queues and the signing of credentials.
WORKER_QUEUES = (*QUEUES, ISSUE_QUEUE)
# Longer than any grading task may run, so Redis never re-delivers a task that is still running.
VISIBILITY_TIMEOUT_SECONDS = 3600


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

    def pending_count(self, queue: str) -> int | None:
        if not self._settings.broker_url.startswith(("redis://", "rediss://")):
            return None
        import redis

        client = redis.Redis.from_url(self._settings.broker_url, socket_timeout=2)
        try:
            return int(client.llen(queue))
        except redis.RedisError:
            return None
        finally:
            client.close()
