"""Storage fixtures: a real SeaweedFS S3 server for the session, and every store test run on both stores.

`store_settings` is the test's `settings` with `GRADER_STORE=local` or `s3` (parametrized); on S3 the
store reaches the server through a `FaultyLink` relay (clean unless a test breaks it) and keys go
under a prefix of the test's own, in the session's private bucket. `store` is `file_store` of those
settings; `backdoor` reaches the stored bytes without the store, and `outage` / `interruption` break
the store the way each one breaks in production.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from grader.config import Settings
from grader.storage import FileStore, LocalFileStore, S3FileStore, file_store
from tests.storage.faults import FaultyLink
from tests.storage.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedMissing, SeaweedServer

BUCKET = "grader-tests"


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """SeaweedFS on loopback for the whole session; a missing binary or a failed start fails the tests."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
    except (SeaweedMissing, RuntimeError) as error:
        pytest.fail(f"the S3 server for the storage tests could not start: {error}")
    server.client().create_bucket(Bucket=BUCKET, ACL="private")
    yield server
    server.stop()


def s3_settings_for(settings: Settings, endpoint: str, **changes: Any) -> Settings:
    return settings.with_overrides(
        **{
            "store": "s3",
            "s3_endpoint": endpoint,
            "s3_bucket": BUCKET,
            "s3_prefix": f"test-{uuid.uuid4().hex[:12]}/",
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SECRET_KEY,
            "s3_connect_timeout_seconds": 2.0,
            "s3_read_timeout_seconds": 10.0,
            "s3_max_attempts": 2,
            **changes,
        }
    )


@pytest.fixture
def link(seaweed: SeaweedServer) -> Iterator[FaultyLink]:
    with FaultyLink(seaweed.ports["s3.port"]) as relay:
        yield relay


@pytest.fixture(params=["local", "s3"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_settings(store_kind: str, settings: Settings, request: pytest.FixtureRequest) -> Settings:
    if store_kind == "local":
        return settings
    relay: FaultyLink = request.getfixturevalue("link")
    return s3_settings_for(settings, relay.endpoint)


@pytest.fixture
def store(store_settings: Settings) -> FileStore:
    return file_store(store_settings)


@dataclass
class Backdoor:
    """The stored bytes reached without the store: what is really there, and tampering with it."""

    names: Callable[[], set[str]]  # every stored name, partial uploads included
    overwrite: Callable[[str, bytes], None]


@pytest.fixture
def backdoor(store: FileStore, seaweed_if_s3: SeaweedServer | None) -> Backdoor:
    if isinstance(store, LocalFileStore):
        root = store.root

        def local_names() -> set[str]:
            return {path.name for path in root.rglob("*") if path.is_file()} if root.exists() else set()

        def local_overwrite(key: str, data: bytes) -> None:
            (root / key[:2] / key).write_bytes(data)

        return Backdoor(local_names, local_overwrite)
    assert isinstance(store, S3FileStore) and seaweed_if_s3 is not None
    client = seaweed_if_s3.client()
    bucket, prefix = store.bucket, store.prefix

    def s3_names() -> set[str]:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return {item["Key"].removeprefix(prefix) for item in listed}

    def s3_overwrite(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}{key}", Body=data)

    return Backdoor(s3_names, s3_overwrite)


@pytest.fixture
def seaweed_if_s3(store_kind: str, request: pytest.FixtureRequest) -> SeaweedServer | None:
    return request.getfixturevalue("seaweed") if store_kind == "s3" else None


@pytest.fixture
def outage(store_kind: str, store_settings: Settings, request: pytest.FixtureRequest) -> ContextManager[None]:
    """While it lasts the store is gone: its folder replaced by a file, or its server unreachable."""
    if store_kind == "s3":
        relay: FaultyLink = request.getfixturevalue("link")
        return _relay_down(relay)
    return _folder_gone(LocalFileStore(store_settings.files_dir / "blobs").root)


@contextlib.contextmanager
def _relay_down(relay: FaultyLink) -> Iterator[None]:
    relay.down()
    try:
        yield
    finally:
        relay.up()


@contextlib.contextmanager
def _folder_gone(root: Path) -> Iterator[None]:
    aside = root.with_name(root.name + ".aside")
    root.mkdir(parents=True, exist_ok=True)
    root.rename(aside)
    root.write_text("not a folder")
    try:
        yield
    finally:
        root.unlink()
        aside.rename(root)


@pytest.fixture
def interruption(store_kind: str, request: pytest.FixtureRequest) -> Callable[[int], ContextManager[None]]:
    """`with interruption(n):` every upload stops after about `n` bytes: the connection is cut (S3), or
    the disk refuses to grow a file past `n` bytes (local: RLIMIT_FSIZE, as a full disk would)."""
    if store_kind == "s3":
        relay: FaultyLink = request.getfixturevalue("link")
        return lambda limit: _relay_cut(relay, limit)
    return _file_size_limit


@contextlib.contextmanager
def _relay_cut(relay: FaultyLink, limit: int) -> Iterator[None]:
    relay.cut_after = limit
    try:
        yield
    finally:
        relay.cut_after = None


@contextlib.contextmanager
def _file_size_limit(limit: int) -> Iterator[None]:
    # Past the limit the kernel refuses the write (EFBIG) instead of killing us with SIGXFSZ.
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
