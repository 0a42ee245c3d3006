"""A `database_url` fixture that runs a test module on SQLite and on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import postgres_database


@pytest.fixture(params=["sqlite", "postgres"], name="database_url")
def sqlite_and_postgres(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield ""
    else:
        with postgres_database() as url:
            yield url
