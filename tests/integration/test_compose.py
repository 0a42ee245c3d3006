"""compose.yaml is valid (checked by docker-compose itself) and wires what production needs."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from grader.config import Settings

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "POSTGRES_PASSWORD": "pw",
    "GRADER_SECRET_KEY": "secret",
    "GRADER_PUBLIC_URL": "https://credentials.example.edu",
    "GRADER_ISSUER_NAME": "Example University",
    "GRADER_CREDENTIAL_KEY_SECRET": "a-long-enough-key-secret",
    "GRADER_METRICS_TOKEN": "a-scrape-token",
}


def compose(*args: str, env: dict[str, str] = ENV) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: apt-get install docker-compose (make test does this)")
    return subprocess.run(
        [binary, "-f", str(ROOT / "compose.yaml"), *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    result = compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == {
        "postgres",
        "redis",
        "migrate",
        "web",
        "worker-quiz",
        "worker-sandbox",
        "reconciler",
    }


def test_secrets_have_no_default() -> None:
    result = compose("config", "-q", env={k: v for k, v in ENV.items() if k != "GRADER_SECRET_KEY"})
    assert result.returncode != 0 and "GRADER_SECRET_KEY" in result.stderr


def test_every_grader_setting_is_a_real_setting(resolved: dict[str, Any]) -> None:
    known = {f"GRADER_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    for name, service in resolved["services"].items():
        for key in service.get("environment", {}):
            if key.startswith("GRADER_"):
                assert key in known, f"{name} sets unknown {key}"


def test_redis_persists_and_only_the_sandbox_worker_reaches_docker(resolved: dict[str, Any]) -> None:
    redis_command = " ".join(resolved["services"]["redis"]["command"])
    assert "--appendonly yes" in redis_command and "noeviction" in redis_command
    for name, service in resolved["services"].items():
        mounts = " ".join(str(v) for v in service.get("volumes", []))
        assert ("docker.sock" in mounts) == (name == "worker-sandbox"), name
    assert resolved["services"]["worker-sandbox"]["environment"]["GRADER_SANDBOX_BACKEND"] == "docker"


def served_queues(service: dict[str, Any]) -> set[str]:
    command = list(service.get("command") or [])
    if "worker" not in command or "-Q" not in command:
        return set()
    return set(command[command.index("-Q") + 1].split(","))


def test_every_kinds_queue_is_served_and_sandboxed_work_goes_to_the_sandbox_worker(
    resolved: dict[str, Any],
) -> None:
    from grader.kinds import KINDS

    servers: dict[str, list[str]] = {}
    for name, service in resolved["services"].items():
        for queue in served_queues(service):
            servers.setdefault(queue, []).append(name)
    for kind in KINDS.values():
        assert len(servers.get(kind.queue, [])) == 1, f"{kind.name}'s queue {kind.queue}: {servers}"
    # A repository's tests and a portfolio's PDF pages (pdftoppm) run in the box: only the worker that
    # reaches the Docker engine can do them.
    assert servers["sandbox"] == servers["checks"] == ["worker-sandbox"]


def test_each_long_running_service_has_a_healthcheck_on_its_own_readiness_and_serves_metrics(
    resolved: dict[str, Any],
) -> None:
    services = resolved["services"]
    web = services["web"]
    assert "python:grader.entrypoints.gunicorn_conf" in web["command"]  # one /metrics over its workers
    assert "/readyz" in " ".join(web["healthcheck"]["test"])
    for name in ("worker-quiz", "worker-sandbox"):
        assert services[name]["healthcheck"]["test"] == ["CMD", "grader", "worker-ready"], name
    assert "9100/metrics" in " ".join(services["reconciler"]["healthcheck"]["test"])
    for name in ("worker-quiz", "worker-sandbox", "reconciler"):
        environment = services[name]["environment"]
        assert environment["GRADER_WORKER_METRICS_PORT"] == "9100", name
        assert "ports" not in services[name], f"{name}'s metrics are for the compose network only"
    for name in ("web", "worker-quiz", "worker-sandbox", "reconciler", "migrate"):
        assert services[name]["environment"]["GRADER_LOG_FORMAT"] == "json", name
    # The web port is published: its /metrics asks for a token, which has no default.
    missing = compose("config", "-q", env={k: v for k, v in ENV.items() if k != "GRADER_METRICS_TOKEN"})
    assert missing.returncode != 0 and "GRADER_METRICS_TOKEN" in missing.stderr
