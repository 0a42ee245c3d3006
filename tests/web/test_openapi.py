"""The OpenAPI description at /api/v1/openapi.json: valid OpenAPI 3.1, describing exactly the app's
/api/v1 routes, and true of the real answers the app gives to a learner's, a reviewer's and staff's
day, refusals included.

Each call below goes through the Flask test client and then through openapi-core: the request (where
it is meant to be well formed) against the operation's parameters, security and body, and every
response against the status codes, headers, content types and schemas described for it.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import EnvironBuilder, FlaskClient
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse
from werkzeug.wrappers import Request

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.models import GradingRun, ReviewTask, RunStatus, Submission
from grader.web.openapi import CACHE_CONTROL
from tests.conftest import Account, make_account
from tests.support.catalogs import BASICS_ANSWERS, write_catalog
from tests.support.issued_credentials import issued_credential
from tests.support.portfolio import PROGRAM_SLUG, REFLECTION, png, write_portfolio_catalog
from tests.support.reviewed import run_queued, write_repository_catalog

DOCUMENT = Path(__file__).parents[2] / "grader" / "web" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch")
STRONG = {"criteria": [{"criterion": "design", "level": "strong", "comment": "Clear modules."}]}


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    """The quizzes of the standard test catalog beside the reviewed repository assessment and a portfolio."""
    write_catalog(settings.catalog_path)
    write_portfolio_catalog(settings.catalog_path)
    return write_repository_catalog(settings.catalog_path)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _text(value: bytes, **_parameters: str) -> str:
    return value.decode("utf-8")


# openapi-core reads JSON by the media type's name: a credential's JSON-LD and its VC-JWT are read as what
# they are (JSON, text), so their bodies are checked against their schemas rather than passed as bytes.
CREDENTIAL_MEDIA_TYPES = {
    "application/ld+json": lambda value, **_: json.loads(value),
    "application/vc+jwt": _text,
}


@pytest.fixture(scope="module")
def openapi(document: dict[str, Any]) -> OpenAPI:
    return OpenAPI.from_dict(document, config=Config(extra_media_type_deserializers=CREDENTIAL_MEDIA_TYPES))


def flask_template(rule: str) -> str:
    """`/review/tasks/<int:task_id>` as OpenAPI writes it: `/review/tasks/{task_id}`."""
    return re.sub(r"<(?:[a-z]+:)?(\w+)>", r"{\1}", rule)


# ---------------------------------------------------------------- calling through the description


@dataclass
class Described:
    """The test client, with each exchange checked against the description and remembered."""

    app: Flask
    client: FlaskClient
    openapi: OpenAPI
    seen: set[tuple[str, str, int]] = field(default_factory=set)

    def call(
        self,
        method: str,
        path: str,
        account: Account | None = None,
        *,
        expect: int,
        well_formed: bool = True,
        headers: dict[str, str] | None = None,
        **body: Any,
    ) -> TestResponse:
        """Send the request, check it (if `well_formed`) and its answer against the description."""
        sent = dict(headers or {})
        if account is not None:
            sent["Authorization"] = f"Bearer {account.token}"
        builder = EnvironBuilder(self.app, path=path, method=method, headers=sent, **body)
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        data = environ["wsgi.input"].read()

        def fresh() -> dict[str, Any]:
            return {**environ, "wsgi.input": io.BytesIO(data)}

        request = WerkzeugOpenAPIRequest(Request(fresh()))
        if well_formed:
            try:
                self.openapi.validate_request(request)
            except Exception as exc:
                pytest.fail(f"{method} {path}: the request breaks the description: {explain(exc)}")
        response = self.client.open(fresh())
        assert response.status_code == expect, (
            method,
            path,
            response.status_code,
            response.get_data()[:2000],
        )
        try:
            self.openapi.validate_response(request, WerkzeugOpenAPIResponse(response))
        except Exception as exc:
            pytest.fail(
                f"{method} {path} → {response.status_code}: the answer breaks the description: "
                f"{explain(exc)}\n{response.get_data(as_text=True)[:3000]}"
            )
        rule, _ = self.app.url_map.bind("localhost").match(path.split("?")[0], method, return_rule=True)
        self.seen.add((flask_template(rule.rule), method.lower(), response.status_code))
        return response

    def json(self, method: str, path: str, account: Account | None = None, **kwargs: Any) -> Any:
        return self.call(method, path, account, **kwargs).get_json()


def explain(exc: BaseException) -> str:
    """openapi-core's error with the schema errors under it, which say which field failed and why."""
    parts = [f"{type(exc).__name__}: {str(exc)[:500]}"]
    cause: BaseException | None = exc.__cause__
    while cause is not None:
        parts.append(f"{type(cause).__name__}: {str(cause)[:500]}")
        for inner in getattr(cause, "schema_errors", ()):
            parts.extend(
                f"  at /{'/'.join(map(str, leaf.absolute_path))}: {leaf.message[:300]}"
                for leaf in leaves(inner)
            )
        cause = cause.__cause__
    return "\n".join(parts)


def leaves(error: Any) -> list[Any]:
    """The innermost errors under a jsonschema error: under a `oneOf`, what each branch objected to."""
    if not error.context:
        return [error]
    return [leaf for sub in error.context for leaf in leaves(sub)]


@pytest.fixture
def described(app: Flask, client: FlaskClient, openapi: OpenAPI) -> Described:
    return Described(app, client, openapi)


# ---------------------------------------------------------------- the document itself


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    errors = [f"{list(e.path)}: {e.message}" for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []
    validate(document)  # the library's own entry point, which picks the version from the document


def test_every_api_rule_and_method_is_described_and_nothing_described_is_missing(
    app: Flask, document: dict[str, Any]
) -> None:
    prefix = document["servers"][0]["url"]

    def served_at(item: dict[str, Any]) -> str:
        # A path with servers of its own (the health checks, at the site's root) is not under /api/v1.
        return str(item.get("servers", document["servers"])[0]["url"]).rstrip("/")

    outside = {served_at(item) + path for path, item in document["paths"].items() if "servers" in item}
    in_app = {
        (flask_template(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if (rule.rule.startswith(prefix + "/") or flask_template(rule.rule) in outside) and rule.methods
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    described = {
        (served_at(item) + path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    assert sorted(in_app - described) == [], "routes of the app that the description lacks"
    assert sorted(described - in_app) == [], "operations described that the app does not have"


def test_every_operation_answers_its_errors_in_the_one_envelope(document: dict[str, Any]) -> None:
    """401 wherever a token is needed, 413 wherever a body is read, and each error status's schema is
    the shared envelope, so a client needs one error handler."""
    components = document["components"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            *_, kind, name = node["$ref"].split("/")
            node = components[kind][name]
        return node

    def is_envelope(schema: dict[str, Any]) -> bool:
        if schema.get("$ref") == "#/components/schemas/Error":
            return True
        return any(is_envelope(part) for part in resolve(schema).get("allOf", []))

    problems = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            needs_token = operation.get("security", document["security"]) != []
            if needs_token and "401" not in responses:
                problems.append(f"{where}: no 401")
            if "requestBody" in operation and "413" not in responses:
                problems.append(f"{where}: a body but no 413")
            for status, response in responses.items():
                if int(status) < 400:
                    continue
                schema = resolve(response)["content"]["application/json"]["schema"]
                if not is_envelope(schema):
                    problems.append(f"{where} {status}: not the error envelope")
    assert problems == []
    unauthorized = components["responses"]["Unauthorized"]
    assert unauthorized["headers"]["WWW-Authenticate"]["$ref"].endswith("/WwwAuthenticate")
    assert components["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": components["securitySchemes"]["bearer"]["description"],
    }


def test_the_json_served_is_the_document_public_cacheable_and_with_the_api_headers(
    described: Described, document: dict[str, Any]
) -> None:
    response = described.call("GET", "/api/v1/openapi.json", expect=200)
    assert response.mimetype == "application/json"
    assert json.loads(response.get_data()) == document
    assert response.headers["Cache-Control"] == CACHE_CONTROL
    assert "private" not in CACHE_CONTROL and "no-store" not in CACHE_CONTROL
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    etag = response.headers["ETag"]
    again = described.call("GET", "/api/v1/openapi.json", expect=304, headers={"If-None-Match": etag})
    assert again.get_data() == b"" and again.headers["ETag"] == etag
    # Any other API answer carries someone's data, and stays out of caches.
    assert described.client.get("/api/v1/me").headers["Cache-Control"] == "no-store"


# ---------------------------------------------------------------- a day of the API, checked call by call


@dataclass
class Cast:
    ada: Account  # a learner of the three programs
    rui: Account  # reviews the repository program
    sam: Account  # reviews it too: answers regrade requests
    stella: Account  # runs the repository program
    root: Account  # an admin


@pytest.fixture
def cast(loaded: sessionmaker[Session]) -> Cast:
    return Cast(
        ada=make_account(loaded, "ada@example.org", programs=("test-program", "repo-program", PROGRAM_SLUG)),
        rui=make_account(loaded, "rui@example.org", role="reviewer", reviews=("repo-program",)),
        sam=make_account(loaded, "sam@example.org", role="reviewer", reviews=("repo-program",)),
        stella=make_account(loaded, "stella@example.org", role="reviewer", runs=("repo-program",)),
        root=make_account(loaded, "root@example.org", role="admin"),
    )


def archive(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, text in files.items():
            bundle.writestr(name, text)
    return buffer.getvalue()


def hand_in_archive(described: Described, learner: Account) -> str:
    data = {
        "assessment": "reviewed-repo",
        "archive": (io.BytesIO(archive({"app.py": "x = 1\n", "README.md": "# App\n"})), "app.zip"),
    }
    body = described.json(
        "POST", "/api/v1/submissions", learner, expect=202, data=data, content_type="multipart/form-data"
    )
    return str(body["id"])


def test_a_learners_reviewers_and_staffs_day_matches_the_description(
    described: Described,
    cast: Cast,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
    document: dict[str, Any],
) -> None:
    call, get = described.call, described.json
    ada, rui, sam, stella, root = cast.ada, cast.rui, cast.sam, cast.stella, cast.root

    # The learner: who am I, a quiz from start to result, and progress.
    assert get("GET", "/api/v1/me", ada, expect=200)["email"] == ada.email
    assert get("GET", "/api/v1/assessments/basics", ada, expect=200)["kind"] == "quiz"
    attempt = get("POST", "/api/v1/assessments/basics/attempts", ada, expect=201)
    hand_in = {"assessment": "basics", "attempt": attempt["id"], "answers": BASICS_ANSWERS}
    key = {"Idempotency-Key": "quiz-1"}
    quiz = get("POST", "/api/v1/submissions", ada, expect=202, json=hand_in, headers=key)
    replay = get("POST", "/api/v1/submissions", ada, expect=202, json=hand_in, headers=key)
    assert (replay["id"], replay["replayed"], quiz["replayed"]) == (quiz["id"], True, False)
    queued = get("GET", quiz["status_url"], ada, expect=200)
    assert (queued["status"], queued["result"]) == ("queued", None)
    run_queued(queue, loaded, settings)
    graded = get("GET", quiz["status_url"], ada, expect=200)
    assert graded["result"]["passed"] is True
    progress = get("GET", "/api/v1/programs/test-program/progress", ada, expect=200)
    assert [r["status"] for r in progress["requirements"]] == ["passed", "not_attempted"]

    # A repository hand-in waits for a review.
    first = hand_in_archive(described, ada)
    run_queued(queue, loaded, settings)
    assert get("GET", f"/api/v1/submissions/{first}", ada, expect=200)["status"] == "needs_review"

    # The reviewer: queue, next, release, claim, the evidence, a draft, the comment bank, submit, edit.
    waiting = get("GET", "/api/v1/review/queue?slot=first", rui, expect=200)
    (item,) = waiting["items"]
    task = item["task"]
    assert get("POST", "/api/v1/review/next", rui, expect=200)["task"]["id"] == task
    assert get("POST", "/api/v1/review/next", sam, expect=200, json={"slot": "first"})["task"] is None
    call("POST", f"/api/v1/review/tasks/{task}/release", rui, expect=200)
    call("POST", f"/api/v1/review/tasks/{task}/claim", rui, expect=200)
    detail = get("GET", f"/api/v1/review/tasks/{task}", rui, expect=200)
    assert detail["comment_bank"] == "reviewed" and detail["draft"] is None
    shown = get("GET", f"/api/v1/review/tasks/{task}/files?path=app.py", rui, expect=200)
    assert shown["content"] == "x = 1\n"
    draft = {"comment": "So far", "inline_comments": [{"path": "app.py", "line": 1, "body": "A name?"}]}
    saved = get("PUT", f"/api/v1/review/tasks/{task}/draft", rui, expect=200, json=draft)
    assert saved["preview"]["pending"] == ["design"]
    bank = "/api/v1/review/comment-bank/reviewed"
    entry = get("POST", bank, rui, expect=201, json={"text": "Split this module.", "criterion": "design"})
    get(
        "PUT",
        f"/api/v1/review/comment-bank/entries/{entry['id']}",
        rui,
        expect=200,
        json={"text": "Split it."},
    )
    assert get("POST", f"/api/v1/review/comment-bank/entries/{entry['id']}/use", rui, expect=200)["uses"] == 1
    assert [e["text"] for e in get("GET", f"{bank}?q=split", rui, expect=200)["entries"]] == ["Split it."]
    outcome = get("POST", f"/api/v1/review/tasks/{task}/review", rui, expect=201, json=STRONG)
    assert outcome["settled"] is True
    weak = {"criteria": [{"criterion": "design", "level": "weak"}], "reason": "misread the layout"}
    edited = get("POST", f"/api/v1/review/reviews/{outcome['review']}/versions", rui, expect=201, json=weak)
    assert edited["version"] == 2

    # The learner reads the result and asks for a regrade; the other reviewer answers it.
    result = get("GET", f"/api/v1/submissions/{first}", ada, expect=200)["result"]
    assert (result["score"], result["passed"]) == (edited["score"], True) == (70, True)
    asked = {"criterion": "design", "reason": "The modules are split by concern."}
    regrade = get("POST", f"/api/v1/submissions/{first}/regrade-requests", ada, expect=201, json=asked)
    assert regrade["status"] == "open"
    regrade_task = get("GET", "/api/v1/review/queue?slot=regrade", sam, expect=200)["items"][0]["task"]
    call("POST", f"/api/v1/review/tasks/{regrade_task}/claim", sam, expect=200)
    assert get("GET", f"/api/v1/review/tasks/{regrade_task}", sam, expect=200)["regrade_request"]["id"]
    answer = {"reply": "Agreed: the split is clear.", **STRONG}
    answered = get(
        "POST", f"/api/v1/review/tasks/{regrade_task}/regrade-answer", sam, expect=200, json=answer
    )
    assert answered["changed"] is True
    listed = get("GET", f"/api/v1/submissions/{first}/regrade-requests", ada, expect=200)["regrade_requests"]
    assert [r["status"] for r in listed] == ["answered"]

    # Staff assign the next hand-in to a reviewer, who scores it in one call.
    second = hand_in_archive(described, ada)
    run_queued(queue, loaded, settings)
    with loaded() as session:
        second_task = session.scalars(select(ReviewTask.id).where(ReviewTask.submission_id == second)).one()
    call(
        "POST", f"/api/v1/review/tasks/{second_task}/assign", stella, expect=200, json={"reviewer": rui.email}
    )
    scored = get("POST", f"/api/v1/submissions/{second}/reviews", rui, expect=200, json=STRONG)
    assert scored["passed"] is True

    # Staff: the audit log, an extension, publication.
    events = get("GET", f"/api/v1/audit?submission={first}&limit=50", stella, expect=200)["events"]
    assert events and all(e["submission"] == first for e in events)
    extension = {"learner": ada.email, "due": "2030-01-01T12:00:00Z", "reason": "illness"}
    get("POST", "/api/v1/assessments/reviewed-repo/extensions", stella, expect=201, json=extension)
    get("POST", "/api/v1/assessments/reviewed-repo/publish", stella, expect=200)

    # Admins: accounts.
    users = get("GET", "/api/v1/staff/users?q=ada&limit=10", root, expect=200)
    assert [u["email"] for u in users["users"]] == [ada.email]
    new = {"email": "lin@example.org", "name": "Lin", "role": "learner", "password": "a long enough password"}
    lin = get("POST", "/api/v1/staff/users", root, expect=201, json=new)
    assert get("GET", f"/api/v1/staff/users/{lin['id']}", root, expect=200)["tokens"] == []
    get("PATCH", f"/api/v1/staff/users/{lin['id']}", root, expect=200, json={"role": "reviewer"})
    assert get("DELETE", f"/api/v1/staff/users/{lin['id']}/tokens", root, expect=200)["revoked"] == 0

    # Program staff: the team, enrolment one by one and by CSV, the gradebook.
    program = "/api/v1/staff/programs/repo-program"
    get("GET", f"{program}/staff", stella, expect=200)
    added = get(
        "POST", f"{program}/staff", stella, expect=200, json={"email": "lin@example.org", "role": "reviewer"}
    )
    call("DELETE", f"{program}/staff/{added['user']}", stella, expect=204)
    enrolled = get("POST", f"{program}/enrolments", stella, expect=201, json={"email": "kim@example.org"})
    assert enrolled["created"] is True and enrolled["password"]
    csv = b"email,name\nmo@example.org,Mo\nnot-an-email,X\n"
    preview = get(
        "POST", f"{program}/enrolments?dry_run=1", stella, expect=200, data=csv, content_type="text/csv"
    )
    assert preview["counts"] == {"create": 1, "enrol": 0, "skip": 0, "error": 1}
    imported = get(
        "POST",
        f"{program}/enrolments?digest={preview['digest']}",
        stella,
        expect=200,
        data=csv,
        content_type="text/csv",
    )
    assert [e["email"] for e in imported["enrolled"]] == ["mo@example.org"]
    learners = get("GET", f"{program}/enrolments", stella, expect=200)["learners"]
    assert {row["email"] for row in learners} == {ada.email, "kim@example.org", "mo@example.org"}
    book = get("GET", f"{program}/gradebook?status=passed", stella, expect=200)
    assert [row["learner"]["email"] for row in book["rows"]] == [ada.email]
    download = call("GET", f"{program}/gradebook?format=csv", stella, expect=200)
    assert download.mimetype == "text/csv" and download.get_data(as_text=True).startswith("email")

    # Queues, a retry of a run in error, a regrade, the catalog, agreement.
    failed = hand_in_archive(described, ada)
    queue.sent.clear()
    with loaded() as session:
        run = session.scalars(select(GradingRun).where(GradingRun.submission_id == failed)).one()
        run.status, run.last_error, run.tries = RunStatus.ERROR, "sandbox unavailable", 3
        submission = session.get(Submission, failed)
        assert submission is not None
        submission.status = "error"
        session.commit()
        run_id = run.id
    health = get("GET", "/api/v1/staff/queues", stella, expect=200)
    assert [e["run"] for e in health["errors"]] == [run_id]
    retried = get(
        "POST", f"/api/v1/staff/runs/{run_id}/retry", stella, expect=202, json={"reason": "back up"}
    )
    assert retried["submission"] == failed
    run_queued(queue, loaded, settings)
    regrade_url = "/api/v1/staff/assessments/reviewed-repo/regrade"
    assert get("GET", f"{regrade_url}?only_latest=1", stella, expect=200)["will_queue"] == 1
    again = {"reason": "a fixed test", "confirm": True, "only_latest": True}
    assert len(get("POST", regrade_url, stella, expect=202, json=again)["queued"]) == 1
    catalog = get("GET", "/api/v1/staff/catalog", stella, expect=200)
    assert {a["slug"] for a in catalog["assessments"]} == {"reviewed-repo"}
    assert get("POST", "/api/v1/staff/catalog/load", root, expect=200)["created"] == []
    agreement = get("GET", "/api/v1/staff/agreement?program=repo-program", stella, expect=200)
    assert agreement["program"] == "repo-program"

    # The learner's own tokens.
    assert len(get("GET", "/api/v1/tokens", ada, expect=200)["tokens"]) == 1
    token = get("POST", "/api/v1/tokens", ada, expect=201, json={"name": "laptop"})
    assert get("GET", f"/api/v1/tokens/{token['id']}", ada, expect=200)["name"] == "laptop"
    call("DELETE", f"/api/v1/tokens/{token['id']}", ada, expect=204)
    call("GET", "/api/v1/openapi.json", expect=200)

    # A portfolio, artifact by artifact, handed in twice (the second answers with the first); then one
    # in a single multipart POST. Their checks stay queued: this day grades nothing more.
    portfolio = "/api/v1/assessments/showcase/portfolio"
    assert get("GET", portfolio, ada, expect=200)["draft"]["id"] is None
    shot = {"slot": "screenshot", "file": (io.BytesIO(png()), "shot.png")}
    added = get("POST", f"{portfolio}/files", ada, expect=201, data=shot, content_type="multipart/form-data")
    call("DELETE", f"{portfolio}/items/{added['id']}", ada, expect=204)
    shot = {"slot": "screenshot", "file": (io.BytesIO(png()), "shot.png")}
    call("POST", f"{portfolio}/files", ada, expect=201, data=shot, content_type="multipart/form-data")
    call("PUT", f"{portfolio}/links/demo", ada, expect=200, json={"url": "https://example.org/demo"})
    call("PUT", f"{portfolio}/links/demo", ada, expect=204, json={"url": ""})
    call("PUT", f"{portfolio}/links/repo", ada, expect=200, json={"url": "https://github.com/ada/service"})
    call("PUT", f"{portfolio}/statements/reflection", ada, expect=204, json={"text": ""})
    call("PUT", f"{portfolio}/statements/reflection", ada, expect=200, json={"text": REFLECTION})
    handed = get("POST", f"{portfolio}/submit", ada, expect=202)
    assert get("POST", f"{portfolio}/submit", ada, expect=200)["id"] == handed["id"]
    whole = {
        "assessment": "showcase",
        "files.screenshot": (io.BytesIO(png()), "shot.png"),
        "links.repo": "https://github.com/ada/service",
        "statements.reflection": REFLECTION,
    }
    one_go = get(
        "POST", "/api/v1/submissions", ada, expect=202, data=whole, content_type="multipart/form-data"
    )
    assert one_go["receipt"]["files"][0]["sha256"] == handed["receipt"]["files"][0]["sha256"]

    # The same service graded inline (GRADER_QUIZ_GRADING=inline): the 201 carries the result, and a
    # long poll on a graded submission answers at once.
    from grader.web import create_app

    inline_app = create_app(settings.with_overrides(quiz_grading="inline"), queue=queue)
    inline = Described(inline_app, inline_app.test_client(), described.openapi, seen=described.seen)
    again = inline.json("POST", "/api/v1/assessments/basics/attempts", ada, expect=201)
    hand_in = {"assessment": "basics", "attempt": again["id"], "answers": BASICS_ANSWERS}
    graded_inline = inline.json("POST", "/api/v1/submissions", ada, expect=201, json=hand_in)
    assert graded_inline["submission"]["result"]["passed"] is True
    waited = inline.json("GET", graded_inline["status_url"] + "?wait=5", ada, expect=200)
    assert waited["status"] == "graded"

    # A credential: Hana passes other-program's quiz and its credential is signed, as the worker signs it;
    # she lists it and fetches it in both formats, and an admin revokes it.
    hana = make_account(loaded, "hana@example.org", programs=("other-program",))
    credential = issued_credential(loaded, settings, hana)
    (listed,) = get("GET", "/api/v1/credentials", hana, expect=200)["credentials"]
    assert (listed["id"], listed["status"], listed["program"]) == (credential, "active", "other-program")
    signed = call("GET", f"/api/v1/credentials/{credential}", hana, expect=200)
    assert signed.mimetype == "application/ld+json" and signed.get_json()["id"] == f"urn:uuid:{credential}"
    jwt = call("GET", f"/api/v1/credentials/{credential}?format=jwt", hana, expect=200)
    assert jwt.mimetype == "application/vc+jwt" and jwt.get_data(as_text=True).count(".") == 2
    revoked = get(
        "POST", f"/api/v1/credentials/{credential}/revoke", root, expect=200, json={"reason": "Copied."}
    )
    assert (revoked["status"], revoked["revocation_reason"]) == ("revoked", "Copied.")

    # Every operation's every success status was met in this day, and checked against its description
    # (the health checks, served at the site's root, have theirs in tests/web/test_health.py).
    prefix = document["servers"][0]["url"]
    promised = {
        (prefix + path, method, int(status))
        for path, item in document["paths"].items()
        if "servers" not in item
        for method, operation in item.items()
        if method in METHODS
        for status in operation["responses"]
        if int(status) < 400 and int(status) != 304
    }
    assert sorted(promised - described.seen) == []


# ---------------------------------------------------------------- refusals, checked the same way


def test_refusals_answer_with_the_described_status_envelope_and_headers(
    described: Described, cast: Cast, queue: RecordingQueue, loaded: sessionmaker[Session], settings: Settings
) -> None:
    call = described.call
    ada, rui, stella = cast.ada, cast.rui, cast.stella
    nobody = Account(id=0, email="", token="gr_not-a-token")

    def refused(
        method: str, path: str, account: Account | None, status: int, **kwargs: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = call(
            method, path, account, expect=status, well_formed=False, **kwargs
        ).get_json()
        return body["error"]

    # 401: no token, a bad one; each with its challenge.
    missing = call("GET", "/api/v1/me", expect=401, well_formed=False)
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="grader"'
    assert refused("GET", "/api/v1/review/queue", nobody, 401)["code"] == "authentication_required"
    # 403: a learner in the reviewers' and staff's places; a learner not enrolled.
    assert refused("GET", "/api/v1/review/queue", ada, 403)["code"] == "forbidden"
    assert refused("GET", "/api/v1/staff/queues", rui, 403)["code"] == "forbidden"
    outsider = make_account(loaded, "out@example.org")
    assert refused("POST", "/api/v1/assessments/basics/attempts", outsider, 403)["code"] == "forbidden"
    # 404s name what is missing.
    assert refused("GET", "/api/v1/submissions/nope", ada, 404)["code"] == "not_found"
    assert refused("GET", "/api/v1/assessments/nope", ada, 404)["details"]["field"] == "assessment"
    assert refused("POST", "/api/v1/review/tasks/999/claim", rui, 404)["details"]["field"] == "task"
    assert refused("GET", "/api/v1/tokens/999", ada, 404)["details"]["field"] == "token"
    # 400s name the field.
    bad_json = refused("POST", "/api/v1/submissions", ada, 400, data="{no", content_type="application/json")
    assert bad_json["details"]["field"] == "body"
    unknown = refused("POST", "/api/v1/submissions", ada, 400, json={"assessment": "basics", "answer": {}})
    assert unknown["details"]["field"] == "answer"
    assert refused("GET", "/api/v1/audit?limit=0", stella, 400)["details"]["field"] == "limit"
    assert refused("GET", "/api/v1/staff/queues?x=1", stella, 400)["details"]["field"] == "x"
    # 409: the quiz's three attempts used up.
    for _ in range(3):
        attempt = described.json("POST", "/api/v1/assessments/basics/attempts", ada, expect=201)
        hand_in = {"assessment": "basics", "attempt": attempt["id"], "answers": {}}
        call("POST", "/api/v1/submissions", ada, expect=202, json=hand_in)
    assert refused("POST", "/api/v1/assessments/basics/attempts", ada, 409)["code"] == "attempts_exhausted"
    # 429: the timed quiz's cooldown, with Retry-After.
    first = described.json("POST", "/api/v1/assessments/timed/attempts", ada, expect=201)
    call(
        "POST",
        "/api/v1/submissions",
        ada,
        expect=202,
        json={"assessment": "timed", "attempt": first["id"], "answers": {}},
    )
    cooling = call("POST", "/api/v1/assessments/timed/attempts", ada, expect=429, well_formed=False)
    assert int(cooling.headers["Retry-After"]) > 0
    # 413: a body over the request limit.
    limit = settings.max_request_bytes
    huge = refused(
        "POST", "/api/v1/tokens", ada, 413, data=b"x" * (limit + 1), content_type="application/json"
    )
    assert huge["code"] == "payload_too_large"
    # 422: a catalog with problems.
    (settings.catalog_path / "programs" / "broken.yaml").write_text("slug: broken\n")
    problems = refused("POST", "/api/v1/staff/catalog/load", cast.root, 422)
    assert problems["code"] == "catalog_invalid" and problems["details"]["problems"]


def test_credential_refusals_answer_as_described(
    described: Described, cast: Cast, loaded: sessionmaker[Session], settings: Settings
) -> None:
    """The holder and the program's staff read a credential; the holder may not revoke it, nobody else
    learns it exists, a revocation needs a reason and happens once."""
    call = described.call
    hana = make_account(loaded, "hana@example.org", programs=("other-program",))
    otto = make_account(loaded, "otto@example.org", role="reviewer", runs=("other-program",))
    credential = issued_credential(loaded, settings, hana)
    path = f"/api/v1/credentials/{credential}"

    call("GET", "/api/v1/credentials", expect=401, well_formed=False)  # no token
    call("GET", path, expect=401, well_formed=False)
    wrong = call("GET", f"{path}?format=pdf", hana, expect=400, well_formed=False).get_json()
    assert wrong["error"]["details"]["field"] == "format"
    call("GET", path, cast.ada, expect=404)  # another learner
    call("GET", path, cast.stella, expect=404)  # staff of another program
    call("GET", "/api/v1/credentials/not-a-credential", hana, expect=404)
    assert call("GET", path, otto, expect=200).get_json()["id"] == f"urn:uuid:{credential}"
    assert call("GET", "/api/v1/credentials", cast.ada, expect=200).get_json() == {"credentials": []}

    call("POST", f"{path}/revoke", hana, expect=403, json={"reason": "I changed my mind."})
    call("POST", f"{path}/revoke", cast.stella, expect=404, json={"reason": "Not mine."})
    for body in ({}, {"reason": 7}):
        missing = call("POST", f"{path}/revoke", otto, expect=400, well_formed=False, json=body).get_json()
        assert missing["error"]["details"]["field"] == "reason"
    blank = call("POST", f"{path}/revoke", otto, expect=400, json={"reason": "   "}).get_json()
    assert blank["error"]["details"]["field"] == "reason"
    assert (
        call("POST", f"{path}/revoke", otto, expect=200, json={"reason": "Copied."}).get_json()["status"]
        == "revoked"
    )
    call("POST", f"{path}/revoke", otto, expect=409, json={"reason": "Copied."})
    assert call("GET", path, hana, expect=200).get_json()["id"] == f"urn:uuid:{credential}"  # still readable


@pytest.fixture
def crowded(settings: Settings, loaded: sessionmaker[Session], openapi: OpenAPI) -> Described:
    """An app whose quiz queue takes one run at most, so the next hand-in meets admission control."""
    from grader.web import create_app

    app = create_app(replace(settings, queue_admission_limit=1), queue=RecordingQueue())
    app.config["TESTING"] = True
    return Described(app, app.test_client(), openapi)


def test_a_full_queue_is_a_described_503(crowded: Described, cast: Cast) -> None:
    hand_in = {"assessment": "basics", "answers": BASICS_ANSWERS}
    crowded.call("POST", "/api/v1/submissions", cast.ada, expect=202, json=hand_in)
    full = crowded.call("POST", "/api/v1/submissions", cast.ada, expect=503, json=hand_in)
    assert full.get_json()["error"]["code"] == "service_unavailable"
    assert full.headers["Retry-After"] == "60"
