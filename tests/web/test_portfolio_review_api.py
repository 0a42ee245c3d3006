"""A graded portfolio through the API, checked against the OpenAPI description: a reviewer holding the task
gets each slot as the dashboard shows it (kind, prompt, files by name, SHA-256, size and detected type,
text and archive entries, links as text with their host, statements, checks), with the learner taken out
under blind review; the learner gets the checks' lines and the rubric, not the service's own records."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from openapi_core import OpenAPI
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.services import renditions
from tests.conftest import Account, make_account
from tests.support.portfolio_review import (
    NOTES,
    PHOTO,
    PRIVATE_DEMO,
    REPORT,
    hand_in_and_grade,
    task_of,
    write_portfolio_catalog,
)
from tests.web.test_openapi import DOCUMENT, Described

# What a learner's result may hold for a portfolio: the checks, the rubric, and once reviewed the
# reviewers' part.
LEARNER_KEYS = {"checks", "rubric", "late", "review", "review_comment"}


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    return write_portfolio_catalog(settings.catalog_path)


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(yaml.safe_load(DOCUMENT.read_text(encoding="utf-8")))


@pytest.fixture
def api(app: Flask, client: FlaskClient, openapi: OpenAPI) -> Described:
    return Described(app, client, openapi)


@pytest.fixture
def ada(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada.lovelace@example.org", programs=("showcase-program", "blind-program"))


@pytest.fixture
def rui(loaded: sessionmaker[Session]) -> Account:
    return make_account(
        loaded, "rui@example.org", role="reviewer", reviews=("showcase-program", "blind-program")
    )


def graded(
    loaded: sessionmaker[Session], settings: Settings, queue: RecordingQueue, ada: Account, slug: str
) -> str:
    renditions.clear_cache()
    return hand_in_and_grade(loaded, settings, queue, ada, slug, demo=PRIVATE_DEMO)


def held_task(api: Described, loaded: sessionmaker[Session], rui: Account, submission_id: str) -> Any:
    task_id = task_of(loaded, submission_id)
    api.call("POST", f"/api/v1/review/tasks/{task_id}/claim", rui, expect=200)
    return api.json("GET", f"/api/v1/review/tasks/{task_id}", rui, expect=200)


def by_id(slots: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {slot["id"]: slot for slot in slots}


def test_a_reviewer_gets_each_slot_of_the_portfolio_as_the_dashboard_shows_it(
    sandbox_ready: None,
    api: Described,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: RecordingQueue,
    ada: Account,
    rui: Account,
) -> None:
    bundle = held_task(api, loaded, rui, graded(loaded, settings, queue, ada, "showcase"))["bundle"]
    assert bundle["kind"] == "portfolio" and bundle["blind"] is False
    slots = by_id(bundle["slots"])
    assert [(s["id"], s["kind"], s["required"]) for s in bundle["slots"]] == [
        ("screenshot", "file", True),
        ("report", "file", True),
        ("notes", "file", False),
        ("code", "file", False),
        ("repo", "link", True),
        ("demo", "link", False),
        ("reflection", "statement", True),
    ]
    assert slots["screenshot"]["criteria"] == ["design"]

    (photo,) = slots["screenshot"]["files"]
    assert {k: photo[k] for k in ("key", "name", "sha256", "size", "type", "width", "height")} == {
        "key": "screenshot/1",
        "name": "ada-lovelace-screen.jpg",
        "sha256": hashlib.sha256(PHOTO).hexdigest(),
        "size": len(PHOTO),
        "type": "jpeg",
        "width": 2400,
        "height": 1200,
    }
    (report,) = slots["report"]["files"]
    assert (report["type"], report["sha256"], report["page_count"], report["pages_rendered"]) == (
        "pdf",
        hashlib.sha256(REPORT).hexdigest(),
        3,
        3,
    )
    assert report["document"] == {"title": "Lovelace design report", "author": "Ada Lovelace"}
    (notes,) = slots["notes"]["files"]
    assert (notes["type"], notes["text"]) == ("markdown", NOTES)  # the text, for the client to escape
    (archive,) = slots["code"]["files"]
    assert archive["listing"]["total"] == 2
    assert {e["name"] for e in archive["listing"]["entries"]} == {"engine/analytical.py", "README.md"}

    assert slots["repo"]["links"] == [
        {
            "url": "https://github.com/ada-lovelace/engine",
            "host": "github.com",
            "private": False,
            "redacted": False,
        }
    ]
    assert slots["demo"]["links"] == [
        {"url": PRIVATE_DEMO, "host": "127.0.0.1", "private": True, "redacted": False}
    ]
    reflection = slots["reflection"]
    assert reflection["prompt"] == "What would you do **differently** next time?"
    assert reflection["statements"] == [{"text": "I would measure the engine first.", "words": 6}]
    assert reflection["checks"] and all(check["passed"] for check in reflection["checks"])
    demo_checks = slots["demo"]["checks"]
    refused = [c for c in demo_checks if not c["passed"]]
    assert len(refused) == 1 and "127.0.0.1" in refused[0]["explanation"]


def test_under_blind_review_the_api_takes_the_learner_out_of_every_slot(
    sandbox_ready: None,
    api: Described,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: RecordingQueue,
    ada: Account,
    rui: Account,
) -> None:
    task = held_task(api, loaded, rui, graded(loaded, settings, queue, ada, "blind-showcase"))
    bundle = task["bundle"]
    assert bundle["blind"] is True and bundle["learner"] is None
    assert re.search(r"lovelace", json.dumps(task), re.IGNORECASE) is None
    slots = by_id(bundle["slots"])
    assert slots["screenshot"]["files"][0]["name"] == "[learner]-[learner]-screen.jpg"
    report = slots["report"]["files"][0]
    assert (report["name"], report["document"], report["pages_rendered"]) == ("[learner] report.pdf", {}, 3)
    assert slots["repo"]["links"] == [
        {
            "url": "https://github.com/[learner]-[learner]/engine",
            "host": "github.com",
            "private": False,
            "redacted": True,
        }
    ]


def test_the_learner_gets_the_checks_and_the_rubric_not_the_services_own_records(
    sandbox_ready: None,
    api: Described,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: RecordingQueue,
    ada: Account,
    rui: Account,
) -> None:
    submission_id = graded(loaded, settings, queue, ada, "showcase")
    result = api.json("GET", f"/api/v1/submissions/{submission_id}", ada, expect=200)["result"]
    feedback = result["feedback"]
    assert set(feedback) <= LEARNER_KEYS and {"checks", "rubric"} <= set(feedback)
    assert {"renditions", "rubric_evidence", "portfolio"}.isdisjoint(feedback)
    assert all(set(check) == {"id", "slot", "passed", "explanation"} for check in feedback["checks"])
    assert [c["id"] for c in feedback["rubric"]["criteria"]] == ["complete", "design", "writing"]

    # Once reviewed too: the reviewer's scores and comment join, nothing of the service's own.
    task_id = task_of(loaded, submission_id)
    api.call("POST", f"/api/v1/review/tasks/{task_id}/claim", rui, expect=200)
    api.call(
        "POST",
        f"/api/v1/review/tasks/{task_id}/review",
        rui,
        expect=201,
        json={
            "criteria": [
                {"criterion": "design", "level": "shown"},
                {"criterion": "writing", "level": "clear"},
            ],
            "comment": "The report shows the design.",
        },
    )
    reviewed = api.json("GET", f"/api/v1/submissions/{submission_id}", ada, expect=200)["result"]
    assert set(reviewed["feedback"]) <= LEARNER_KEYS
    assert reviewed["feedback"]["review_comment"] == "The report shows the design."

    # Staff keep everything: the renditions are what their pages show.
    staff = api.json("GET", f"/api/v1/submissions/{submission_id}", rui, expect=200)["result"]["feedback"]
    assert {"renditions", "rubric_evidence"} <= set(staff)
