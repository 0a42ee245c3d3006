"""WSGI entry point for gunicorn: `gunicorn 'grader.wsgi:app'` (settings from GRADER_* variables)."""

from grader.web import create_app

app = create_app()
