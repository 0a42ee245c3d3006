"""Hidden tests for the `wsgi-todo-api` assessment.

The tests call the learner's WSGI application directly: no server, no network. Every assertion
compares plain data the tests built themselves (ints, strs, and the result of `json.loads` on the raw
bytes the application returned), never an object the learner's code handed back, so a return value
with a rigged `__eq__` cannot pass a test.
"""

from __future__ import annotations

import io
import json
import time
import wsgiref.util
import wsgiref.validate
from dataclasses import dataclass

import pytest
import todo_app

JSON = "application/json"


# ---------------------------------------------------------------- a tiny WSGI client


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self):
        return json.loads(self.body.decode("utf-8"))


def call(app, method, path, *, body=None, content_type=JSON, query=""):
    """Call `app` the way a WSGI server would and return a Response of plain values."""
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(raw)) if raw else "",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.errors": io.StringIO(),
    }
    if raw:
        environ["CONTENT_TYPE"] = content_type
    wsgiref.util.setup_testing_defaults(environ)

    captured = []

    def start_response(status, headers, exc_info=None):
        captured.append((status, headers))
        return lambda data: None

    result = app(environ, start_response)
    try:
        chunks = []
        for chunk in result:
            assert type(chunk) is bytes, f"the body must be an iterable of bytes, got {type(chunk).__name__}"
            chunks.append(bytes(chunk))
    finally:
        if hasattr(result, "close"):
            result.close()

    assert len(captured) == 1, "start_response must be called exactly once"
    status, headers = captured[0]
    assert type(status) is str, "the status must be a str such as '200 OK'"
    code, _, reason = str(status).partition(" ")
    assert code.isdigit() and len(code) == 3, f"malformed status line {status!r}"
    plain_headers = {}
    for pair in headers:
        name, value = pair
        assert type(name) is str and type(value) is str, "header names and values must be str"
        plain_headers[str(name).lower()] = str(value)
    return Response(int(code), str(reason), plain_headers, b"".join(chunks))


def assert_json(response):
    content_type = response.headers.get("content-type", "")
    assert content_type.split(";")[0].strip().lower() == JSON, f"Content-Type was {content_type!r}"
    assert int(response.headers.get("content-length", "-1")) == len(response.body), (
        "Content-Length must be the length of the body in bytes"
    )
    return response.json()


def assert_error(response, status):
    assert response.status == status, f"expected {status}, got {response.status} {response.reason}"
    data = assert_json(response)
    assert isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"], (
        'an error response must be a JSON object like {"error": "what went wrong"}'
    )


@pytest.fixture
def app():
    """A fresh application per test, so tests never see each other's todos."""
    return todo_app.make_app()


# ---------------------------------------------------------------- the tests


def test_list_starts_empty(app):
    response = call(app, "GET", "/todos")
    assert response.status == 200
    assert response.reason == "OK"
    assert assert_json(response) == {"items": [], "total": 0, "limit": 20, "offset": 0}


def test_create_returns_201_with_location(app):
    response = call(app, "POST", "/todos", body={"title": "  Write the design note  "})
    assert response.status == 201
    assert response.reason == "Created"
    assert assert_json(response) == {"id": 1, "title": "Write the design note", "done": False}
    assert response.headers.get("location") == "/todos/1"


def test_created_todo_can_be_fetched(app):
    call(app, "POST", "/todos", body={"title": "Buy oat milk"})
    call(app, "POST", "/todos", body={"title": "Book the dentist", "done": True})
    response = call(app, "GET", "/todos/2")
    assert response.status == 200
    assert assert_json(response) == {"id": 2, "title": "Book the dentist", "done": True}
    listing = assert_json(call(app, "GET", "/todos"))
    assert listing["total"] == 2
    assert [item["title"] for item in listing["items"]] == ["Buy oat milk", "Book the dentist"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="missing-title"),
        pytest.param({"title": "   "}, id="blank-title"),
        pytest.param({"title": 42}, id="title-not-a-string"),
        pytest.param({"title": "x" * 201}, id="title-too-long"),
        pytest.param({"title": "Walk the dog", "done": "yes"}, id="done-not-a-bool"),
        pytest.param({"title": "Walk the dog", "priority": 3}, id="unknown-field"),
        pytest.param(["Walk the dog"], id="not-an-object"),
        pytest.param(b'{"title": "Walk the dog"', id="malformed-json"),
    ],
)
def test_create_rejects_invalid_payload(app, body):
    assert_error(call(app, "POST", "/todos", body=body), 400)
    assert assert_json(call(app, "GET", "/todos"))["total"] == 0, "a rejected todo must not be stored"


def test_create_requires_json_content_type(app):
    response = call(
        app, "POST", "/todos", body=b"title=Walk+the+dog", content_type="application/x-www-form-urlencoded"
    )
    assert_error(response, 415)


def test_unknown_todo_is_404(app):
    call(app, "POST", "/todos", body={"title": "Only one"})
    assert_error(call(app, "GET", "/todos/2"), 404)
    assert_error(call(app, "GET", "/todos/abc"), 404)
    assert_error(call(app, "GET", "/nothing-here"), 404)


def test_delete_removes_todo_and_ids_are_not_reused(app):
    for title in ("first", "second", "third"):
        call(app, "POST", "/todos", body={"title": title})
    response = call(app, "DELETE", "/todos/2")
    assert response.status == 204
    assert response.body == b""
    assert "content-type" not in response.headers, "a 204 response has no body and no Content-Type"
    assert_error(call(app, "GET", "/todos/2"), 404)
    assert_error(call(app, "DELETE", "/todos/2"), 404)
    created = assert_json(call(app, "POST", "/todos", body={"title": "fourth"}))
    assert created["id"] == 4
    listing = assert_json(call(app, "GET", "/todos"))
    assert [item["id"] for item in listing["items"]] == [1, 3, 4]


def test_wrong_method_is_405_with_allow_header(app):
    response = call(app, "PUT", "/todos", body={"title": "nope"})
    assert_error(response, 405)
    assert {m.strip() for m in response.headers.get("allow", "").split(",")} == {"GET", "POST"}
    call(app, "POST", "/todos", body={"title": "exists"})
    response = call(app, "POST", "/todos/1", body={"title": "nope"})
    assert_error(response, 405)
    assert {m.strip() for m in response.headers.get("allow", "").split(",")} == {"GET", "DELETE"}


@pytest.fixture
def seeded_app(app):
    titles = [f"Task {n:03d}" for n in range(1, 251)]
    for title in titles:
        response = call(app, "POST", "/todos", body={"title": title})
        assert response.status == 201
    # Bench ballast: stands in for a slow integration step (seeding a real database, say) so that the
    # suite takes about two seconds, like a small real course's tests. The benchmark (`bench/`) measures
    # the service's overhead against this run time; keep it when editing the tests.
    time.sleep(1.5)
    return app, titles


def test_pagination_walks_every_item(seeded_app):
    app, titles = seeded_app
    seen = []
    offset = 0
    while True:
        page = assert_json(call(app, "GET", "/todos", query=f"limit=100&offset={offset}"))
        assert page["total"] == 250
        assert page["limit"] == 100 and page["offset"] == offset
        if not page["items"]:
            break
        assert len(page["items"]) <= 100
        seen.extend(page["items"])
        offset += 100
    assert [item["title"] for item in seen] == titles
    assert [item["id"] for item in seen] == list(range(1, 251))
    default_page = assert_json(call(app, "GET", "/todos"))
    assert [item["id"] for item in default_page["items"]] == list(range(1, 21))
    last = assert_json(call(app, "GET", "/todos", query="limit=7&offset=245"))
    assert [item["id"] for item in last["items"]] == [246, 247, 248, 249, 250]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("limit=0", id="zero-limit"),
        pytest.param("limit=101", id="limit-above-100"),
        pytest.param("limit=ten", id="limit-not-a-number"),
        pytest.param("offset=-1", id="negative-offset"),
        pytest.param("limit=5&offset=1.5", id="fractional-offset"),
    ],
)
def test_pagination_rejects_bad_parameters(app, query):
    assert_error(call(app, "GET", "/todos", query=query), 400)


def test_app_is_wsgi_compliant(app):
    # wsgiref's validator checks the PEP 3333 contract: str status, list of str header tuples,
    # a Content-Type on every response with a body, bytes chunks, and so on.
    checked = wsgiref.validate.validator(app)
    assert call(checked, "GET", "/todos").status == 200
    assert call(checked, "POST", "/todos", body={"title": "validated"}).status == 201
    assert call(checked, "GET", "/todos/1").status == 200
    assert call(checked, "GET", "/todos/9").status == 404
    assert call(checked, "DELETE", "/todos/1").status == 204
