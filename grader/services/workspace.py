"""Where a learner's work tree comes from: a pinned git commit or a stored archive.

Intake checks the source once (URL rules, commit resolution, archive safety) and records it; the
worker materialises the same tree again in a private temporary folder just before grading, so no
learner tree is ever shared between runs or kept on the host longer than a grading run. An archive's
bytes live in the file store under their SHA-256 (`grader.storage`), so the web host that took it and
the worker host that grades it need share nothing but the database, the broker and the store.

Pinning a git ref runs `git ls-remote` inside the intake request, so it is bounded per process
(`GitIntakeGate`): a few resolutions at once, a few more waiting a bounded time, the rest refused at
once with 503 and Retry-After. A repository rush can so hold only a known number of a web process's
threads, and a quiz request never waits behind it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grader.config import Settings
from grader.errors import InvalidInput, NotFound, PayloadTooLarge, ServiceUnavailable
from grader.intake.archives import ArchivePolicy, extract_archive
from grader.intake.git import GitPolicy, fetch_worktree, resolve_commit, validate_git_url
from grader.storage import file_store, sha256_hex


def git_policy(settings: Settings) -> GitPolicy:
    return GitPolicy(
        allowed_hosts=settings.git_allowed_hosts,
        allow_insecure_loopback=settings.git_allow_insecure_loopback,
        clone_timeout_seconds=settings.git_clone_timeout_seconds,
        max_repo_bytes=settings.git_max_repo_bytes,
        resolve_nice=settings.intake_git_nice,
    )


def archive_policy(settings: Settings) -> ArchivePolicy:
    return ArchivePolicy(max_upload_bytes=settings.max_archive_bytes)


def legacy_archive_path(settings: Settings, digest: str) -> Path:
    """Where archives were kept before the file store held them (read once, then moved)."""
    return settings.files_dir / "archives" / f"{digest}.bin"


class GitIntakeGate:
    """At most `slots` git resolutions at once in this process, and `waiting` more queued for one.

    A request past both bounds, or one that waited `wait_seconds` without a slot, gets
    `ServiceUnavailable` (503) with a Retry-After from the recent resolution time.
    """

    # Before any resolution was timed: about what `git ls-remote` takes against a forge.
    INITIAL_SECONDS = 0.4

    def __init__(self, slots: int, waiting: int, wait_seconds: float) -> None:
        self.slots = max(1, slots)
        self.waiting = max(0, waiting)
        self.wait_seconds = max(0.0, wait_seconds)
        self._resolving = threading.BoundedSemaphore(self.slots)
        self._admitted = threading.BoundedSemaphore(self.slots + self.waiting)
        self._lock = threading.Lock()
        self._recent_seconds = self.INITIAL_SECONDS

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one git slot for the body; `ServiceUnavailable` when none comes in time."""
        if not self._admitted.acquire(blocking=False):
            raise self._busy()
        try:
            if not self._resolving.acquire(timeout=self.wait_seconds):
                raise self._busy()
            started = time.monotonic()
            try:
                yield
            finally:
                self._resolving.release()
                self._observe(time.monotonic() - started)
        finally:
            self._admitted.release()

    def _observe(self, seconds: float) -> None:
        with self._lock:
            # A moving average: one slow forge answer moves it, but does not set it.
            self._recent_seconds += (seconds - self._recent_seconds) / 5

    def retry_after(self) -> int:
        """Seconds until the requests now admitted have likely been through the slots."""
        with self._lock:
            recent = self._recent_seconds
        return max(1, math.ceil(recent * (self.slots + self.waiting) / self.slots))

    def _busy(self) -> ServiceUnavailable:
        wait = self.retry_after()
        return ServiceUnavailable(
            f"the server is busy looking up other repositories' commits with git "
            f"({self.slots} at once, {self.waiting} more waiting); please retry in {wait} s",
            details={"field": "git_url", "busy": "git_intake", "retry_after": wait},
        )


_gates: dict[tuple[int, int, float], GitIntakeGate] = {}
_gates_lock = threading.Lock()


def git_intake_gate(settings: Settings) -> GitIntakeGate:
    """This process's gate for the settings' bounds (made on first use, so each forked web worker
    has its own)."""
    key = (settings.intake_git_slots, settings.intake_git_waiting, settings.intake_git_wait_seconds)
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = GitIntakeGate(*key)
        return gate


def accept_git(settings: Settings, url: Any, ref: Any) -> dict[str, Any]:
    """Validate a git URL and pin the ref to a commit now; the payload names exactly what gets graded.

    The lookup waits for one of this process's git slots (`git_intake_gate`); a refused URL never
    takes one.
    """
    if not isinstance(url, str) or not url:
        raise InvalidInput("git_url must be a non-empty string", details={"field": "git_url"})
    if ref is not None and (not isinstance(ref, str) or not ref or len(ref) > 200):
        raise InvalidInput("ref must be a branch, tag or commit name", details={"field": "ref"})
    policy = git_policy(settings)
    validated = validate_git_url(url, policy)
    with git_intake_gate(settings).slot():
        commit = resolve_commit(validated, ref, policy)
    return {"source": "git", "git_url": validated.url, "ref": ref, "commit": commit}


def accept_archive(settings: Settings, data: bytes, filename: str, scratch: Path) -> dict[str, Any]:
    """Check an uploaded archive by extracting it once, then keep its bytes by content hash."""
    policy = archive_policy(settings)
    if len(data) > policy.max_upload_bytes:
        raise PayloadTooLarge(
            f"the archive is larger than {policy.max_upload_bytes} bytes",
            details={"field": "archive", "limit_bytes": policy.max_upload_bytes},
        )
    tree = extract_archive(data, filename, scratch, policy)
    # Stored before anything is recorded: a store that is down fails the hand-in (503) with no
    # submission left behind, and a worker never meets a submission whose archive is not there.
    digest = file_store(settings).put(data)
    return {
        "source": "archive",
        "archive_sha256": digest,
        "archive_name": Path(filename).name[:200],
        "size": len(data),
        "files": tree.file_count,
    }


def materialise(settings: Settings, payload: Mapping[str, Any], dest: Path) -> Path:
    """Recreate the learner's work tree in `dest` (which must be empty) and return its root."""
    if payload.get("source") == "git":
        policy = git_policy(settings)
        validated = validate_git_url(str(payload["git_url"]), policy)
        return fetch_worktree(validated, str(payload["commit"]), dest, policy).path
    if payload.get("source") == "archive":
        data = stored_archive(settings, str(payload["archive_sha256"]))
        return extract_archive(
            data, str(payload.get("archive_name", "upload")), dest, archive_policy(settings)
        ).path
    raise ValueError(f"unknown work tree source {payload.get('source')!r}")


def stored_archive(settings: Settings, digest: str) -> bytes:
    """An accepted archive's bytes from the store; a missing archive is our fault, never the learner's."""
    store = file_store(settings)
    try:
        return store.get(digest)
    except NotFound:
        pass
    # Submissions accepted before archives moved into the store still grade (a regrade, a retry).
    legacy = legacy_archive_path(settings, digest)
    try:
        data = legacy.read_bytes()
    except FileNotFoundError:
        data = b""
    if not data or sha256_hex(data) != digest:
        raise ServiceUnavailable(f"the archive {digest[:12]}… is missing from the file store")
    store.put(data)
    return data
