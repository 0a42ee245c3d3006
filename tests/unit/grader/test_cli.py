"""The account commands: create a user, enrol them, issue a token that the API then accepts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from grader.config import Settings
from grader.web import create_app
from tests.support.catalogs import write_catalog

ROOT = Path(__file__).resolve().parents[3]


def grader(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    env.update(GRADER_DATA_DIR=str(tmp_path / "var"), PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "grader.entrypoints.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_users_tokens_and_enrolment_from_the_command_line(tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "catalog")
    assert grader(tmp_path, "catalog", "load", str(catalog)).returncode == 0
    created = grader(
        tmp_path,
        "users",
        "create",
        "--email",
        "Grace@Example.org",
        "--name",
        "Grace",
        "--password",
        "long enough password",
        "--enroll",
        "test-program",
    )
    assert created.returncode == 0, created.stderr
    again = grader(
        tmp_path, "users", "create", "--email", "grace@example.org", "--password", "long enough password"
    )
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    short = grader(tmp_path, "users", "create", "--email", "bob@example.org", "--password", "short")
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    assert (
        grader(tmp_path, "enroll", "--email", "grace@example.org", "--program", "other-program").returncode
        == 0
    )
    missing = grader(tmp_path, "enroll", "--email", "nobody@example.org", "--program", "test-program")
    assert missing.returncode == 1 and "no user" in missing.stderr

    token = grader(tmp_path, "tokens", "create", "--email", "grace@example.org").stdout.strip()
    assert token.startswith("gr_")
    app = create_app(Settings(data_dir=tmp_path / "var", secret_key="x"))
    me = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.get_json()["email"] == "grace@example.org"
    progress = app.test_client().get(
        "/api/v1/programs/other-program/progress", headers={"Authorization": f"Bearer {token}"}
    )
    assert progress.status_code == 200


def test_settings_round_trip_through_the_environment(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "var",
        secret_key="s3cret",
        git_allowed_hosts=("a.example", "b.example"),
        git_allow_insecure_loopback=True,
        lease_seconds=7,
        reconcile_every_seconds=2.5,
    )
    again = Settings.from_env(settings.to_env())
    assert again.to_env() == settings.to_env()
    assert again.git_allowed_hosts == ("a.example", "b.example") and again.git_allow_insecure_loopback is True
    assert again.database_url == settings.resolved_database_url and again.lease_seconds == 7
