"""Where a learner's work tree comes from: a pinned git commit or a stored archive.

Intake checks the source once (URL rules, commit resolution, archive safety) and records it; the
worker materialises the same tree again in a private temporary folder just before grading, so no
learner tree is ever shared between runs or kept on the host longer than a grading run. An archive's
bytes live in the file store under their SHA-256 (`grader.storage`), so the web host that took it and
the worker host that grades it need share nothing but the database, the broker and the store.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    )


def archive_policy(settings: Settings) -> ArchivePolicy:
    return ArchivePolicy(max_upload_bytes=settings.max_archive_bytes)


def legacy_archive_path(settings: Settings, digest: str) -> Path:
    """Where archives were kept before the file store held them (read once, then moved)."""
    return settings.files_dir / "archives" / f"{digest}.bin"


def accept_git(settings: Settings, url: Any, ref: Any) -> dict[str, Any]:
    """Validate a git URL and pin the ref to a commit now; the payload names exactly what gets graded."""
    if not isinstance(url, str) or not url:
        raise InvalidInput("git_url must be a non-empty string", details={"field": "git_url"})
    if ref is not None and (not isinstance(ref, str) or not ref or len(ref) > 200):
        raise InvalidInput("ref must be a branch, tag or commit name", details={"field": "ref"})
    policy = git_policy(settings)
    validated = validate_git_url(url, policy)
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
