"""Counting the SQL statements and commits a step sends, on every engine of the process (the app
builds its own from the settings): for the hot path's statement budget, in tests and in bench/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


class StatementLog:
    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0

    def attach(self) -> None:
        # On the class: the app builds its own engine from the settings.
        event.listen(Engine, "before_cursor_execute", self._statement)
        event.listen(Engine, "commit", self._commit)

    def detach(self) -> None:
        event.remove(Engine, "before_cursor_execute", self._statement)
        event.remove(Engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        self.statements.append(" ".join(statement.split()))

    def _commit(self, conn: Any) -> None:
        self.commits += 1

    @contextmanager
    def step(self, name: str, report: dict[str, tuple[int, int, list[str]]]) -> Iterator[None]:
        start, commits = len(self.statements), self.commits
        yield
        report[name] = (len(self.statements) - start, self.commits - commits, self.statements[start:])
