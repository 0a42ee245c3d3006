"""Per-app and per-request plumbing: settings, the task queue and a database session per request."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request
from sqlalchemy.orm import Session, sessionmaker

from grader.broker import CeleryTaskQueue, make_result_signal
from grader.config import Settings
from grader.db import make_engine, make_session_factory
from grader.interfaces import ResultSignal, TaskQueue
from grader.services.credentials import dispatch_on_commit

EXTENSION = "grader"
# Scripts, styles, images, fonts and forms from this origin only; no plugins, no <base>, no framing.
_PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# JSON loads nothing at all, even if a browser is tricked into rendering it.
_API_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


@dataclass
class WebContext:
    settings: Settings
    sessions: sessionmaker[Session]
    queue: TaskQueue
    signal: ResultSignal


def register_context(app: Flask, settings: Settings, queue: TaskQueue | None) -> None:
    sessions = make_session_factory(make_engine(settings))
    queue = queue or CeleryTaskQueue(settings)
    # A review that completes a program opens its credential: a worker signs it once this commits.
    dispatch_on_commit(sessions, queue)
    app.extensions[EXTENSION] = WebContext(
        settings=settings, sessions=sessions, queue=queue, signal=make_result_signal(settings)
    )

    @app.after_request
    def _security_headers(response: Response) -> Response:
        # On every response; a view that sets one of these itself (a download's sandbox policy) keeps
        # its own, but no response of ours may be framed.
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        policy = headers.get("Content-Security-Policy")
        if policy is None:
            headers["Content-Security-Policy"] = (
                _API_POLICY if request.path.startswith("/api/") else _PAGE_POLICY
            )
        elif "frame-ancestors" not in policy:
            headers["Content-Security-Policy"] = f"{policy.rstrip('; ')}; frame-ancestors 'none'"
        if settings.is_production:
            # Production is served over HTTPS only: browsers are told never to try plain HTTP.
            headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
        if request.endpoint != "static":
            # Pages show learners' work and grades: none of it is kept in a shared computer's cache,
            # where the Back button would show it again after logout.
            headers.setdefault("Cache-Control", "no-store")
        return response

    @app.teardown_appcontext
    def _close_session(exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is None:
            return
        try:
            if exc is None:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()


def web() -> WebContext:
    context: WebContext = current_app.extensions[EXTENSION]
    return context


def db() -> Session:
    """The request's session; committed at the end of a successful request, rolled back otherwise."""
    if "db_session" not in g:
        g.db_session = web().sessions()
    session: Session = g.db_session
    return session
