"""WSGI entry point for gunicorn: `gunicorn 'grader.entrypoints.wsgi:app'` (settings from GRADER_*)."""

from grader.web import create_app

app = create_app()
