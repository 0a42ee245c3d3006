"""Repository archives live in the file store: taken by the web host, graded by a worker host that
shares nothing with it but the database, the broker and the store; a store that is down refuses the
hand-in with a 503 and records nothing."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.errors import ServiceUnavailable
from grader.interfaces import RecordingQueue
from grader.models import GradingRun, Result, Submission
from grader.services.workspace import accept_archive, legacy_archive_path, materialise
from grader.storage import file_store
from grader.web import create_app
from tests.conftest import bearer, make_account
from tests.storage.conftest import Backdoor
from tests.support.reviewed import run_queued, write_repository_catalog

FILES = {"app.py": "def add(a, b):\n    return a + b\n", "README.md": "# Adder\n", "pkg/__init__.py": ""}


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, text in files.items():
            bundle.writestr(name, text)
    return buffer.getvalue()


def tree_of(root: Path) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): path.read_text() for path in root.rglob("*") if path.is_file()}


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    return write_repository_catalog(settings.catalog_path)


def hand_in(
    client: FlaskClient, token_headers: dict[str, str], archive: bytes
) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/api/v1/submissions",
        data={"assessment": "reviewed-repo", "archive": (io.BytesIO(archive), "work.zip")},
        headers=token_headers,
        content_type="multipart/form-data",
    )
    return response.status_code, response.get_json()


def test_an_archive_is_kept_in_the_store_by_its_hash_and_comes_back_as_the_same_tree(
    store_settings: Settings, backdoor: Backdoor, tmp_path: Path
) -> None:
    archive = zipped(FILES)
    payload = accept_archive(store_settings, archive, "work.zip", tmp_path / "intake")
    assert payload["archive_sha256"] == hashlib.sha256(archive).hexdigest()
    assert backdoor.names() == {payload["archive_sha256"]}
    assert not (store_settings.files_dir / "archives").exists()
    tree = materialise(store_settings, payload, tmp_path / "grading")
    assert tree_of(tree) == FILES


def test_an_archive_from_before_the_store_still_grades_and_moves_into_it(
    store_settings: Settings, backdoor: Backdoor, tmp_path: Path
) -> None:
    archive = zipped(FILES)
    digest = hashlib.sha256(archive).hexdigest()
    legacy = legacy_archive_path(store_settings, digest)
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(archive)
    payload = {"source": "archive", "archive_sha256": digest, "archive_name": "work.zip"}
    assert tree_of(materialise(store_settings, payload, tmp_path / "grading")) == FILES
    assert backdoor.names() == {digest}


def test_an_archive_missing_from_the_store_is_our_fault_and_says_which(
    store_settings: Settings, tmp_path: Path
) -> None:
    digest = hashlib.sha256(b"never handed in").hexdigest()
    payload = {"source": "archive", "archive_sha256": digest, "archive_name": "work.zip"}
    with pytest.raises(ServiceUnavailable, match=digest[:12]):
        materialise(store_settings, payload, tmp_path / "grading")


def test_a_hand_in_while_the_store_is_down_is_a_503_and_records_nothing(
    store_settings: Settings,
    loaded: sessionmaker[Session],
    queue: RecordingQueue,
    backdoor: Backdoor,
    outage: ContextManager[None],
) -> None:
    learner = make_account(loaded, "ada@example.org", programs=("repo-program",))
    client = create_app(store_settings, queue=queue).test_client()
    with outage:
        status, body = hand_in(client, bearer(learner), zipped(FILES))
    assert status == 503
    assert body["error"]["code"] == "service_unavailable"  # type: ignore[index]
    assert "file store" in body["error"]["message"]  # type: ignore[index]
    with loaded() as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 0
        assert session.scalar(select(func.count()).select_from(GradingRun)) == 0
    assert queue.sent == []
    assert backdoor.names() == set()
    # Once the store is back, the same hand-in goes through.
    status, _ = hand_in(client, bearer(learner), zipped(FILES))
    assert status == 202


# On S3 only: the local store's half-written file is tested in test_file_stores, since a file size
# limit here would stop the upload's own spooling and extraction before the store is reached.
@pytest.mark.parametrize("store_kind", ["s3"], indirect=True)
def test_an_upload_to_the_store_cut_halfway_is_a_503_and_records_nothing(
    store_settings: Settings,
    loaded: sessionmaker[Session],
    queue: RecordingQueue,
    backdoor: Backdoor,
    interruption: Callable[[int], ContextManager[None]],
) -> None:
    learner = make_account(loaded, "ada@example.org", programs=("repo-program",))
    client = create_app(store_settings, queue=queue).test_client()
    # Stored uncompressed, so the archive is as large as its 600 kB of content.
    archive = zipped({**FILES, "data.txt": "0123456789abcdef" * 40_000})
    with interruption(len(archive) // 2):
        status, _ = hand_in(client, bearer(learner), archive)
    assert status == 503
    with loaded() as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 0
    assert backdoor.names() == set()


@pytest.mark.parametrize("store_kind", ["s3"], indirect=True)
def test_web_and_worker_hosts_share_only_the_database_and_the_store(
    store_settings: Settings,
    loaded: sessionmaker[Session],
    queue: RecordingQueue,
    tmp_path: Path,
) -> None:
    web_host = store_settings
    worker_host = store_settings.with_overrides(
        data_dir=tmp_path / "worker-host", database_url=web_host.resolved_database_url
    )
    learner = make_account(loaded, "ada@example.org", programs=("repo-program",))
    client = create_app(web_host, queue=queue).test_client()
    status, body = hand_in(client, bearer(learner), zipped(FILES))
    assert status == 202, body
    run_queued(queue, loaded, worker_host)  # materialises the archive and keeps the evidence
    with loaded() as session:
        result = session.scalars(select(Result)).one()
        evidence = {entry["path"]: entry["sha256"] for entry in result.feedback["evidence"]["files"]}
    assert set(evidence) == set(FILES)
    web_store = file_store(web_host)
    assert {path: web_store.get(key).decode() for path, key in evidence.items()} == FILES
    assert not web_host.files_dir.exists() and not worker_host.files_dir.exists()
