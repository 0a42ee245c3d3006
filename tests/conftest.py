"""Shared fixtures: settings on a temporary SQLite database, the test catalog, app and client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog.loader import read_catalog
from grader.config import Settings
from grader.db import make_engine, make_session_factory, session_scope
from grader.interfaces import RecordingQueue
from grader.migrate import upgrade
from grader.models import StaffRole
from grader.services import access, accounts
from grader.services.catalog import load_catalog
from tests.support.catalogs import write_catalog
from tests.support.sandboxes import sandbox_ready  # noqa: F401 - a fixture for every suite

PASSWORD = "correct horse battery"


@pytest.fixture
def database_url() -> str:
    return ""  # SQLite in data_dir; persistence tests parametrize this with PostgreSQL too


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        database_url=database_url,
        secret_key="test-secret-key",
        catalog_path=tmp_path / "catalog",
        submissions_per_hour=100,
    )


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    return write_catalog(settings.catalog_path)


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings)
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def loaded(sessions: sessionmaker[Session], catalog_dir: Path) -> sessionmaker[Session]:
    with session_scope(sessions) as session:
        load_catalog(session, read_catalog(catalog_dir))
    return sessions


@dataclass
class Account:
    id: int
    email: str
    token: str


def make_account(
    sessions: sessionmaker[Session],
    email: str,
    role: str = "learner",
    programs: tuple[str, ...] = (),
    *,
    reviews: tuple[str, ...] = (),
    runs: tuple[str, ...] = (),
) -> Account:
    """An account; a learner enrolled in `programs`, a reviewer of `reviews`, staff of `runs`."""
    with session_scope(sessions) as session:
        user = accounts.create_user(
            session, email=email, name=email.split("@")[0], password=PASSWORD, role=role
        )
        for program in programs:
            accounts.enroll(session, user.id, program)
        for program in reviews:
            access.add_staff(session, user, program, StaffRole.REVIEWER)
        for program in runs:
            access.add_staff(session, user, program, StaffRole.STAFF)
        token = accounts.create_token(session, user.id).secret
        return Account(id=user.id, email=user.email, token=token)


@pytest.fixture
def learner(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada@example.org", programs=("test-program",))


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def app(settings: Settings, loaded: sessionmaker[Session], queue: RecordingQueue) -> Flask:
    from grader.web import create_app

    app = create_app(settings, queue=queue)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def bearer(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.token}"}
