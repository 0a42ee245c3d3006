"""The edges of `grader`: the processes' composition roots (the `grader` command, the demo, the WSGI
app for gunicorn). They wire the web app, the workers and the services together, so they are the only
modules of `grader` that import both `grader.web` and `workers`; nothing else imports them."""
