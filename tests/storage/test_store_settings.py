"""Choosing the store from `GRADER_*` settings: the local folder by default, S3 only when fully named."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.config import Settings
from grader.errors import InvalidInput
from grader.storage import LocalFileStore, file_store


def environ(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"GRADER_DATA_DIR": str(tmp_path / "var"), "GRADER_SECRET_KEY": "k", **values}


def test_the_default_store_is_a_folder_under_the_data_directory(tmp_path: Path) -> None:
    settings = Settings.from_env(environ(tmp_path))
    store = file_store(settings)
    assert isinstance(store, LocalFileStore)
    assert store.root.is_relative_to((tmp_path / "var").resolve())


def test_s3_without_a_bucket_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="GRADER_S3_BUCKET") as refused:
        Settings.from_env(environ(tmp_path, GRADER_STORE="s3"))
    assert refused.value.details["field"] == "GRADER_S3_BUCKET"


def test_an_unknown_store_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="local or s3") as refused:
        Settings.from_env(environ(tmp_path, GRADER_STORE="nfs"))
    assert refused.value.details["field"] == "GRADER_STORE"


def test_store_settings_reach_a_child_process_unchanged(tmp_path: Path) -> None:
    settings = Settings.from_env(
        environ(
            tmp_path,
            GRADER_STORE="s3",
            GRADER_S3_ENDPOINT="http://127.0.0.1:8333",
            GRADER_S3_BUCKET="grader-files",
            GRADER_S3_PREFIX="prod/",
            GRADER_S3_CREATE_BUCKET="true",
            GRADER_S3_READ_TIMEOUT_SECONDS="12.5",
            GRADER_S3_MAX_ATTEMPTS="5",
        )
    )
    assert (settings.s3_create_bucket, settings.s3_read_timeout_seconds, settings.s3_max_attempts) == (
        True,
        12.5,
        5,
    )
    child = Settings.from_env(settings.to_env())
    store_fields = [name for name in vars(settings) if name == "store" or name.startswith("s3_")]
    assert len(store_fields) > 5
    assert {name: getattr(child, name) for name in store_fields} == {
        name: getattr(settings, name) for name in store_fields
    }


def test_a_malformed_store_setting_is_an_error_not_a_default(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as refused:
        Settings.from_env(environ(tmp_path, GRADER_S3_CREATE_BUCKET="maybe"))
    assert refused.value.details["field"] == "GRADER_S3_CREATE_BUCKET"
