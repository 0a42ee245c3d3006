"""A portfolio's files may be as large as their slots say, not as the default request limit: with
`GRADER_MAX_REQUEST_BYTES` left at 2 MB, the sample write-up's design note (a 10 MB slot) takes a file just
under 10 MB through the API and through the page; one over the slot's limit is refused naming the slot
while it streams, and one over every slot's limit before its body is read at all. Every other route,
and anyone who may not hand the portfolio in, keeps the 2 MB limit."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask, Request
from flask.testing import FlaskClient
from openapi_core import OpenAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.models import DraftItem
from tests.conftest import Account, make_account
from tests.web.test_openapi import DOCUMENT, Described
from tests.web.test_pages import csrf_token, log_in

MB = 1024 * 1024
SAMPLE_CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog"
PROGRAM = "python-web-developer"
SLUG = "deployed-web-service-writeup"
BASE = f"/api/v1/assessments/{SLUG}/portfolio"
PAGE = f"/assessments/{SLUG}/portfolio"
NOTE_LIMIT = 10 * MB  # the design note's max_mb in the sample catalog
REQUEST_LIMIT = NOTE_LIMIT + MB  # its largest file and the room for the rest of the form


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        secret_key="test-secret-key",
        catalog_path=tmp_path / "catalog",
        submissions_per_hour=100,
    )


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    shutil.copytree(SAMPLE_CATALOG, settings.catalog_path)
    return settings.catalog_path


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(yaml.safe_load(DOCUMENT.read_text(encoding="utf-8")))


@pytest.fixture
def api(app: Flask, client: FlaskClient, openapi: OpenAPI) -> Described:
    return Described(app, client, openapi)


@pytest.fixture
def ada(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada@example.org", programs=(PROGRAM,))


class CountingFile(io.BytesIO):
    """An uploaded part as Werkzeug spools it, counting what the app reads back out of it."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


@pytest.fixture
def parts(app: Flask) -> list[CountingFile]:
    """Every file part the app spools from a request body: none while a body is refused unread."""
    spooled: list[CountingFile] = []

    class CountingRequest(Request):
        def _get_file_stream(self, *args: Any, **kwargs: Any) -> CountingFile:
            spooled.append(CountingFile())
            return spooled[-1]

    app.request_class = CountingRequest
    return spooled


def note(size: int) -> bytes:
    """A Markdown design note of exactly `size` bytes."""
    head = b"# Design note\n\nHow the todo service is deployed.\n\n"
    line = b"The service answers every request with JSON and a status that says what happened.\n"
    body = head + line * ((size - len(head)) // len(line) + 1)
    return body[: size - 1] + b"\n"


def send_note(api: Described, who: Account, data: bytes, *, expect: int) -> dict[str, Any]:
    body = api.call(
        "POST",
        f"{BASE}/files",
        who,
        expect=expect,
        well_formed=expect < 400,
        data={"slot": "design-note", "file": (io.BytesIO(data), "note.md")},
        content_type="multipart/form-data",
    ).get_json()
    assert isinstance(body, dict)
    return body


def held(sessions: sessionmaker[Session]) -> list[tuple[str, int]]:
    with sessions() as session:
        return [(i.slot, i.size) for i in session.scalars(select(DraftItem).order_by(DraftItem.id))]


def test_the_default_request_limit_is_below_the_slot(settings: Settings) -> None:
    assert settings.max_request_bytes == 2 * MB < NOTE_LIMIT  # else this file tests nothing


# ---------------------------------------------------------------- the API


def test_the_api_takes_a_file_just_under_its_slots_limit_and_says_both_limits(
    api: Described, ada: Account, loaded: sessionmaker[Session]
) -> None:
    described = api.json("GET", BASE, ada, expect=200)
    assert described["request_limit_bytes"] == REQUEST_LIMIT
    design = next(slot for slot in described["slots"] if slot["id"] == "design-note")
    assert design["max_bytes"] == design["accepted_bytes"] == NOTE_LIMIT

    item = send_note(api, ada, note(NOTE_LIMIT - 1024), expect=201)
    assert (item["slot"], item["size"], item["type"]) == ("design-note", NOTE_LIMIT - 1024, "markdown")
    assert held(loaded) == [("design-note", NOTE_LIMIT - 1024)]


def test_the_api_refuses_a_file_over_its_slots_limit_naming_the_slot_while_it_streams(
    api: Described, ada: Account, loaded: sessionmaker[Session], parts: list[CountingFile]
) -> None:
    data = note(NOTE_LIMIT + 512 * 1024)
    error = send_note(api, ada, data, expect=413)["error"]
    assert error["message"] == 'the design note "note.md" is larger than 10 MB, the most it may be'
    assert error["details"] == {"field": "design-note", "rule": "too_large", "limit": NOTE_LIMIT}
    (part,) = parts
    assert part.bytes_read == NOTE_LIMIT + 1 < len(data)  # the guard stopped one byte past the limit
    assert held(loaded) == []


def test_the_api_refuses_a_file_larger_than_any_slot_takes_before_reading_its_body(
    api: Described, ada: Account, loaded: sessionmaker[Session], parts: list[CountingFile]
) -> None:
    error = send_note(api, ada, note(REQUEST_LIMIT + 1), expect=413)["error"]
    assert error["message"] == (
        "the request is larger than the limit of 11 MB: no part of Deployed web service write-up takes a "
        "file that large; the largest, Design note, takes files of up to 10 MB"
    )
    assert error["details"] == {"field": "body", "limit_bytes": REQUEST_LIMIT, "slot": "design-note"}
    assert parts == []  # the form was never parsed: not one byte of the body was read
    assert held(loaded) == []


def test_every_other_route_keeps_the_default_limit(
    api: Described, ada: Account, loaded: sessionmaker[Session], parts: list[CountingFile]
) -> None:
    three_mb = note(3 * MB)
    error = api.json(
        "PUT", f"{BASE}/statements/reflection", ada, expect=413, well_formed=False,
        json={"text": three_mb.decode()},
    )["error"]  # fmt: skip
    assert (error["message"], error["details"]) == (
        "the request is larger than the limit of 2 MB",
        {"field": "body", "limit_bytes": 2 * MB},
    )
    # A whole portfolio in one POST /submissions: its assessment is inside the body, so no larger limit.
    error = api.json(
        "POST", "/api/v1/submissions", ada, expect=413, well_formed=False,
        data={"assessment": SLUG, "files.design-note": (io.BytesIO(three_mb), "note.md")},
        content_type="multipart/form-data",
    )["error"]  # fmt: skip
    assert error["message"] == "the request is larger than the limit of 2 MB"
    assert parts == [] and held(loaded) == []


# ---------------------------------------------------------------- the page


def post_page(client: FlaskClient, data: bytes) -> Any:
    token = csrf_token(client.get(PAGE).get_data(as_text=True))
    return client.post(
        PAGE,
        data={"csrf_token": token, "action": "save", "files.design-note": (io.BytesIO(data), "note.md")},
        content_type="multipart/form-data",
    )


def test_the_page_saves_a_file_just_under_its_slots_limit(
    client: FlaskClient, ada: Account, loaded: sessionmaker[Session]
) -> None:
    log_in(client, ada)
    page = client.get(PAGE).get_data(as_text=True)
    assert "at most 11 MB in one save" in page
    assert f'data-request-limit="{REQUEST_LIMIT}"' in page
    assert "A PDF or a Markdown file, up to 10 MB." in page
    response = post_page(client, note(NOTE_LIMIT - 1024))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    assert held(loaded) == [("design-note", NOTE_LIMIT - 1024)]


def test_the_page_refuses_a_file_over_its_slots_limit_naming_the_slot(
    client: FlaskClient, ada: Account, loaded: sessionmaker[Session], parts: list[CountingFile]
) -> None:
    log_in(client, ada)
    response = post_page(client, note(NOTE_LIMIT + 512 * 1024))
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "The design note &#34;note.md&#34; is larger than 10 MB, the most it may be." in page
    assert '<a href="#slot-design-note">Design note</a>' in page
    (part,) = parts
    assert part.bytes_read == NOTE_LIMIT + 1
    assert held(loaded) == []


def test_the_page_refuses_a_save_larger_than_any_slot_takes_before_reading_it(
    client: FlaskClient, ada: Account, parts: list[CountingFile]
) -> None:
    log_in(client, ada)
    response = post_page(client, note(REQUEST_LIMIT + 1))
    assert response.status_code == 413
    assert "larger than 11 MB, the most one save can carry, so nothing of it was saved" in (
        response.get_data(as_text=True)
    )
    assert parts == []


def test_someone_who_may_not_hand_it_in_gets_no_larger_limit(
    client: FlaskClient, loaded: sessionmaker[Session], parts: list[CountingFile]
) -> None:
    stranger = make_account(loaded, "eve@example.org")  # enrolled in no program
    log_in(client, stranger)
    token = csrf_token(client.get("/").get_data(as_text=True))
    response = client.post(
        PAGE,
        data={"csrf_token": token, "action": "save", "files.design-note": (io.BytesIO(note(3 * MB)), "n.md")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 403
    assert parts == []  # refused at the default 2 MB, unread: a stranger cannot make the app spool 3 MB
