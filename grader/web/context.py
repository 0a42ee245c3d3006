"""Per-app and per-request plumbing: settings, the task queue and a database session per request."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, g
from sqlalchemy.orm import Session, sessionmaker

from grader.broker import CeleryTaskQueue
from grader.config import Settings
from grader.db import make_engine, make_session_factory
from grader.interfaces import TaskQueue

EXTENSION = "grader"


@dataclass
class WebContext:
    settings: Settings
    sessions: sessionmaker[Session]
    queue: TaskQueue


def register_context(app: Flask, settings: Settings, queue: TaskQueue | None) -> None:
    app.extensions[EXTENSION] = WebContext(
        settings=settings,
        sessions=make_session_factory(make_engine(settings)),
        queue=queue or CeleryTaskQueue(settings),
    )

    @app.after_request
    def _security_headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        )
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
