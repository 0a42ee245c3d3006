"""A tiny JSON todo API as a WSGI application (PEP 3333), standard library only.

Your task: finish this module so that it behaves as the assignment describes.

    GET    /todos              list todos, oldest first: {"items": [...], "total": n, "limit": l, "offset": o}
                               query parameters: limit (1-100, default 20), offset (>= 0, default 0)
    POST   /todos              create a todo from a JSON object {"title": str, "done": bool (optional)}
                               -> 201 Created, the todo as JSON, and a Location header
    GET    /todos/<id>         one todo -> 200, or 404 if there is no such todo
    DELETE /todos/<id>         -> 204 No Content, or 404

Errors are JSON objects such as {"error": "title must be a non-empty string"} with the right status
code (400, 404, 405 with an Allow header, 415). Every response with a body has a correct
Content-Type and Content-Length.

Keep `make_app()`: the graders build a fresh application with it for every test.
Run the server locally with `python3 todo_app.py` and try `curl -i localhost:8000/todos`.
"""

from __future__ import annotations

import json
from http import HTTPStatus


class TodoApp:
    def __init__(self):
        self.todos = {}  # id -> {"id": int, "title": str, "done": bool}
        self.next_id = 1

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "/")

        if path == "/todos" and method == "GET":
            # TODO: support the limit and offset query parameters (environ["QUERY_STRING"]).
            items = [self.todos[key] for key in sorted(self.todos)]
            body = {"items": items, "total": len(items), "limit": 20, "offset": 0}
            return json_response(start_response, HTTPStatus.OK, body)

        # TODO: POST /todos, GET /todos/<id>, DELETE /todos/<id>, 404 and 405 responses.
        return json_response(
            start_response, HTTPStatus.NOT_IMPLEMENTED, {"error": f"{method} {path} is not implemented yet"}
        )


def json_response(start_response, status, body, extra_headers=()):
    """Send `body` as JSON with the given `HTTPStatus`; returns the WSGI response iterable."""
    data = json.dumps(body).encode("utf-8")
    headers = [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Content-Length", str(len(data))),
        *extra_headers,
    ]
    start_response(f"{status.value} {status.phrase}", headers)
    return [data]


def make_app():
    """A new application with an empty store."""
    return TodoApp()


app = make_app()


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    with make_server("127.0.0.1", 8000, app) as server:
        print("Serving on http://127.0.0.1:8000/todos")
        server.serve_forever()
