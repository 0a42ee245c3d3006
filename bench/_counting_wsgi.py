"""Bench-only composition root of the web app: `gunicorn bench._counting_wsgi:app`.

The real app of `grader.entrypoints.wsgi`, wrapped so that each request is labelled by its route for
the SQL counts (GRADER_BENCH_COUNT_DIR) and, under GRADER_BENCH_PROFILE=1, profiled with cProfile. It
also answers GET /_bench/ping with a tiny JSON body: the trivial-endpoint anchor when the app has no
/healthz of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue

from bench._instrumentation import ProcessCounts, consume, install, request_label
from grader.web import create_app

WsgiApp = Any
PING_PATH = "/_bench/ping"


class CountingMiddleware:
    """Labels each request for the counts; profiles it when the bench asked for profiles."""

    def __init__(self, app: WsgiApp, counts: ProcessCounts) -> None:
        self.app = app
        self.counts = counts

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        label = request_label(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""))
        self.counts.begin(label)
        try:
            if not self.counts.profiling_now():
                return consume(self.app(environ, start_response))
            profiler = self.counts.profiler()
            profiler.enable()
            try:
                return consume(self.app(environ, start_response))
            finally:
                profiler.disable()
                self.counts.add_profile(label, profiler)
        finally:
            self.counts.end()


def _ping() -> ResponseReturnValue:
    return jsonify({"ok": True})


def build() -> WsgiApp:
    counts = install("web")
    flask_app = create_app()
    flask_app.add_url_rule(PING_PATH, "bench_ping", _ping)
    if counts is None:
        return flask_app
    flask_app.wsgi_app = CountingMiddleware(flask_app.wsgi_app, counts)  # type: ignore[method-assign]
    return flask_app


app = build()
