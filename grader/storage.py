"""Files kept by the service, content-addressed, behind one interface: archives, evidence, grader outputs.

A file is stored under the SHA-256 of its bytes and read back by it; a read checks the bytes against
their key, so a corrupted or tampered store is an error, never a wrong file shown. The embedded
default keeps them in a local folder under the data directory; `GRADER_STORE=s3` keeps them in one
private bucket of an S3-compatible store, so a web host and a worker host share nothing but the
database, the broker and the store. Either store's faults reach callers as `ServiceUnavailable` (503,
safe to retry) with a message naming the store, never as an `OSError` or a boto stack trace.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from urllib3.exceptions import HTTPError as TransportError

from grader.config import Settings
from grader.errors import InvalidInput, NotFound, ServiceUnavailable

log = logging.getLogger(__name__)

_KEY = re.compile(r"^[0-9a-f]{64}$")

# What S3-compatible stores answer when they do not implement a bucket's public access block; the
# bucket then stays private by its ACL (created `private`, and anonymous requests are refused).
_UNSUPPORTED = {"NotImplemented", "MethodNotAllowed", "InvalidRequest", "XNotImplemented"}
# The store refused the body it received: it did not match the checksum sent with it.
_CORRUPTED_UPLOAD = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}


class FileStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store `data`; its key (the hex SHA-256) is returned. Storing it twice stores it once."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`; `NotFound` when there are none."""
        ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mismatch(key: str) -> ServiceUnavailable:
    return ServiceUnavailable(f"stored file {key[:12]}… does not match its checksum")


class LocalFileStore:
    """A folder of files named by their SHA-256 (two levels, so no folder grows too large)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise NotFound("no such file")
        return self.root / key[:2] / key

    def put(self, data: bytes) -> str:
        key = sha256_hex(data)
        path = self._path(key)
        try:
            # A file left damaged (a crash before its bytes reached the disk) is written again, not kept.
            if path.is_file() and sha256_hex(path.read_bytes()) == key:
                return key
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:12]}-", suffix=".part")
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(data)
                # Renamed only once whole: a reader never sees half a file under its final name.
                os.replace(partial, path)
            except BaseException:
                Path(partial).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise ServiceUnavailable(
                f"the file store in {self.root} cannot store files: {error.strerror or error}"
            ) from None
        return key

    def get(self, key: str) -> bytes:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound("no such file") from None
        except OSError as error:
            raise ServiceUnavailable(
                f"the file store in {self.root} cannot be read: {error.strerror or error}"
            ) from None
        if sha256_hex(data) != key:
            raise _mismatch(key)
        return data


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3FileStore:
    """Objects named by their SHA-256 (under an optional prefix) in one private bucket.

    Each upload carries the body's SHA-256 (`x-amz-checksum-sha256`), which the store verifies before it
    keeps the object: bytes damaged in transit are refused, and a PUT that does not complete leaves no
    object, so an interrupted upload is never half stored. A read checks the bytes against the key.
    """

    def __init__(self, client: Any, bucket: str, *, prefix: str = "", where: str = "S3") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.where = where

    def object_name(self, key: str) -> str:
        if not _KEY.match(key):
            raise NotFound("no such file")
        return f"{self.prefix}{key}"

    def _fault(self, error: Exception, action: str) -> ServiceUnavailable:
        """Our own words for a store fault; the original goes to the log, one line, no stack."""
        log.warning("S3 store %s, bucket %s: %s failed: %s", self.where, self.bucket, action, error)
        place = f"the file store ({self.where}, bucket {self.bucket!r})"
        if isinstance(error, NoCredentialsError):
            return ServiceUnavailable(
                f"{place} has no credentials: set GRADER_S3_ACCESS_KEY_ID and GRADER_S3_SECRET_ACCESS_KEY"
                " or the usual AWS variables",
                details={"field": "GRADER_S3_ACCESS_KEY_ID"},
            )
        if isinstance(error, ClientError):
            code, status = _code(error), _status(error)
            if code == "NoSuchBucket":
                return ServiceUnavailable(
                    f"{place}: the bucket {self.bucket!r} does not exist",
                    details={"field": "GRADER_S3_BUCKET"},
                )
            if code in _CORRUPTED_UPLOAD:
                return ServiceUnavailable(
                    f"{place} received bytes that do not match their checksum; nothing was stored, try again"
                )
            if status in {401, 403}:
                return ServiceUnavailable(
                    f"{place} refused our credentials ({code or status})",
                    details={"field": "GRADER_S3_ACCESS_KEY_ID"},
                )
            return ServiceUnavailable(f"{place} could not {action}: it answered {status} {code}".rstrip())
        return ServiceUnavailable(f"{place} cannot be reached to {action} ({type(error).__name__})")

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data)
        key = digest.hexdigest()
        checksum = base64.b64encode(digest.digest()).decode("ascii")
        name = self.object_name(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=name, ChecksumMode="ENABLED")
            # Kept only when the store vouches for the same bytes; a damaged copy is written again.
            if head.get("ChecksumSHA256") == checksum:
                return key
        except ClientError as error:
            # 403: AWS answers so for a missing object when the identity may not list the bucket; the PUT
            # that follows says whether the credentials are wrong.
            if _status(error) not in {403, 404}:
                raise self._fault(error, "check a file") from None
        except BotoCoreError as error:
            raise self._fault(error, "check a file") from None
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=name,
                Body=data,
                ChecksumSHA256=checksum,
                ContentType="application/octet-stream",
            )
        except (ClientError, BotoCoreError) as error:
            raise self._fault(error, "store a file") from None
        return key

    def get(self, key: str) -> bytes:
        name = self.object_name(key)
        try:
            # ChecksumMode: the store sends its recorded SHA-256 and botocore checks the body against it.
            answer = self.client.get_object(Bucket=self.bucket, Key=name, ChecksumMode="ENABLED")
            data: bytes = answer["Body"].read()
        except ClientError as error:
            if _code(error) == "NoSuchKey" or (_status(error) == 404 and _code(error) != "NoSuchBucket"):
                raise NotFound("no such file") from None
            raise self._fault(error, "read a file") from None
        except (BotoCoreError, TransportError, OSError) as error:
            raise self._fault(error, "read a file") from None
        if sha256_hex(data) != key:
            raise _mismatch(key)
        return data

    def ensure_bucket(self, *, create: bool) -> None:
        """Check that the bucket exists; create it private when `create` allows, else say which is missing."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            if _status(error) != 404:
                raise self._fault(error, "open the bucket") from None
        except BotoCoreError as error:
            raise self._fault(error, "open the bucket") from None
        if not create:
            raise ServiceUnavailable(
                f"the S3 bucket {self.bucket!r} does not exist at {self.where}: create it (private) "
                "or set GRADER_S3_CREATE_BUCKET=true",
                details={"field": "GRADER_S3_BUCKET"},
            )
        try:
            self.client.create_bucket(Bucket=self.bucket, ACL="private", **self._location())
        except ClientError as error:
            if _code(error) != "BucketAlreadyOwnedByYou":
                raise self._fault(error, "create the bucket") from None
        except BotoCoreError as error:
            raise self._fault(error, "create the bucket") from None
        block_all = {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }
        try:
            self.client.put_public_access_block(Bucket=self.bucket, PublicAccessBlockConfiguration=block_all)
        except ClientError as error:
            if _code(error) not in _UNSUPPORTED:
                raise self._fault(error, "block public access to the bucket") from None
            log.info(
                "%s has no public access blocks; bucket %s is private by its ACL", self.where, self.bucket
            )
        except BotoCoreError as error:
            raise self._fault(error, "block public access to the bucket") from None

    def _location(self) -> dict[str, Any]:
        region = self.client.meta.region_name
        if not region or region == "us-east-1":
            return {}  # AWS refuses a location constraint naming its default region
        return {"CreateBucketConfiguration": {"LocationConstraint": region}}


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client with bounded timeouts and retries; credentials from settings or boto3's chain."""
    session = boto3.session.Session(
        aws_access_key_id=settings.s3_access_key_id or None,
        aws_secret_access_key=settings.s3_secret_access_key or None,
        region_name=settings.s3_region or None,
    )
    config = Config(
        connect_timeout=settings.s3_connect_timeout_seconds,
        read_timeout=settings.s3_read_timeout_seconds,
        retries={"total_max_attempts": max(1, settings.s3_max_attempts), "mode": "standard"},
        signature_version="s3v4",
        # A store of our own (SeaweedFS, MinIO) has no DNS per bucket: bucket names go in the path.
        s3={"addressing_style": "path" if settings.s3_endpoint else "auto"},
    )
    return session.client("s3", endpoint_url=settings.s3_endpoint or None, config=config)


def open_s3_store(settings: Settings) -> S3FileStore:
    if not settings.s3_bucket:
        raise InvalidInput(
            "GRADER_S3_BUCKET must be set when GRADER_STORE is s3", details={"field": "GRADER_S3_BUCKET"}
        )
    store = S3FileStore(
        s3_client(settings),
        settings.s3_bucket,
        prefix=settings.s3_prefix,
        where=settings.s3_endpoint or "AWS S3",
    )
    store.ensure_bucket(create=settings.s3_create_bucket)
    return store


# One S3 store per process and configuration: a boto3 client costs tens of milliseconds to build and
# keeps a connection pool worth reusing. Keyed by process id too, so a forked worker never shares
# its parent's sockets.
_s3_stores: dict[tuple[Any, ...], S3FileStore] = {}
_s3_stores_lock = threading.Lock()


def file_store(settings: Settings) -> FileStore:
    """The store `settings` name; for S3, the bucket is checked (or created) on first use per process."""
    if settings.store == "local":
        return LocalFileStore(settings.files_dir / "blobs")
    if settings.store != "s3":
        raise InvalidInput("GRADER_STORE must be local or s3", details={"field": "GRADER_STORE"})
    identity = (
        os.getpid(),
        settings.s3_endpoint,
        settings.s3_bucket,
        settings.s3_prefix,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key,
        settings.s3_create_bucket,
        settings.s3_connect_timeout_seconds,
        settings.s3_read_timeout_seconds,
        settings.s3_max_attempts,
    )
    with _s3_stores_lock:
        store = _s3_stores.get(identity)
        if store is None:
            store = _s3_stores[identity] = open_s3_store(settings)
    return store
