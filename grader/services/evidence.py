"""The evidence bundle of a graded submission: the learner's files as graded, kept for review.

When a repository is graded, every regular file of its work tree (no `.git`, no symlinks followed)
is put in the file store and listed in the result's feedback with its SHA-256, size and whether it
is text, up to the caps below; reviewers and the learner read the files back from the store, so the
viewer shows exactly what was graded, on any host that shares the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grader.services.repository import list_tree
from grader.storage import FileStore

MAX_EVIDENCE_FILES = 500
MAX_EVIDENCE_FILE_BYTES = 2 * 1024 * 1024
MAX_EVIDENCE_BYTES = 20 * 1024 * 1024


def is_text(data: bytes) -> bool:
    """UTF-8 without NUL bytes: what the viewer shows as text (anything else: size only)."""
    if b"\x00" in data[:8192]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def capture_tree(store: FileStore, tree: Path) -> dict[str, Any]:
    """Store the work tree's files; the manifest that goes in the result's feedback."""
    files: list[dict[str, Any]] = []
    omitted = 0
    total = 0
    for relative in list_tree(tree):
        if relative.split("/")[0] == ".git":
            continue
        path = tree / relative
        size = path.stat().st_size
        if (
            len(files) >= MAX_EVIDENCE_FILES
            or size > MAX_EVIDENCE_FILE_BYTES
            or total + size > MAX_EVIDENCE_BYTES
        ):
            files.append({"path": relative, "size": size, "sha256": None, "text": False})
            omitted += 1
            continue
        data = path.read_bytes()
        total += size
        files.append({"path": relative, "size": size, "sha256": store.put(data), "text": is_text(data)})
    return {"files": files, "omitted": omitted}
