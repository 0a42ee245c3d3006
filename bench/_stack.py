"""The running service a benchmark talks to: a real worker process and the web app on loopback."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server

from grader.config import Settings
from grader.web import create_app
from tests.support.services import WorkerProcess, free_port


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass  # thousands of access-log lines would cost the bench more than the requests


def call(method: str, url: str, token: str, body: object | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, json.loads(response.read())


@contextmanager
def serve(settings: Settings, worker_log: Path, *, concurrency: int = 1) -> Iterator[str]:
    """A worker with exactly these settings and the web app; yields the base URL."""
    worker = WorkerProcess(env=settings.to_env(), log_path=worker_log, concurrency=concurrency)
    worker.start()
    port = free_port()
    server = make_server("127.0.0.1", port, create_app(settings), threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        worker.stop()
        if os.environ.get("BENCH_SHOW_WORKER_LOG"):
            print(worker.log_tail(30))
