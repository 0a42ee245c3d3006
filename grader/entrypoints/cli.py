"""The `grader` command: catalog checks, accounts, serving, workers, the reconciler and the demo.

Each command builds what it needs from `Settings.from_env()`, calls services, and prints a message
a person can act on; a `GraderError` becomes its message and exit status 1, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from grader.config import Settings
from grader.entrypoints.cli_support import friendly_errors
from grader.entrypoints.cli_support import session_factory as _session_factory
from grader.entrypoints.cli_support import settings as _settings
from grader.errors import CatalogError


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log more detail.")
def main(verbose: bool) -> None:
    """Assessment and code-review grading for micro-credentials."""
    from grader import logs

    # Read alone: a bad value of any other setting is the subcommand's to report, in its words.
    logs.configure(
        os.environ.get("GRADER_LOG_FORMAT", "text"), level=logging.DEBUG if verbose else logging.INFO
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
        runner = _runner(settings, backend)
        checks = check_autograders(
            loaded, runner, settings=settings, ensure_image=_image_builder(settings, runner.name)
        )
        for check in checks:
            problems.extend(check.problems)
            if not check.problems:
                click.echo(
                    f"  {check.slug}: reference passes {check.reference_passed} tests, "
                    f"starter fails {check.starter_failed}; {len(check.expected_tests)} test ids recorded"
                )
        if problems:
            raise CatalogError(problems)
    click.echo(f"catalog OK: {summary}")


def _image_builder(settings: Settings, backend: str) -> Callable[[Any], None]:
    """Builds a setup image that is missing, printing what it does (the setup may take a while)."""

    def ensure(image: Any) -> None:
        from grader.services.images import build_setup_image

        outcome = build_setup_image(settings, backend, image)
        if outcome != "exists":
            click.echo(f"  built grading image {image.reference} ({backend})", err=True)

    return ensure


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
    runner = _runner(settings, backend)
    graded = grade_path(
        settings, loaded, slug, path, runner, ensure_image=_image_builder(settings, runner.name)
    )
    click.echo(json.dumps(graded, indent=2))


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


@main.group()
def users() -> None:
    """User accounts."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--name", default="")
@click.option("--role", type=click.Choice(["learner", "reviewer", "admin"]), default="learner")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--enroll", "programs", multiple=True, help="Program slug to enrol the user in.")
@click.option("--reviews", "reviewed", multiple=True, help="Program slug the user reviews.")
@click.option("--runs", "run", multiple=True, help="Program slug the user runs as staff.")
@friendly_errors
def users_create(
    email: str,
    name: str,
    role: str,
    password: str,
    programs: tuple[str, ...],
    reviewed: tuple[str, ...],
    run: tuple[str, ...],
) -> None:
    """Create a user (and optionally enrol them in programs, or make them a program's reviewer or staff)."""
    from grader.db import session_scope
    from grader.models import StaffRole
    from grader.services import access, accounts

    with session_scope(_session_factory(_settings())) as session:
        user = accounts.create_user(session, email=email, name=name, password=password, role=role)
        for program in programs:
            accounts.enroll(session, user.id, program)
        for program in reviewed:
            access.add_staff(session, user, program, StaffRole.REVIEWER)
        for program in run:
            access.add_staff(session, user, program, StaffRole.STAFF)
    click.echo(f"created {role} {email}")


@main.command("staff")
@click.option("--email", required=True)
@click.option("--program", required=True)
@click.option("--role", type=click.Choice(["reviewer", "staff"]), default="reviewer", show_default=True)
@friendly_errors
def staff_command(email: str, program: str, role: str) -> None:
    """Make a reviewer or admin account a reviewer (or staff) of a program."""
    from grader.db import session_scope
    from grader.models import StaffRole
    from grader.services import access, accounts

    with session_scope(_session_factory(_settings())) as session:
        access.add_staff(session, accounts.find_user_by_email(session, email), program, StaffRole(role))
    click.echo(f"{email} is {role} of {program}")


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
    """Serve the web app with the development server (production: gunicorn 'grader.entrypoints.wsgi:app')."""
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
    from grader.services.reconciler import reconcile

    settings = _settings()
    factory = _session_factory(settings)
    queue = CeleryTaskQueue(settings)
    if every is not None and settings.worker_metrics_port:
        from grader import metrics

        metrics.serve(settings.worker_metrics_host, settings.worker_metrics_port)
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


@main.command("worker-ready")
@click.option("--node", default=None, help="The worker's node name (default: any worker on this host).")
@click.option("--timeout", type=float, default=2.0, show_default=True, help="Seconds to wait for its answer.")
@friendly_errors
def worker_ready(node: str | None, timeout: float) -> None:
    """Exit 0 when a worker on this host answers a ping through the broker and the database, broker and
    file store are reachable; otherwise say which is not, and exit 1 (a container's healthcheck)."""
    import socket

    from grader.broker import make_client
    from grader.db import make_engine, make_session_factory
    from grader.services import health

    settings = _settings()
    engine = make_engine(settings)
    try:
        readiness = health.readiness(settings, make_session_factory(engine))
    finally:
        engine.dispose()
    if not readiness.ok:
        click.echo(readiness.summary(), err=True)
        sys.exit(1)
    host = socket.gethostname()
    try:
        replies = make_client(settings).control.ping(destination=[node] if node else None, timeout=timeout)
    except Exception as exc:  # the broker went away between the check and the ping
        click.echo(
            f"not ready: the ping could not be sent through the broker ({type(exc).__name__})", err=True
        )
        sys.exit(1)
    answered = sorted(name for reply in replies or [] for name in reply)
    mine = [name for name in answered if name == node or (node is None and name.endswith(f"@{host}"))]
    if not mine:
        others = f" (answered: {', '.join(answered)})" if answered else ""
        wanted = node or f"a worker on {host}"
        click.echo(f"not ready: {wanted} did not answer a ping within {timeout:g} s{others}", err=True)
        sys.exit(1)
    click.echo(f"ready: {', '.join(mine)} answered; {readiness.summary().removeprefix('ready: ')}")


@main.command("regrade")
@click.option("--assessment", "slug", required=True, help="Assessment slug.")
@click.option("--only-latest", is_flag=True, help="Only each learner's latest submission.")
@click.option("--reason", default="", help="Why (kept in the audit log).")
@friendly_errors
def regrade_command(slug: str, only_latest: bool, reason: str) -> None:
    """Grade existing submissions again against the current version; earlier results are kept."""
    from grader.broker import CeleryTaskQueue
    from grader.db import session_scope
    from grader.services.audit import cli_actor
    from grader.services.regrade import regrade

    settings = _settings()
    with session_scope(_session_factory(settings)) as session:
        report = regrade(
            session,
            CeleryTaskQueue(settings),
            slug,
            actor=cli_actor(),
            only_latest=only_latest,
            reason=reason,
        )
    click.echo(f"queued {len(report.queued)} regrades of {slug}; {report.skipped_busy} already in grading")


# ---------------------------------------------------------------- grades: audit, deadlines, publication


@main.command("audit")
@click.option("--submission", "submission_id", default=None, help="Only events of this submission.")
@click.option("--learner", "learner_email", default=None, help="Only events of this learner (email).")
@click.option("--assessment", "slug", default=None, help="Only events of this assessment.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@friendly_errors
def audit_command(
    submission_id: str | None, learner_email: str | None, slug: str | None, limit: int, as_json: bool
) -> None:
    """Every change to a score, a pass, a review, an award or a deadline, newest first."""
    from grader.db import session_scope
    from grader.services import audit

    with session_scope(_session_factory(_settings())) as session:
        entries = audit.events(
            session,
            submission_id=submission_id,
            learner_email=learner_email,
            assessment_slug=slug,
            limit=limit,
        )
    for entry in entries:
        if as_json:
            click.echo(json.dumps(entry.to_dict()))
            continue
        change = f"{_state(entry.before)} -> {_state(entry.after)}" if entry.before or entry.after else ""
        who = f" learner {entry.learner}" if entry.learner else ""
        click.echo(f"{entry.at:%Y-%m-%d %H:%M:%S} {entry.action:<20} {entry.subject}{who} by {entry.actor}")
        if change:
            click.echo(f"    {change}")
        if entry.reason:
            click.echo(f"    why: {entry.reason}")
    if not entries:
        click.echo("no audit events match")


def _state(state: Any) -> str:
    if not state:
        return "nothing"
    shown = {
        k: v for k, v in state.items() if k in ("score", "max_score", "passed", "outcome", "status", "due")
    }
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or json.dumps(state)[:200]


@main.group()
def extensions() -> None:
    """Per-learner due dates."""


@extensions.command("grant")
@click.option("--email", required=True, help="The learner.")
@click.option("--assessment", "slug", required=True)
@click.option("--until", "until", default=None, help="New due date, ISO 8601 with a time zone.")
@click.option("--days", type=float, default=None, help="Or: days after the assessment's own due date.")
@click.option("--reason", default="", help="Why (kept in the audit log).")
@friendly_errors
def extensions_grant(email: str, slug: str, until: str | None, days: float | None, reason: str) -> None:
    """Give one learner a later due date for one assessment."""
    from datetime import datetime, timedelta

    from grader.db import session_scope
    from grader.errors import InvalidInput
    from grader.services.audit import cli_actor
    from grader.services.catalog import current_version, parse_definition
    from grader.services.deadlines import grant_extension

    if (until is None) == (days is None):
        raise InvalidInput("give exactly one of --until or --days", details={"field": "until"})
    with session_scope(_session_factory(_settings())) as session:
        if until is not None:
            try:
                due = datetime.fromisoformat(until.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidInput(f"--until {until!r} is not an ISO 8601 date and time") from None
        else:
            assert days is not None
            own = parse_definition(current_version(session, slug)).due
            if own is None:
                raise InvalidInput(
                    f"{slug} has no due date to extend; give --until", details={"field": "days"}
                )
            due = own + timedelta(days=days)
        grant_extension(
            session, actor=cli_actor(), learner_email=email, assessment_slug=slug, due=due, reason=reason
        )
    click.echo(f"{email} may hand in {slug} until {due:%Y-%m-%d %H:%M} UTC")


@main.command("publish")
@click.option("--assessment", "slug", required=True)
@friendly_errors
def publish_command(slug: str) -> None:
    """Publish an assessment's results: tests visible `after_published` open to learners now."""
    from grader.db import session_scope
    from grader.services.audit import cli_actor
    from grader.services.publication import publish

    with session_scope(_session_factory(_settings())) as session:
        published = publish(session, slug, actor=cli_actor())
    click.echo(f"results of {slug} published at {published:%Y-%m-%d %H:%M} UTC")


@main.group()
def images() -> None:
    """Grading images with a course team's setup step."""


@images.command("build")
@click.option("--catalog", "catalog_path", type=click.Path(path_type=Path), default=None)
@click.option("--backend", type=click.Choice(["auto", "docker", "bwrap"]), default=None)
@friendly_errors
def images_build(catalog_path: Path | None, backend: str | None) -> None:
    """Build the image of every assessment whose autograder has a setup step (once, not per submission)."""
    from grader.catalog.bundle import Bundle
    from grader.catalog.loader import BUNDLED_FOLDERS_KEY, read_catalog
    from grader.catalog.schema import RepositoryAssessment
    from grader.services.images import setup_image

    settings = _settings()
    loaded = read_catalog(catalog_path or settings.catalog_path)
    backends = ["docker", "bwrap"] if (backend or settings.sandbox_backend) == "auto" else [backend or ""]
    built = 0
    for slug, entry in sorted(loaded.assessments.items()):
        if not isinstance(entry.definition, RepositoryAssessment):
            continue
        image = setup_image(
            entry.definition, Bundle.from_stored(entry.data.get(BUNDLED_FOLDERS_KEY)), settings.sandbox_image
        )
        if image is None:
            continue
        for name in backends:
            _image_builder(settings, name)(image)
            built += 1
        click.echo(f"  {slug}: {image.reference}")
    click.echo(f"{built} setup images ready")


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
    from grader.entrypoints.demo import run_demo

    sys.exit(run_demo(_settings(), smoke=smoke, port=port, catalog_path=catalog_path))


def _mount_groups() -> None:
    from grader.entrypoints.cli_credentials import credential, keys

    main.add_command(keys, "keys")
    main.add_command(credential, "credential")
    try:
        from sandbox.cli import sandbox_group
    except ImportError:  # the sandbox package is optional for web-only installs
        return
    main.add_command(sandbox_group, "sandbox")


_mount_groups()


if __name__ == "__main__":
    main()
