"""Settings: the one typed configuration shared by the web app, the workers and the CLI.

Values come from `GRADER_*` environment variables with strict coercion (a typo is an error, not a
silent default). Embedded defaults run the whole service on one machine: SQLite and Celery's
filesystem transport under `./var`. In production (`GRADER_ENV=production`) secrets have no default.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from grader.errors import InvalidInput

# Seconds a claimed run may go without a heartbeat before the reconciler takes it back.
DEFAULT_LEASE_SECONDS = 120


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with defaults for a one-machine demo."""

    env: str = "development"
    data_dir: Path = Path("var")
    database_url: str = ""  # empty: SQLite file inside data_dir
    broker_url: str = "filesystem://"  # no server needed; production uses redis://
    secret_key: str = ""
    catalog_path: Path = Path("examples/catalog")
    max_request_bytes: int = 2 * 1024 * 1024
    max_archive_bytes: int = 20 * 1024 * 1024
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    max_run_tries: int = 3
    reconcile_every_seconds: float = 30.0
    queue_admission_limit: int = 5000
    # Sandbox
    sandbox_backend: str = "auto"  # auto | docker | bwrap
    sandbox_image: str = "microcred-python:bookworm"
    sandbox_rootfs: Path = Path("/var/lib/microcred/rootfs/python-bookworm")
    # Docker: started, never-used containers kept ready per image and set of limits (0: none)
    docker_warm_pool: int = 2
    # Boxes one grading run may have at once: its suites (hidden tests, io cases, a course autograder)
    # run side by side up to this many, so a run takes about its longest suite rather than their sum
    sandbox_suites_at_once: int = 2
    setup_timeout_seconds: float = 900.0  # a course team's setup step, when its image is built
    # Git intake
    git_allowed_hosts: tuple[str, ...] = (
        "github.com",
        "gitlab.com",
        "codeberg.org",
        "bitbucket.org",
    )
    git_allow_insecure_loopback: bool = False  # tests only: lets http://127.0.0.1 servers through
    git_clone_timeout_seconds: int = 60
    git_max_repo_bytes: int = 50 * 1024 * 1024
    # Pinning a ref at intake (`git ls-remote`, about 0.4 s) holds a web thread: per web process at most
    # `intake_git_slots` run at once and `intake_git_waiting` more wait, each at most
    # `intake_git_wait_seconds`; the rest are told 503 + Retry-After at once. Keep slots + waiting below
    # the threads of a web process (compose.yaml: 8), so a quiz request always finds a free thread.
    intake_git_slots: int = 2
    intake_git_waiting: int = 2
    intake_git_wait_seconds: float = 5.0
    # The intake's git runs at this CPU niceness (0-19): on a busy web host, a quiz's request comes first.
    intake_git_nice: int = 10
    # Submission pacing per learner and assessment (anti-oracle)
    submissions_per_hour: int = 30
    # queue: every quiz through the workers (the design's default); inline: a closed-form quiz is graded
    # inside its intake request and the 201 carries the result
    quiz_grading: str = "queue"
    quiz_starts_per_hour: int = 20  # drawing attempts shows questions: paced like submissions
    # File store (archives, evidence): a folder under data_dir, or an S3-compatible store shared by hosts
    store: str = "local"  # local | s3
    s3_endpoint: str = ""  # empty: AWS itself; otherwise the store's URL, e.g. http://seaweedfs:8333
    s3_bucket: str = ""  # required with store=s3; private, never public-read
    s3_prefix: str = ""  # keys go under it, e.g. "grader/", so one bucket can serve several services
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""  # empty: boto3's usual chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, a role)
    s3_secret_access_key: str = ""
    s3_create_bucket: bool = False  # create the bucket, private, when it is missing (else: an error)
    s3_connect_timeout_seconds: float = 5.0
    s3_read_timeout_seconds: float = 30.0
    s3_max_attempts: int = 3  # every request, the first included; retried with backoff
    # Credentials: who issues them, where their public pages live, and the keys that sign them
    public_url: str = "http://localhost:5000"  # the service as learners and verifiers reach it
    issuer_name: str = "Micro-credentials demo issuer"
    issuer_url: str = ""  # the issuer's home page; empty: public_url
    issuer_email: str = ""
    issuer_image_url: str = ""  # the issuer's logo (https), shown by badge displayers; empty: none
    issuer_did: str = "key"  # key: did:key of the signing key (demo) | web: did:web of public_url
    credential_keys_path: Path = Path("")  # empty: keys/issuer-keys.json inside data_dir
    credential_key_secret: str = ""  # encrypts the private keys at rest; required in production
    # Operations (docs/operations.md): log lines as text (the demo's) or one JSON object per line
    log_format: str = "text"  # text | json
    # A worker (and the reconciler) serves Prometheus metrics here; 0: not served
    worker_metrics_port: int = 0
    worker_metrics_host: str = "127.0.0.1"  # 0.0.0.0 when Prometheus scrapes from another host
    metrics_token: str = ""  # when set, the web app's /metrics needs `Authorization: Bearer <it>`
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'grader.db').resolve()}"

    @property
    def broker_dir(self) -> Path:
        return (self.data_dir / "broker").resolve()

    @property
    def files_dir(self) -> Path:
        return (self.data_dir / "files").resolve()

    @property
    def resolved_credential_keys_path(self) -> Path:
        if str(self.credential_keys_path) not in {"", "."}:
            return self.credential_keys_path
        return (self.data_dir / "keys" / "issuer-keys.json").resolve()

    @property
    def resolved_credential_key_secret(self) -> str:
        """The key-encryption secret; outside production a random one kept in data_dir by default."""
        if self.credential_key_secret:
            return self.credential_key_secret
        if self.is_production:
            raise InvalidInput(
                "GRADER_CREDENTIAL_KEY_SECRET must be set in production: it encrypts the issuer's keys",
                details={"field": "GRADER_CREDENTIAL_KEY_SECRET"},
            )
        return _development_secret(self.data_dir, "credential_key_secret")

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """These settings as `GRADER_*` variables, so a child process (a worker) gets exactly them."""
        env: dict[str, str] = {}
        for item in fields(self):
            if item.name == "extra":
                continue
            value = getattr(self, item.name)
            if item.name == "database_url":
                value = self.resolved_database_url
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, tuple):
                text = ",".join(value)
            else:
                text = str(value)
            env[f"GRADER_{item.name.upper()}"] = text
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `GRADER_*` variables; unknown or malformed values are errors."""
        environ = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        for key, raw in environ.items():
            if not key.startswith("GRADER_"):
                continue
            name = key.removeprefix("GRADER_").lower()
            if name not in known:
                continue  # other tools share the prefix space (GRADER_TEST_*)
            values[name] = _coerce(key, raw, cls.__dataclass_fields__[name].default)
        settings = cls(**values)
        if settings.is_production and not settings.secret_key:
            raise InvalidInput(
                "GRADER_SECRET_KEY must be set in production",
                details={"field": "GRADER_SECRET_KEY"},
            )
        if settings.is_production and not settings.credential_key_secret:
            raise InvalidInput(
                "GRADER_CREDENTIAL_KEY_SECRET must be set in production: it encrypts the issuer's keys",
                details={"field": "GRADER_CREDENTIAL_KEY_SECRET"},
            )
        if not settings.secret_key:
            settings = replace(settings, secret_key=_development_secret(settings.data_dir))
        if settings.issuer_did not in {"key", "web"}:
            raise InvalidInput("GRADER_ISSUER_DID must be key or web", details={"field": "GRADER_ISSUER_DID"})
        if settings.sandbox_backend not in {"auto", "docker", "bwrap"}:
            raise InvalidInput(
                "GRADER_SANDBOX_BACKEND must be auto, docker or bwrap",
                details={"field": "GRADER_SANDBOX_BACKEND"},
            )
        if not 0 <= settings.docker_warm_pool <= 16:
            raise InvalidInput(
                "GRADER_DOCKER_WARM_POOL must be between 0 (no warm containers) and 16",
                details={"field": "GRADER_DOCKER_WARM_POOL"},
            )
        if not 1 <= settings.sandbox_suites_at_once <= 8:
            raise InvalidInput(
                "GRADER_SANDBOX_SUITES_AT_ONCE must be between 1 (one suite after another) and 8",
                details={"field": "GRADER_SANDBOX_SUITES_AT_ONCE"},
            )
        if not 0 <= settings.intake_git_nice <= 19:
            raise InvalidInput(
                "GRADER_INTAKE_GIT_NICE must be between 0 (as the web process) and 19 (only idle CPU)",
                details={"field": "GRADER_INTAKE_GIT_NICE"},
            )
        if settings.log_format not in {"text", "json"}:
            raise InvalidInput(
                "GRADER_LOG_FORMAT must be text or json", details={"field": "GRADER_LOG_FORMAT"}
            )
        if not 0 <= settings.worker_metrics_port <= 65535:
            raise InvalidInput(
                "GRADER_WORKER_METRICS_PORT must be a port number (0 turns the metrics off)",
                details={"field": "GRADER_WORKER_METRICS_PORT"},
            )
        if settings.quiz_grading not in {"queue", "inline"}:
            raise InvalidInput(
                "GRADER_QUIZ_GRADING must be queue or inline", details={"field": "GRADER_QUIZ_GRADING"}
            )
        if settings.store not in {"local", "s3"}:
            raise InvalidInput("GRADER_STORE must be local or s3", details={"field": "GRADER_STORE"})
        if settings.store == "s3" and not settings.s3_bucket:
            raise InvalidInput(
                "GRADER_S3_BUCKET must be set when GRADER_STORE is s3", details={"field": "GRADER_S3_BUCKET"}
            )
        return settings


def _coerce(key: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError:
        raise InvalidInput(f"{key} has an invalid value {raw!r}", details={"field": key}) from None


def _development_secret(data_dir: Path, name: str = "secret_key") -> str:
    """A per-installation random key kept in data_dir, so demo sessions (and keys) survive restarts."""
    path = data_dir / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key
