"""Todo API: a WSGI app built from small handler functions and a route table."""

import json
import re
from urllib.parse import parse_qsl

REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
}
BODY_LIMIT = 16_384
PAGE_DEFAULT, PAGE_MAX = 20, 100
TITLE_MAX = 200


class ApiError(Exception):
    def __init__(self, status, message, allow=None):
        super().__init__(message)
        self.status = status
        self.allow = allow


def send(start_response, status, payload=None, headers=()):
    headers = list(headers)
    if payload is None:
        start_response(f"{status} {REASONS[status]}", headers)
        return []
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(f"{status} {REASONS[status]}", headers)
    return [body]


def parse_page(query_string):
    params = dict(parse_qsl(query_string))
    page = {}
    for name, default, low, high in (("limit", PAGE_DEFAULT, 1, PAGE_MAX), ("offset", 0, 0, None)):
        raw = params.get(name)
        if raw is None:
            page[name] = default
            continue
        if not re.fullmatch(r"[0-9]+", raw):
            raise ApiError(400, f"{name} must be a whole number")
        value = int(raw)
        if value < low or (high is not None and value > high):
            raise ApiError(400, f"{name} is out of range")
        page[name] = value
    return page


def read_todo(environ):
    if environ.get("CONTENT_TYPE", "").partition(";")[0].strip() != "application/json":
        raise ApiError(415, "expected application/json")
    length = environ.get("CONTENT_LENGTH") or "0"
    if not length.isdigit():
        raise ApiError(400, "bad Content-Length")
    if int(length) > BODY_LIMIT:
        raise ApiError(413, "body too large")
    try:
        data = json.loads(environ["wsgi.input"].read(int(length)))
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise ApiError(400, "body is not valid JSON") from None
    if type(data) is not dict:
        raise ApiError(400, "expected a JSON object")
    extra = sorted(set(data) - {"title", "done"})
    if extra:
        raise ApiError(400, "unexpected field(s): " + ", ".join(extra))
    title = data.get("title")
    if type(title) is not str or not title.strip() or len(title.strip()) > TITLE_MAX:
        raise ApiError(400, f"title must be 1 to {TITLE_MAX} characters of text")
    done = data.get("done", False)
    if type(done) is not bool:
        raise ApiError(400, "done must be a boolean")
    return title.strip(), done


def make_app():
    todos = {}
    counter = [0]

    def find(todo_id):
        if todo_id not in todos:
            raise ApiError(404, f"no todo with id {todo_id}")
        return todos[todo_id]

    def list_todos(environ, start_response):
        page = parse_page(environ.get("QUERY_STRING", ""))
        every = [todos[k] for k in sorted(todos)]
        window = every[page["offset"] : page["offset"] + page["limit"]]
        return send(start_response, 200, {"items": window, "total": len(every), **page})

    def create_todo(environ, start_response):
        title, done = read_todo(environ)
        counter[0] += 1
        todo = todos[counter[0]] = {"id": counter[0], "title": title, "done": done}
        return send(start_response, 201, todo, [("Location", f"/todos/{todo['id']}")])

    def show_todo(environ, start_response, todo_id):
        return send(start_response, 200, find(todo_id))

    def delete_todo(environ, start_response, todo_id):
        find(todo_id)
        del todos[todo_id]
        return send(start_response, 204)

    routes = [
        (re.compile(r"/todos"), {"GET": list_todos, "POST": create_todo}),
        (re.compile(r"/todos/([0-9]+)"), {"GET": show_todo, "DELETE": delete_todo}),
    ]

    def application(environ, start_response):
        try:
            path = environ.get("PATH_INFO", "")
            for pattern, handlers in routes:
                match = pattern.fullmatch(path)
                if not match:
                    continue
                handler = handlers.get(environ["REQUEST_METHOD"])
                if handler is None:
                    raise ApiError(405, "method not allowed", allow=", ".join(handlers))
                return handler(environ, start_response, *(int(g) for g in match.groups()))
            raise ApiError(404, "not found")
        except ApiError as err:
            extra = [("Allow", err.allow)] if err.allow else []
            return send(start_response, err.status, {"error": str(err)}, extra)

    return application


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    make_server("", 8000, make_app()).serve_forever()
