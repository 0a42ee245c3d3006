"""The Flask app: `create_app(settings)` is the web process's composition root.

The factory only wires things: extensions, blueprints per audience, error handlers. It opens no
connection and runs no migration; the database is touched on the first request that needs it.
"""

from __future__ import annotations

from flask import Flask

from grader.config import Settings
from grader.interfaces import TaskQueue


def create_app(settings: Settings | None = None, *, queue: TaskQueue | None = None) -> Flask:
    from grader.web import (
        api,
        api_portfolio,
        api_review,
        api_staff,
        auth,
        credentials,
        errors,
        learner,
        portfolio,
        review,
        staff,
        templating,
    )
    from grader.web.context import register_context
    from grader.web.credential_files import bp as credential_files_bp
    from grader.web.credential_pages import bp as credential_pages_bp
    from grader.web.health import bp as health_bp
    from grader.web.openapi import bp as openapi_bp

    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        # The session cookie: out of reach of scripts, not sent by cross-site requests other than
        # top-level links, HTTPS only in production, where the __Host- prefix also pins it to this
        # host (no Domain attribute, path /, Secure), so a sibling subdomain cannot set or shadow it.
        SESSION_COOKIE_NAME="__Host-session" if settings.is_production else "session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        # Also the limit auth.py puts on a login's age; cookies are signed with a timestamp and
        # refused past it.
        PERMANENT_SESSION_LIFETIME=auth.SESSION_LIFETIME,
        SESSION_REFRESH_EACH_REQUEST=False,
        # Remember-me is never offered (login_user(remember=False)); should a cookie of that name be
        # set anyway it is as locked down as the session's.
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.is_production,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_DURATION=auth.SESSION_LIFETIME,
        # The CSRF token lives as long as the session; it is renewed at every login.
        WTF_CSRF_TIME_LIMIT=None,
    )
    register_context(app, settings, queue)
    auth.register(app)
    templating.register(app)
    app.register_blueprint(learner.bp)
    app.register_blueprint(portfolio.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api_review.bp)
    app.register_blueprint(api_staff.bp)
    app.register_blueprint(api_portfolio.bp)
    app.register_blueprint(credentials.bp)
    app.register_blueprint(credentials.api_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(credential_files_bp)
    app.register_blueprint(credential_pages_bp)
    app.register_blueprint(health_bp)
    errors.register(app)
    return app
