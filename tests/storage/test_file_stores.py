"""What every file store promises, checked on the local folder and on S3 (a real SeaweedFS server)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager

import pytest

from grader.errors import NotFound, ServiceUnavailable
from grader.storage import FileStore
from tests.storage.conftest import Backdoor


def test_a_file_comes_back_byte_for_byte_under_its_sha256(store: FileStore) -> None:
    for data in (b"print('hello')\n", bytes(range(256)) * 64, b""):
        key = store.put(data)
        assert key == hashlib.sha256(data).hexdigest()
        assert store.get(key) == data


def test_storing_the_same_bytes_twice_keeps_one_copy(store: FileStore, backdoor: Backdoor) -> None:
    first = store.put(b"same bytes")
    second = store.put(b"same bytes")
    assert first == second
    assert backdoor.names() == {first}


def test_a_key_never_stored_or_not_a_key_at_all_is_not_found(store: FileStore) -> None:
    with pytest.raises(NotFound):
        store.get(hashlib.sha256(b"never stored").hexdigest())
    for malformed in ("../../etc/passwd", "ABC", hashlib.sha256(b"x").hexdigest().upper(), ""):
        with pytest.raises(NotFound):
            store.get(malformed)


def test_a_file_tampered_with_behind_the_store_is_an_error_never_the_wrong_bytes(
    store: FileStore, backdoor: Backdoor
) -> None:
    key = store.put(b"the learner's real work")
    backdoor.overwrite(key, b"something else entirely")
    with pytest.raises(ServiceUnavailable, match="does not match its checksum") as refused:
        store.get(key)
    assert refused.value.http_status == 503


def test_storing_the_bytes_again_repairs_a_damaged_copy(store: FileStore, backdoor: Backdoor) -> None:
    key = store.put(b"evidence")
    backdoor.overwrite(key, b"damaged")
    assert store.put(b"evidence") == key
    assert store.get(key) == b"evidence"


def test_a_store_that_is_down_answers_503_and_keeps_nothing(
    store: FileStore, backdoor: Backdoor, outage: ContextManager[None]
) -> None:
    kept = store.put(b"stored before the outage")
    with outage:
        with pytest.raises(ServiceUnavailable, match="file store") as refused:
            store.put(b"sent during the outage")
        assert refused.value.http_status == 503
        with pytest.raises(ServiceUnavailable):  # unreachable is not "not found"
            store.get(kept)
    assert backdoor.names() == {kept}
    assert store.get(kept) == b"stored before the outage"


def test_an_upload_interrupted_halfway_leaves_no_half_stored_file(
    store: FileStore, backdoor: Backdoor, interruption: Callable[[int], ContextManager[None]]
) -> None:
    data = os.urandom(2 * 1024 * 1024)
    with interruption(1024 * 1024), pytest.raises(ServiceUnavailable):
        store.put(data)
    assert backdoor.names() == set()
    with pytest.raises(NotFound):
        store.get(hashlib.sha256(data).hexdigest())
    assert store.get(store.put(data)) == data  # the store itself is fine afterwards
