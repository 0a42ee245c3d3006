"""What every `grader` subcommand shares: settings read once, errors as sentences, a migrated database."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click

from grader.config import Settings
from grader.errors import CatalogError, GraderError

P = ParamSpec("P")
R = TypeVar("R")


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CatalogError as exc:
            for problem in exc.problems:
                click.echo(problem, err=True)
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
        except GraderError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)

    return wrapper


def settings() -> Settings:
    try:
        return Settings.from_env()
    except GraderError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)


def session_factory(settings: Settings) -> Any:
    from grader.db import make_engine, make_session_factory
    from grader.migrate import upgrade

    engine = make_engine(settings)
    upgrade(engine)
    return make_session_factory(engine)
