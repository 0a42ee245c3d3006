"""Reference solution: a tiny JSON todo API as a WSGI application, standard library only.

Run it locally with `python3 todo_app.py` and try `curl -i localhost:8000/todos`.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from urllib.parse import parse_qs

MAX_TITLE_LENGTH = 200
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_BODY_BYTES = 64 * 1024

ITEM_PATH = re.compile(r"^/todos/(\d+)$")


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class TodoApp:
    """One WSGI application with its own in-memory store."""

    def __init__(self) -> None:
        self._todos: dict[int, dict] = {}
        self._next_id = 1

    def __call__(self, environ, start_response):
        try:
            status, body, headers = self._dispatch(environ)
        except HttpError as err:
            status, body, headers = err.status, {"error": err.message}, err.headers
        return self._respond(start_response, status, body, headers)

    # ------------------------------------------------------------ routing

    def _dispatch(self, environ):
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO") or "/"
        if path == "/todos":
            if method == "GET":
                return self._list(environ)
            if method == "POST":
                return self._create(environ)
            raise HttpError(
                HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on /todos", [("Allow", "GET, POST")]
            )
        match = ITEM_PATH.match(path)
        if match:
            todo_id = int(match.group(1))
            if method == "GET":
                return HTTPStatus.OK, self._get(todo_id), []
            if method == "DELETE":
                self._get(todo_id)
                del self._todos[todo_id]
                return HTTPStatus.NO_CONTENT, None, []
            raise HttpError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{method} is not allowed on {path}",
                [("Allow", "GET, DELETE")],
            )
        raise HttpError(HTTPStatus.NOT_FOUND, f"no route for {path}")

    # ------------------------------------------------------------ handlers

    def _list(self, environ):
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        limit = _int_param(query, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
        offset = _int_param(query, "offset", 0, minimum=0, maximum=None)
        ids = sorted(self._todos)
        page = [self._todos[i] for i in ids[offset : offset + limit]]
        return HTTPStatus.OK, {"items": page, "total": len(ids), "limit": limit, "offset": offset}, []

    def _create(self, environ):
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the todo as application/json")
        payload = _read_json(environ)
        if not isinstance(payload, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        unknown = set(payload) - {"title", "done"}
        if unknown:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"unknown fields: {', '.join(sorted(unknown))}")
        title = payload.get("title")
        if not isinstance(title, str) or not title.strip():
            raise HttpError(HTTPStatus.BAD_REQUEST, "title must be a non-empty string")
        title = title.strip()
        if len(title) > MAX_TITLE_LENGTH:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"title is longer than {MAX_TITLE_LENGTH} characters")
        done = payload.get("done", False)
        if not isinstance(done, bool):
            raise HttpError(HTTPStatus.BAD_REQUEST, "done must be true or false")

        todo = {"id": self._next_id, "title": title, "done": done}
        self._todos[todo["id"]] = todo
        self._next_id += 1
        return HTTPStatus.CREATED, todo, [("Location", f"/todos/{todo['id']}")]

    def _get(self, todo_id):
        try:
            return self._todos[todo_id]
        except KeyError:
            raise HttpError(HTTPStatus.NOT_FOUND, f"todo {todo_id} does not exist") from None

    # ------------------------------------------------------------ responses

    @staticmethod
    def _respond(start_response, status, body, extra_headers):
        status_line = f"{status.value} {status.phrase}"
        if body is None:
            start_response(status_line, list(extra_headers))
            return [b""]
        data = json.dumps(body).encode("utf-8")
        headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(data))),
            *extra_headers,
        ]
        start_response(status_line, headers)
        return [data]


def _read_json(environ):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "invalid Content-Length") from None
    if length > MAX_BODY_BYTES:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the body is too large")
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HttpError(HTTPStatus.BAD_REQUEST, "the body is not valid JSON") from None


def _int_param(query, name, default, *, minimum, maximum):
    values = query.get(name)
    if not values:
        return default
    text = values[-1]
    if not text.isascii() or not text.isdigit():
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be a whole number")
    value = int(text)
    if value < minimum:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be at most {maximum}")
    return value


def make_app():
    """A new application with an empty store (the tests build one per test)."""
    return TodoApp()


app = make_app()


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    with make_server("127.0.0.1", 8000, app) as server:
        print("Serving on http://127.0.0.1:8000/todos")
        server.serve_forever()
