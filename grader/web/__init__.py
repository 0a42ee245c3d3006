"""The Flask app: `create_app(settings)` is the web process's composition root.

The factory only wires things: extensions, blueprints per audience, error handlers. It opens no
connection and runs no migration; the database is touched on the first request that needs it.
"""

from __future__ import annotations

from flask import Flask

from grader.config import Settings
from grader.interfaces import TaskQueue


def create_app(settings: Settings | None = None, *, queue: TaskQueue | None = None) -> Flask:
    from grader.web import api, api_review, api_staff, auth, errors, learner, review, staff, templating
    from grader.web.context import register_context

    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.is_production,
        WTF_CSRF_TIME_LIMIT=None,
    )
    register_context(app, settings, queue)
    auth.register(app)
    templating.register(app)
    app.register_blueprint(learner.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api_review.bp)
    app.register_blueprint(api_staff.bp)
    errors.register(app)
    return app
