"""WSGI entry point for gunicorn (settings from GRADER_*), as compose.yaml runs it:
`gunicorn -c python:grader.entrypoints.gunicorn_conf 'grader.entrypoints.wsgi:app'`."""

from grader import logs
from grader.config import Settings
from grader.web import create_app

settings = Settings.from_env()
logs.configure(settings.log_format)
app = create_app(settings)
