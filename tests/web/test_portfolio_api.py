"""The portfolio API as a learner's script uses it: the slots and the draft, files one by one (each refused
by content, name, size while streaming, count, or a store that is down, with nothing recorded), links kept
as text and never fetched, statements by their word limits, the hand-in (twice is the same submission),
and a whole portfolio handed in with one multipart POST. Every exchange, refusals included, is checked
against the OpenAPI description."""

from __future__ import annotations

import hashlib
import io
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask, Request
from flask.testing import FlaskClient
from openapi_core import OpenAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.kinds import default_graders
from grader.models import DraftItem, PortfolioDraft, Submission
from grader.services.grading import process_run
from tests.conftest import Account, make_account
from tests.support.catalogs import write_catalog
from tests.support.portfolio import PROGRAM_SLUG, REFLECTION, pdf, png, write_portfolio_catalog
from tests.web.test_openapi import DOCUMENT, Described

MB = 1024 * 1024
BASE = "/api/v1/assessments/showcase/portfolio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        secret_key="test-secret-key",
        catalog_path=tmp_path / "catalog",
        submissions_per_hour=100,
        max_request_bytes=4 * MB,
    )


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    write_catalog(settings.catalog_path)
    return write_portfolio_catalog(settings.catalog_path)


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(yaml.safe_load(DOCUMENT.read_text(encoding="utf-8")))


@pytest.fixture
def api(app: Flask, client: FlaskClient, openapi: OpenAPI) -> Described:
    return Described(app, client, openapi)


@pytest.fixture
def ada(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada@example.org", programs=(PROGRAM_SLUG,))


def send_file(
    api: Described, who: Account, slot: str, data: bytes, name: str, *, expect: int
) -> dict[str, Any]:
    body = api.call(
        "POST",
        f"{BASE}/files",
        who,
        expect=expect,
        well_formed=expect < 400,
        data={"slot": slot, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    ).get_json()
    assert isinstance(body, dict)
    return body


def items(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as session:
        return [(i.slot, i.kind) for i in session.scalars(select(DraftItem).order_by(DraftItem.id))]


def blobs(settings: Settings) -> list[Path]:
    folder = settings.files_dir / "blobs"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def fill(api: Described, who: Account) -> None:
    send_file(api, who, "screenshot", png(), "shot.png", expect=201)
    api.call("PUT", f"{BASE}/links/repo", who, expect=200, json={"url": "https://github.com/ada/service"})
    api.call("PUT", f"{BASE}/statements/reflection", who, expect=200, json={"text": REFLECTION})


# ---------------------------------------------------------------- the draft, artifact by artifact


def test_the_slots_and_the_draft_read_as_declared_and_fill_one_artifact_at_a_time(
    api: Described, ada: Account, settings: Settings
) -> None:
    empty = api.json("GET", BASE, ada, expect=200)
    assert empty["request_limit_bytes"] == 4 * MB
    assert [(s["id"], s["kind"], s["required"]) for s in empty["slots"]] == [
        ("screenshot", "file", True),
        ("report", "file", False),
        ("repo", "link", True),
        ("demo", "link", False),
        ("reflection", "statement", True),
    ]
    screenshot, report = empty["slots"][0], empty["slots"][1]
    assert (screenshot["types"], screenshot["max_bytes"], screenshot["max_files"]) == (["png", "jpeg"], MB, 2)
    assert report["accepted_bytes"] == report["max_bytes"] == MB // 2
    assert empty["slots"][4]["prompt"] == "What would you test first, and why?"
    assert empty["draft"] == {
        "id": None,
        "updated_at": None,
        "missing": ["screenshot", "repo", "reflection"],
        "items": [],
    }

    shot = send_file(api, ada, "screenshot", png(), "shot.png", expect=201)
    assert (shot["slot"], shot["name"], shot["size"], shot["type"]) == (
        "screenshot",
        "shot.png",
        len(png()),
        "png",
    )
    assert (
        shot["sha256"] == hashlib.sha256(png()).hexdigest()
        and shot["type_in_words"] == "a PNG image of 8 \u00d7 6 pixels"
    )
    report_item = send_file(api, ada, "report", pdf(2), "design.pdf", expect=201)
    assert report_item["type_in_words"] == "a PDF of 2 pages"
    link = api.json(
        "PUT", f"{BASE}/links/repo", ada, expect=200, json={"url": "https://github.com/ada/service"}
    )
    assert (link["url"], link["host"], link["private"]) == (
        "https://github.com/ada/service",
        "github.com",
        False,
    )
    said = api.json("PUT", f"{BASE}/statements/reflection", ada, expect=200, json={"text": REFLECTION})
    assert said["words"] == 12

    draft = api.json("GET", BASE, ada, expect=200)["draft"]
    assert draft["id"] and draft["missing"] == []
    assert [(i["slot"], i["kind"]) for i in draft["items"]] == [
        ("screenshot", "file"),
        ("report", "file"),
        ("repo", "link"),
        ("reflection", "statement"),
    ]
    api.call("DELETE", f"{BASE}/items/{report_item['id']}", ada, expect=204)
    api.call("DELETE", f"{BASE}/items/{report_item['id']}", ada, expect=404, well_formed=False)
    api.call("PUT", f"{BASE}/statements/reflection", ada, expect=204, json={"text": "  "})  # empty: out
    assert api.json("GET", BASE, ada, expect=200)["draft"]["missing"] == ["reflection"]
    assert len(blobs(settings)) == 2  # the PDF's bytes stay in the store, unreferenced, until collected


ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 200
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>'


@pytest.mark.parametrize(
    ("slot", "data", "name", "status", "rule"),
    [
        ("screenshot", ELF, "shot.png", 400, "executable"),
        ("report", b"<!DOCTYPE html><html><body>hi</body></html>", "design.pdf", 400, "html"),
        ("screenshot", SVG, "logo.png", 400, "svg"),
        ("screenshot", png(), "../../etc/shot.png", 400, "bad_name"),
        ("screenshot", png(), "shot\u202egnp.exe", 400, "bidi_chars"),
        ("screenshot", png(), "shot\x07.png", 400, "control_chars"),
        ("report", pdf() + b"%" * MB, "big.pdf", 413, "too_large"),
    ],
    ids=["program-as-png", "html-as-pdf", "svg", "dot-dot-slash", "bidi", "control", "too-large"],
)
def test_a_bad_file_is_refused_by_rule_naming_its_slot_and_nothing_is_recorded(
    api: Described,
    ada: Account,
    loaded: sessionmaker[Session],
    settings: Settings,
    slot: str,
    data: bytes,
    name: str,
    status: int,
    rule: str,
) -> None:
    error = send_file(api, ada, slot, data, name, expect=status)["error"]
    assert (error["details"]["field"], error["details"]["rule"]) == (slot, rule)
    title = {"screenshot": "screenshot", "report": "design report"}[slot]
    assert error["message"].startswith(f"the {title}") or "file name" in error["message"]
    assert items(loaded) == [] and blobs(settings) == []


def test_too_many_files_an_unknown_slot_and_a_slot_of_another_kind_are_refused(
    api: Described, ada: Account, loaded: sessionmaker[Session]
) -> None:
    send_file(api, ada, "screenshot", png(), "a.png", expect=201)
    send_file(api, ada, "screenshot", png(9, 9), "b.png", expect=201)
    full = send_file(api, ada, "screenshot", png(7, 7), "c.png", expect=409)["error"]
    assert full["details"]["field"] == "screenshot" and "at most 2 files" in full["message"]
    unknown = send_file(api, ada, "photos", png(), "a.png", expect=404)["error"]
    assert unknown["details"]["field"] == "slot" and "no part called 'photos'" in unknown["message"]
    wrong = send_file(api, ada, "repo", png(), "a.png", expect=400)["error"]
    assert wrong["message"] == "Repository does not take files"
    two = api.call(
        "POST",
        f"{BASE}/files",
        ada,
        expect=400,
        well_formed=False,
        data={"slot": "report", "file": [(io.BytesIO(pdf()), "a.pdf"), (io.BytesIO(pdf()), "b.pdf")]},
        content_type="multipart/form-data",
    )
    assert two.get_json()["error"]["details"]["field"] == "file"
    assert items(loaded) == [("screenshot", "file"), ("screenshot", "file")]


class CountingFile(io.BytesIO):
    """Where Werkzeug puts an uploaded part; counts what is read back out of it."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def test_an_oversized_file_is_refused_while_it_streams(
    api: Described, app: Flask, ada: Account, loaded: sessionmaker[Session], settings: Settings
) -> None:
    parts: list[CountingFile] = []

    class CountingRequest(Request):
        def _get_file_stream(self, *args: Any, **kwargs: Any) -> CountingFile:
            parts.append(CountingFile())
            return parts[-1]

    app.request_class = CountingRequest
    huge = png() + b"\0" * (3 * MB)
    error = send_file(api, ada, "screenshot", huge, "huge.png", expect=413)["error"]
    assert error["message"] == 'the screenshot "huge.png" is larger than 1 MB, the most it may be'
    assert error["details"] == {"field": "screenshot", "rule": "too_large", "limit": MB}
    (part,) = parts
    assert part.bytes_read == MB + 1 < len(huge)  # the guard stopped one byte past the limit
    assert items(loaded) == [] and blobs(settings) == []


def test_a_request_over_the_request_limit_is_refused_before_it_is_read(api: Described, ada: Account) -> None:
    error = send_file(api, ada, "screenshot", b"\0" * (5 * MB), "x.png", expect=413)["error"]
    assert error["message"] == (
        "the request is larger than the limit of 4 MB: no part of Showcase takes a file that large; "
        "the largest, Screenshot, takes files of up to 1 MB"
    )
    assert error["details"] == {"field": "body", "limit_bytes": 4 * MB, "slot": "screenshot"}


def test_the_store_down_answers_503_and_records_nothing(
    api: Described, ada: Account, loaded: sessionmaker[Session], settings: Settings
) -> None:
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    (settings.files_dir / "blobs").write_text("not a folder")  # the store cannot create its folders
    error = send_file(api, ada, "screenshot", png(), "shot.png", expect=503)["error"]
    assert error["code"] == "service_unavailable"
    with loaded() as session:
        assert session.scalar(select(func.count(DraftItem.id))) == 0


def test_statements_are_judged_by_their_words_and_a_refusal_keeps_the_one_before(
    api: Described, ada: Account, loaded: sessionmaker[Session]
) -> None:
    api.call("PUT", f"{BASE}/statements/reflection", ada, expect=200, json={"text": REFLECTION})
    short = api.json(
        "PUT", f"{BASE}/statements/reflection", ada, expect=400, well_formed=False, json={"text": "Too short"}
    )["error"]
    assert short["message"] == "the reflection has 2 words; it needs at least 3"
    long = api.json("PUT", f"{BASE}/statements/reflection", ada, expect=400, json={"text": "word " * 41})[
        "error"
    ]
    assert (long["details"]["rule"], long["details"]["words"]) == ("too_many_words", 41)
    # Each refusal left the statement saved before it in place.
    kept = api.json("GET", BASE, ada, expect=200)["draft"]["items"]
    assert [(i["slot"], i["text"]) for i in kept] == [("reflection", REFLECTION)]
    bad = api.json(
        "PUT", f"{BASE}/statements/reflection", ada, expect=400, well_formed=False, json={"text": 3}
    )
    assert bad["error"]["details"]["field"] == "text"


def test_a_link_is_kept_as_text_a_private_one_flagged_and_none_is_ever_fetched(
    api: Described, ada: Account, loaded: sessionmaker[Session], queue: RecordingQueue, settings: Settings
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    try:
        fill(api, ada)
        private = api.json(
            "PUT", f"{BASE}/links/demo", ada, expect=200, json={"url": f"https://127.0.0.1:{port}/admin"}
        )
        assert (private["host"], private["private"]) == ("127.0.0.1", True)
        refused = api.json(
            "PUT",
            f"{BASE}/links/repo",
            ada,
            expect=400,
            json={"url": "https://github.com.evil.example/ada"},
        )["error"]
        assert refused["details"]["field"] == "repo" and "github.com" in refused["message"]
        links = [i for i in api.json("GET", BASE, ada, expect=200)["draft"]["items"] if i["kind"] == "link"]
        assert [i["url"] for i in links] == [
            "https://github.com/ada/service",
            f"https://127.0.0.1:{port}/admin",
        ]

        handed = api.json("POST", f"{BASE}/submit", ada, expect=202)
        run_id, _ = queue.sent.pop(0)
        process_run(loaded, run_id, default_graders(settings), worker="test", lease_seconds=30)
        with pytest.raises(TimeoutError):
            listener.accept()  # neither the intake nor the checks ever opened the learner's address
        checks = api.json("GET", handed["status_url"], ada, expect=200)["result"]["feedback"]["checks"]
        demo = next(c for c in checks if c["id"] == "checks/demo/link")
        assert not demo["passed"] and "a reviewer cannot open" in demo["explanation"]
    finally:
        listener.close()


# ---------------------------------------------------------------- handing in


def test_a_required_slot_left_empty_is_refused_by_name(
    api: Described, ada: Account, queue: RecordingQueue
) -> None:
    send_file(api, ada, "screenshot", png(), "shot.png", expect=201)
    error = api.json("POST", f"{BASE}/submit", ada, expect=400, well_formed=False)["error"]
    assert (error["details"]["field"], error["message"]) == ("repo", "Repository is required and still empty")
    assert queue.sent == []


def test_the_hand_in_answers_with_its_receipt_and_again_with_the_same_submission(
    api: Described, ada: Account, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    fill(api, ada)
    draft_id = api.json("GET", BASE, ada, expect=200)["draft"]["id"]
    first = api.call("POST", f"{BASE}/submit", ada, expect=202)
    body = first.get_json()
    assert first.headers["Location"] == body["status_url"] == f"/api/v1/submissions/{body['id']}"
    receipt = body["receipt"]
    assert receipt["files"] == [
        {
            "slot": "screenshot",
            "name": "shot.png",
            "sha256": hashlib.sha256(png()).hexdigest(),
            "size": len(png()),
            "type": "png",
        }
    ]
    assert receipt["links"] == [
        {"slot": "repo", "url": "https://github.com/ada/service", "host": "github.com", "private": False}
    ]
    assert receipt["statements"] == [{"slot": "reflection", "words": 12, "text": REFLECTION}]
    with loaded() as session:
        stored = session.get(Submission, body["id"])
        assert stored is not None and stored.receipt_sha256 == receipt["sha256"]

    again = api.json("POST", f"{BASE}/submit", ada, expect=200)
    named = api.json("POST", f"{BASE}/submit", ada, expect=200, json={"draft": draft_id})
    assert again["id"] == named["id"] == body["id"] and again["replayed"] and not body["replayed"]
    assert again["receipt"] == receipt
    assert len(queue.sent) == 1
    # The next change starts a new draft, which is a new attempt.
    assert api.json("GET", BASE, ada, expect=200)["draft"]["id"] is None
    with loaded() as session:
        assert session.scalar(select(func.count(PortfolioDraft.id))) == 1


def test_someone_not_enrolled_is_refused_and_a_quiz_has_no_portfolio(
    api: Described, loaded: sessionmaker[Session]
) -> None:
    outsider = make_account(loaded, "olga@example.org", programs=("test-program",))
    api.call("GET", BASE, outsider, expect=403)
    send_file(api, outsider, "screenshot", png(), "shot.png", expect=403)
    api.call("GET", "/api/v1/assessments/basics/portfolio", outsider, expect=404)


# ---------------------------------------------------------------- the whole portfolio in one request


def one_go(**extra: Any) -> dict[str, Any]:
    return {
        "assessment": "showcase",
        "files.screenshot": [(io.BytesIO(png()), "a.png"), (io.BytesIO(png(9, 9)), "b.png")],
        "links.repo": "https://github.com/ada/service",
        "statements.reflection": REFLECTION,
        **extra,
    }


def test_a_whole_portfolio_in_one_multipart_post_is_handed_in_with_its_receipt(
    api: Described, ada: Account, queue: RecordingQueue
) -> None:
    response = api.call(
        "POST", "/api/v1/submissions", ada, expect=202, data=one_go(), content_type="multipart/form-data"
    )
    body = response.get_json()
    assert response.headers["Location"] == body["status_url"]
    assert [(f["slot"], f["name"], f["type"]) for f in body["receipt"]["files"]] == [
        ("screenshot", "a.png", "png"),
        ("screenshot", "b.png", "png"),
    ]
    assert [q for _, q in queue.sent] == ["checks"]
    status = api.json("GET", body["status_url"], ada, expect=200)
    assert (status["kind"], status["status"]) == ("portfolio", "queued")


@pytest.mark.parametrize(
    ("extra", "status", "field"),
    [
        ({"statements.reflection": "word " * 41}, 400, "reflection"),
        ({"files.report": (io.BytesIO(ELF), "design.pdf")}, 400, "report"),
        ({"archive": (io.BytesIO(b"PK"), "app.zip")}, 400, "archive"),
        ({"links.repo": ""}, 400, "repo"),
    ],
    ids=["statement-too-long", "program-as-pdf", "archive-field", "required-link-empty"],
)
def test_a_refused_one_go_hand_in_records_nothing(
    api: Described,
    ada: Account,
    loaded: sessionmaker[Session],
    queue: RecordingQueue,
    extra: dict[str, Any],
    status: int,
    field: str,
) -> None:
    error = api.json(
        "POST",
        "/api/v1/submissions",
        ada,
        expect=status,
        well_formed=False,
        data=one_go(**extra),
        content_type="multipart/form-data",
    )["error"]
    assert error["details"]["field"] == field
    with loaded() as session:
        assert session.scalar(select(func.count(DraftItem.id))) == 0
        assert session.scalar(select(func.count(Submission.id))) == 0
    assert queue.sent == []


def test_a_one_go_hand_in_leaves_a_draft_in_progress_alone(
    api: Described, ada: Account, loaded: sessionmaker[Session]
) -> None:
    send_file(api, ada, "screenshot", png(), "kept.png", expect=201)
    error = api.json(
        "POST",
        "/api/v1/submissions",
        ada,
        expect=409,
        well_formed=False,
        data=one_go(),
        content_type="multipart/form-data",
    )["error"]
    assert "in progress" in error["message"] and "portfolio/submit" in error["message"]
    assert items(loaded) == [("screenshot", "file")]
