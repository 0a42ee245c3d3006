"""The `grader` command: catalog checks, accounts, serving, workers, the reconciler and the demo.

Each command builds what it needs from `Settings.from_env()`, calls services, and prints a message
a person can act on; a `GraderError` becomes its message and exit status 1, never a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
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


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except GraderError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log more detail.")
def main(verbose: bool) -> None:
    """Assessment and code-review grading for micro-credentials."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# ---------------------------------------------------------------- database


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@friendly_errors
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    from grader.db import make_engine
    from grader.migrate import upgrade

    settings = _settings()
    upgrade(make_engine(settings))
    click.echo(f"database is up to date ({settings.resolved_database_url.split('@')[-1]})")


# ---------------------------------------------------------------- catalog


@main.group()
def catalog() -> None:
    """Programs, assessments and rubrics kept as files."""


@catalog.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--no-run", is_flag=True, help="Only validate files; do not run the hidden tests.")
@click.option("--backend", type=click.Choice(["auto", "docker", "bwrap"]), default=None)
@friendly_errors
def catalog_check(path: Path, no_run: bool, backend: str | None) -> None:
    """Validate a catalog folder; print every problem as file:line: message.

    Unless --no-run, each repository assessment's hidden tests run in the sandbox against its
    reference solution (all must pass) and starter code (some must fail), and the test ids the
    reference produced are recorded in expected_tests.json.
    """
    from grader.catalog.loader import read_catalog

    loaded = read_catalog(path)
    summary = (
        f"{len(loaded.programs)} programs, {len(loaded.assessments)} assessments, "
        f"{len(loaded.rubrics)} rubrics"
    )
    if not no_run and any(a.definition.kind == "repository" for a in loaded.assessments.values()):
        from grader.services.trial import check_autograders

        settings = _settings()
        problems: list[str] = []
        for check in check_autograders(loaded, _runner(settings, backend)):
            problems.extend(check.problems)
            if not check.problems:
                click.echo(
                    f"  {check.slug}: reference passes {check.reference_passed} tests, "
                    f"starter fails {check.starter_failed}; {len(check.expected_tests)} test ids recorded"
                )
        if problems:
            raise CatalogError(problems)
    click.echo(f"catalog OK: {summary}")


def _runner(settings: Settings, backend: str | None) -> Any:
    from grader.errors import SandboxUnavailable
    from sandbox.errors import SandboxUnavailable as NoBackend
    from sandbox.select import select_runner

    try:
        return select_runner(
            backend or settings.sandbox_backend, image=settings.sandbox_image, rootfs=settings.sandbox_rootfs
        )
    except NoBackend as exc:
        raise SandboxUnavailable(f"{exc}; fix: {exc.fix}") from None


@main.command("grade")
@click.option("--assessment", "slug", required=True, help="Repository assessment slug.")
@click.option("--catalog", "catalog_path", type=click.Path(path_type=Path), default=None)
@click.option("--backend", type=click.Choice(["auto", "docker", "bwrap"]), default=None)
@click.argument("path", type=click.Path(path_type=Path))
@friendly_errors
def grade_command(slug: str, catalog_path: Path | None, backend: str | None, path: Path) -> None:
    """Grade a local folder or archive exactly as the service would, and print the result as JSON."""
    from grader.catalog.loader import read_catalog
    from grader.services.trial import grade_path

    settings = _settings()
    loaded = read_catalog(catalog_path or settings.catalog_path)
    click.echo(json.dumps(grade_path(settings, loaded, slug, path, _runner(settings, backend)), indent=2))


@catalog.command("load")
@click.argument("path", type=click.Path(path_type=Path))
@friendly_errors
def catalog_load(path: Path) -> None:
    """Validate and load a catalog; unchanged content is left alone, changed content gets a new version."""
    from grader.catalog.loader import read_catalog
    from grader.db import make_engine, make_session_factory, session_scope
    from grader.migrate import upgrade
    from grader.services.catalog import load_catalog

    settings = _settings()
    loaded = read_catalog(path)
    engine = make_engine(settings)
    upgrade(engine)
    with session_scope(make_session_factory(engine)) as session:
        report = load_catalog(session, loaded)
    for line in report.created + report.new_versions:
        click.echo(f"  {line}")
    click.echo(f"catalog loaded: {report.summary()}")


# ---------------------------------------------------------------- accounts


def _session_factory(settings: Settings) -> Any:
    from grader.db import make_engine, make_session_factory
    from grader.migrate import upgrade

    engine = make_engine(settings)
    upgrade(engine)
    return make_session_factory(engine)


@main.group()
def users() -> None:
    """User accounts."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--name", default="")
@click.option("--role", type=click.Choice(["learner", "reviewer", "admin"]), default="learner")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--enroll", "programs", multiple=True, help="Program slug to enrol the user in.")
@friendly_errors
def users_create(email: str, name: str, role: str, password: str, programs: tuple[str, ...]) -> None:
    """Create a user (and optionally enrol them in programs)."""
    from grader.db import session_scope
    from grader.services import accounts

    with session_scope(_session_factory(_settings())) as session:
        user = accounts.create_user(session, email=email, name=name, password=password, role=role)
        for program in programs:
            accounts.enroll(session, user.id, program)
    click.echo(f"created {role} {email}")


@main.command("enroll")
@click.option("--email", required=True)
@click.option("--program", required=True)
@friendly_errors
def enroll(email: str, program: str) -> None:
    """Enrol a learner in a program."""
    from grader.db import session_scope
    from grader.services import accounts

    with session_scope(_session_factory(_settings())) as session:
        user = accounts.find_user_by_email(session, email)
        accounts.enroll(session, user.id, program)
    click.echo(f"{email} is enrolled in {program}")


@main.group()
def tokens() -> None:
    """Personal API tokens."""


@tokens.command("create")
@click.option("--email", required=True)
@click.option("--name", default="api")
@friendly_errors
def tokens_create(email: str, name: str) -> None:
    """Create an API token; it is printed once and never stored in clear."""
    from grader.db import session_scope
    from grader.services import accounts

    with session_scope(_session_factory(_settings())) as session:
        user = accounts.find_user_by_email(session, email)
        issued = accounts.create_token(session, user.id, name)
    click.echo(issued.secret)


# ---------------------------------------------------------------- processes


@main.command("serve")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@friendly_errors
def serve(host: str, port: int) -> None:
    """Serve the web app with the development server (production: gunicorn 'grader.wsgi:app')."""
    from grader.web import create_app

    create_app(_settings()).run(host=host, port=port)


@main.command("worker", context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker (extra arguments go to `celery worker`)."""
    from workers.main import app

    app.worker_main(["worker", "--loglevel=INFO", *celery_args])


@main.command("reconcile")
@click.option("--every", type=float, default=None, help="Repeat every N seconds (default: once).")
@friendly_errors
def reconcile_command(every: float | None) -> None:
    """Re-enqueue runs whose message or worker was lost; mark runs that keep failing as error."""
    from grader.broker import CeleryTaskQueue
    from grader.db import session_scope
    from grader.services.grading import reconcile

    settings = _settings()
    factory = _session_factory(settings)
    queue = CeleryTaskQueue(settings)
    while True:
        with session_scope(factory) as session:
            report = reconcile(
                session,
                queue,
                lease_seconds=settings.lease_seconds,
                max_tries=settings.max_run_tries,
            )
        if report.requeued or report.failed or every is None:
            click.echo(json.dumps({"requeued": len(report.requeued), "failed": len(report.failed)}))
        if every is None:
            return
        time.sleep(every)


@main.command("regrade")
@click.option("--assessment", "slug", required=True, help="Assessment slug.")
@click.option("--only-latest", is_flag=True, help="Only each learner's latest submission.")
@friendly_errors
def regrade_command(slug: str, only_latest: bool) -> None:
    """Grade existing submissions again against the current version; earlier results are kept."""
    from grader.broker import CeleryTaskQueue
    from grader.db import session_scope
    from grader.services.regrade import regrade

    settings = _settings()
    with session_scope(_session_factory(settings)) as session:
        report = regrade(session, CeleryTaskQueue(settings), slug, only_latest=only_latest)
    click.echo(f"queued {len(report.queued)} regrades of {slug}; {report.skipped_busy} already in grading")


@main.command("demo")
@click.option(
    "--smoke", is_flag=True, help="Act as a learner through the API, then stop (exit 0 on success)."
)
@click.option(
    "--port",
    type=int,
    default=None,
    help="Port to serve on (default 5000; a free one with --smoke).",
)
@click.option("--catalog", "catalog_path", type=click.Path(path_type=Path), default=None)
def demo(smoke: bool, port: int | None, catalog_path: Path | None) -> None:
    """Run the whole service on one machine: SQLite, an embedded worker, the sample catalog."""
    from grader.demo import run_demo

    sys.exit(run_demo(_settings(), smoke=smoke, port=port, catalog_path=catalog_path))


def _mount_optional_groups() -> None:
    try:
        from sandbox.cli import sandbox_group
    except ImportError:  # the sandbox package is optional for web-only installs
        return
    main.add_command(sandbox_group, "sandbox")


_mount_optional_groups()


if __name__ == "__main__":
    main()
