"""The S3 store against a real SeaweedFS server: checksums checked by the server, no public access, the
bucket's creation, and every fault of the store answered as a 503 in our own words."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.exceptions import ClientError

from grader.config import Settings
from grader.errors import GraderError, ServiceUnavailable
from grader.storage import S3FileStore, file_store, open_s3_store, s3_client
from tests.storage.conftest import BUCKET, s3_settings_for
from tests.storage.faults import FaultyLink
from tests.storage.seaweed import SeaweedServer, free_ports


def anonymous(method: str, url: str, body: bytes | None = None) -> int:
    """The status an unsigned request gets: what anyone on the network would get."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def assert_in_our_words(error: GraderError) -> None:
    """A message for people: no boto exception chained to it, no class names of the SDK in it."""
    assert error.__cause__ is None and error.__suppress_context__
    assert "botocore" not in error.message and "Traceback" not in error.message


def test_the_server_refuses_an_upload_whose_sha256_does_not_match(seaweed: SeaweedServer) -> None:
    client = seaweed.client()
    body = b"the bytes that were sent"
    other = base64.b64encode(hashlib.sha256(b"the bytes that were meant").digest()).decode()
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=BUCKET, Key="checksum-probe", Body=body, ChecksumSHA256=other)
    assert refused.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(ClientError):
        client.head_object(Bucket=BUCKET, Key="checksum-probe")


def test_bytes_changed_in_transit_are_refused_and_nothing_is_stored(
    settings: Settings, seaweed: SeaweedServer
) -> None:
    marker = b"\x00learner-work\x00"
    data = b"a" * 100_000 + marker + b"b" * 100_000
    with FaultyLink(seaweed.ports["s3.port"], corrupt=(marker, b"\x00LEARNER-WORK\x00")) as link:
        store = file_store(s3_settings_for(settings, link.endpoint))
        with pytest.raises(ServiceUnavailable, match="do not match their checksum") as refused:
            store.put(data)
    assert_in_our_words(refused.value)
    assert isinstance(store, S3FileStore)
    listed = seaweed.client().list_objects_v2(Bucket=BUCKET, Prefix=store.prefix)
    assert listed.get("KeyCount", 0) == 0


def test_anonymous_requests_can_neither_read_nor_write_nor_list(
    settings: Settings, seaweed: SeaweedServer
) -> None:
    store = file_store(s3_settings_for(settings, seaweed.endpoint))
    assert isinstance(store, S3FileStore)
    key = store.put(b"a learner's portfolio")
    bucket_url = f"{seaweed.endpoint}/{BUCKET}"
    assert anonymous("GET", f"{bucket_url}/{store.object_name(key)}") == 403
    assert anonymous("PUT", f"{bucket_url}/{store.prefix}planted", b"planted") == 403
    assert anonymous("GET", f"{bucket_url}?list-type=2") == 403
    assert store.get(key) == b"a learner's portfolio"  # while the signed store reads it


def test_a_missing_bucket_is_named_and_left_alone_unless_creating_it_is_allowed(
    settings: Settings, seaweed: SeaweedServer
) -> None:
    bucket = f"absent-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ServiceUnavailable, match=bucket) as refused:
        open_s3_store(s3_settings_for(settings, seaweed.endpoint, s3_bucket=bucket))
    assert refused.value.details["field"] == "GRADER_S3_BUCKET"
    assert "GRADER_S3_CREATE_BUCKET" in refused.value.message
    names = {b["Name"] for b in seaweed.client().list_buckets()["Buckets"]}
    assert bucket not in names


def test_a_bucket_created_by_the_store_is_private(settings: Settings, seaweed: SeaweedServer) -> None:
    bucket = f"created-{uuid.uuid4().hex[:8]}"
    store = open_s3_store(
        s3_settings_for(settings, seaweed.endpoint, s3_bucket=bucket, s3_create_bucket=True)
    )
    key = store.put(b"kept private")
    grants = seaweed.client().get_bucket_acl(Bucket=bucket)["Grants"]
    assert grants, "the bucket has an owner grant"
    public = {
        "http://acs.amazonaws.com/groups/global/AllUsers",
        "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
    }
    assert not [grant for grant in grants if grant["Grantee"].get("URI") in public]
    assert anonymous("GET", f"{seaweed.endpoint}/{bucket}/{store.object_name(key)}") == 403
    # Opening it again (another process, a restart) finds it and changes nothing.
    assert open_s3_store(s3_settings_for(settings, seaweed.endpoint, s3_bucket=bucket, s3_create_bucket=True))


def test_wrong_credentials_are_a_503_naming_the_setting(settings: Settings, seaweed: SeaweedServer) -> None:
    wrong = s3_settings_for(settings, seaweed.endpoint, s3_secret_access_key="not-the-secret")
    with pytest.raises(ServiceUnavailable, match="refused our credentials") as refused:
        open_s3_store(wrong)
    assert refused.value.details["field"] == "GRADER_S3_ACCESS_KEY_ID"
    assert_in_our_words(refused.value)
    with pytest.raises(ServiceUnavailable, match="refused our credentials"):
        S3FileStore(s3_client(wrong), BUCKET).put(b"refused, not stored")


def test_a_store_nobody_listens_on_is_a_503_naming_it_and_answers_at_once(settings: Settings) -> None:
    (port,) = free_ports(1)
    endpoint = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="cannot be reached") as refused:
        file_store(s3_settings_for(settings, endpoint))
    assert time.monotonic() - started < 10
    assert endpoint in refused.value.message and BUCKET in refused.value.message
    assert_in_our_words(refused.value)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a store that hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    for connection in held:
        connection.close()
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()


def test_a_store_that_hangs_is_given_up_after_the_read_timeout(settings: Settings, silent_port: int) -> None:
    hanging = s3_settings_for(
        settings, f"http://127.0.0.1:{silent_port}", s3_read_timeout_seconds=0.5, s3_max_attempts=2
    )
    store = S3FileStore(s3_client(hanging), BUCKET)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="cannot be reached") as refused:
        store.put(b"never answered")
    assert time.monotonic() - started < 5  # two attempts of half a second, and the backoff between them
    assert_in_our_words(refused.value)


class _Failing(BaseHTTPRequestHandler):
    requests = 0

    def _fail(self) -> None:
        type(self).requests += 1
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        body = b"<Error><Code>ServiceUnavailable</Code><Message>down for maintenance</Message></Error>"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = _fail

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_store_answering_5xx_is_retried_then_a_503_with_its_answer(settings: Settings) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        failing = s3_settings_for(settings, f"http://127.0.0.1:{server.server_port}", s3_max_attempts=3)
        store = S3FileStore(s3_client(failing), BUCKET)
        _Failing.requests = 0
        with pytest.raises(ServiceUnavailable, match="answered 503") as refused:
            store.get(hashlib.sha256(b"x").hexdigest())
        assert _Failing.requests == 3  # the first try and two retries
        assert_in_our_words(refused.value)
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_goes_down_after_the_store_opened_is_a_503(
    settings: Settings, seaweed: SeaweedServer
) -> None:
    with FaultyLink(seaweed.ports["s3.port"]) as link:
        store = file_store(s3_settings_for(settings, link.endpoint))
        key = store.put(b"before")
        link.down()
        with pytest.raises(ServiceUnavailable, match=link.endpoint):
            store.get(key)
        link.up()
        assert store.get(key) == b"before"
