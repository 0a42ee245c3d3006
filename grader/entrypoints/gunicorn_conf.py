"""gunicorn's settings for the web app: `gunicorn -c python:grader.entrypoints.gunicorn_conf …`.

Prometheus multiprocess mode (each gunicorn worker counts into a file that a scrape of /metrics adds
up, `grader.metrics_dir`) and, with `GRADER_LOG_FORMAT=json`, gunicorn's own error and access lines
in the service's JSON format. Command-line options (bind, workers, threads) still come from the
command; this module only adds hooks.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

from grader import metrics_dir
from grader.logs import JsonFormatter

# Loaded by the master before any worker imports the app: the folder is known to all of them.
_folder = metrics_dir.prepare("web")


def on_starting(server: Any) -> None:
    metrics_dir.wipe(_folder)


def on_exit(server: Any) -> None:
    metrics_dir.discard()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    # prometheus_client's advice for a worker that exits: its live gauges stop counting.
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


class JsonLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, writing its lines (requests included) as the service's JSON objects."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())


if os.environ.get("GRADER_LOG_FORMAT", "text") == "json":
    logger_class = JsonLogger
