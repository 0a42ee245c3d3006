"""My todo API for the WSGI assignment.

Works with curl for the normal cases (create, list, get, delete).
"""

import json
from http import HTTPStatus
from urllib.parse import parse_qs


def make_app():
    return TodoApi()


class TodoApi:
    def __init__(self):
        self.todos = []

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        parts = environ.get("PATH_INFO", "/").strip("/").split("/")

        if parts[0] != "todos" or len(parts) > 2:
            return self.reply(start_response, 404, {"error": "not found"})

        if len(parts) == 1:
            if method == "GET":
                return self.list(environ, start_response)
            if method == "POST":
                return self.create(environ, start_response)
            return self.reply(start_response, 405, {"error": "method not allowed"}, [("Allow", "GET, POST")])

        todo = self.find(parts[1])
        if method not in ("GET", "DELETE"):
            return self.reply(
                start_response, 405, {"error": "method not allowed"}, [("Allow", "GET, DELETE")]
            )
        if todo is None:
            return self.reply(start_response, 404, {"error": "todo not found"})
        if method == "GET":
            return self.reply(start_response, 200, todo)
        self.todos.remove(todo)
        start_response("204 No Content", [])
        return [b""]

    def list(self, environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            limit = int(query.get("limit", ["20"])[0])
            offset = int(query.get("offset", ["0"])[0])
        except ValueError:
            return self.reply(start_response, 400, {"error": "limit and offset must be numbers"})
        if limit < 1 or offset < 0:
            return self.reply(start_response, 400, {"error": "limit and offset must be positive"})
        limit = min(limit, 100)  # cap the page size
        page = self.todos[offset : offset + limit]
        return self.reply(
            start_response, 200, {"items": page, "total": len(self.todos), "limit": limit, "offset": offset}
        )

    def create(self, environ, start_response):
        if not environ.get("CONTENT_TYPE", "").startswith("application/json"):
            return self.reply(start_response, 415, {"error": "use application/json"})
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
            data = json.loads(environ["wsgi.input"].read(size))
        except ValueError:
            return self.reply(start_response, 400, {"error": "invalid json"})
        if not isinstance(data, dict):
            return self.reply(start_response, 400, {"error": "expected an object"})
        if set(data) - {"title", "done"}:
            return self.reply(start_response, 400, {"error": "unknown field"})
        title = data.get("title")
        done = data.get("done", False)
        if not isinstance(title, str) or not title.strip() or len(title.strip()) > 200:
            return self.reply(start_response, 400, {"error": "title is required"})
        if not isinstance(done, bool):
            return self.reply(start_response, 400, {"error": "done must be true or false"})
        todo = {"id": len(self.todos) + 1, "title": title.strip(), "done": done}
        self.todos.append(todo)
        return self.reply(start_response, 201, todo)

    def find(self, raw_id):
        for todo in self.todos:
            if str(todo["id"]) == raw_id:
                return todo
        return None

    def reply(self, start_response, code, data, headers=None):
        body = json.dumps(data).encode()
        status = HTTPStatus(code)
        start_response(
            f"{code} {status.phrase}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))] + (headers or []),
        )
        return [body]


app = make_app()

if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    print("http://localhost:8000/todos")
    make_server("", 8000, app).serve_forever()
