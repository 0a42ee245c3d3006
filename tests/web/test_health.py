"""/healthz and /readyz as an orchestrator meets them: up while the process answers, ready only while the
database, the broker and the file store answer too, and when not, which part failed, in words, with
neither its address nor its credentials. The answers are checked against grader/web/openapi.yaml.

Real parts: PostgreSQL (a database that does not exist, a port where nothing listens) and a private
redis-server that the test stops and starts again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import EnvironBuilder, FlaskClient
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.wrappers import Request

from grader.config import Settings
from grader.db import make_engine
from grader.interfaces import RecordingQueue
from grader.migrate import upgrade
from grader.web import create_app
from tests.support.services import POSTGRES_ADMIN_URL, RedisServer, free_port, postgres_database, redis_server

DOCUMENT = Path(__file__).parents[2] / "grader" / "web" / "openapi.yaml"


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(yaml.safe_load(DOCUMENT.read_text(encoding="utf-8")))


def probe(app: Flask, openapi: OpenAPI, path: str, expect: int) -> dict[str, Any]:
    """GET `path` and check the answer against its description; its JSON body."""
    builder = EnvironBuilder(app, path=path, method="GET")
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    request = WerkzeugOpenAPIRequest(Request(environ))
    response = app.test_client().open(environ)
    assert response.status_code == expect, response.get_data(as_text=True)
    openapi.validate_response(request, WerkzeugOpenAPIResponse(response))
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def app_for(settings: Settings) -> Flask:
    return create_app(settings, queue=RecordingQueue())


def test_up_and_ready_on_the_embedded_defaults(settings: Settings, openapi: OpenAPI) -> None:
    upgrade(make_engine(settings))
    app = app_for(settings)
    assert probe(app, openapi, "/healthz", 200) == {"status": "up"}
    ready = probe(app, openapi, "/readyz", 200)
    assert ready["status"] == "ready"
    assert {name: check["ok"] for name, check in ready["checks"].items()} == {
        "database": True,
        "broker": True,
        "store": True,
    }


@pytest.mark.postgres
def test_not_ready_when_nothing_listens_where_postgresql_should_be(
    settings: Settings, openapi: OpenAPI
) -> None:
    port = free_port()
    app = app_for(
        replace(settings, database_url=f"postgresql+psycopg://grader:pg-secret@127.0.0.1:{port}/grader")
    )
    body = probe(app, openapi, "/readyz", 503)
    error = body["error"]
    assert error["code"] == "not_ready" and error["details"]["failed"] == ["database"]
    assert error["message"].startswith("not ready: database: the database refused the connection")
    assert error["details"]["checks"]["broker"]["ok"] is True
    text = str(body)
    assert str(port) not in text and "pg-secret" not in text and "127.0.0.1" not in text
    # The process itself is fine: liveness does not depend on the database.
    assert probe(app, openapi, "/healthz", 200) == {"status": "up"}


@pytest.mark.postgres
def test_not_ready_when_the_database_named_does_not_exist(settings: Settings, openapi: OpenAPI) -> None:
    missing = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/grader_no_such_database"
    error = probe(app_for(replace(settings, database_url=missing)), openapi, "/readyz", 503)["error"]
    assert error["details"]["failed"] == ["database"]
    assert "the database named in the settings does not exist" in error["message"]


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.mark.postgres
@pytest.mark.redis
def test_ready_on_postgresql_and_redis_not_ready_while_redis_is_stopped_ready_again_after(
    settings: Settings, openapi: OpenAPI, redis: RedisServer
) -> None:
    with postgres_database() as url:
        production_like = replace(settings, database_url=url, broker_url=redis.url)
        upgrade(make_engine(production_like))
        app = app_for(production_like)
        assert probe(app, openapi, "/readyz", 200)["status"] == "ready"

        redis.stop()
        error = probe(app, openapi, "/readyz", 503)["error"]
        assert error["details"]["failed"] == ["broker"]
        assert error["message"] == "not ready: broker: the broker refused the connection (ConnectionError)"
        assert error["details"]["checks"]["database"]["ok"] is True
        assert str(redis.port) not in str(error)

        redis.start()
        assert probe(app, openapi, "/readyz", 200)["status"] == "ready"


def test_the_health_checks_need_no_login_but_are_not_an_api_page(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "Set-Cookie" not in response.headers
