"""Work-tree checks shared by git and archive intake: what a finished tree may contain, and how big it is.

This module owns the last word on a directory before it goes to the sandbox: it walks the tree without
following links, counts regular files and their bytes, and refuses links that leave the tree, special
files (devices, FIFOs, sockets) and any `.git` component. It also owns the lexical rule for symlink
targets (`symlink_escapes`), which git intake applies to the link blobs of a commit before checkout.

Violations are raised as `TreeViolation`, not as a `GraderError`: git intake reports them as
`RepositoryUnavailable` and archive intake as `UnsafeArchive`, each with its own field name.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class TreeStats:
    """What a checked tree holds: regular files only (directories are not counted)."""

    file_count: int
    total_bytes: int


class TreeViolation(Exception):
    """A tree breaks a rule; `rule` is one of the values listed on `scan_tree`, `path` is tree-relative."""

    def __init__(self, rule: str, path: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.path = path
        self.message = message


def is_git_component(name: str | bytes) -> bool:
    """True for `.git` in any case and with trailing dots or spaces (how Windows and macOS would see it).

    A learner-controlled `.git` directory or file makes any git that later touches the tree run commands
    (`core.fsmonitor`, hooks) or read objects from elsewhere (`gitdir:`).
    """
    if isinstance(name, bytes):
        return name.rstrip(b". ").lower() == b".git"
    return name.rstrip(". ").lower() == ".git"


def symlink_escapes(link: str, target: str) -> bool:
    """True if the symlink at tree-relative `link` with text `target` could point outside the tree.

    Lexical on purpose: the target is judged as text, before anything exists on disk. Absolute targets,
    empty targets and targets that climb above the tree root with `..` escape; so does anything with a
    NUL or backslash (no legitimate link needs them and they parse differently elsewhere).
    """
    if not target or "\0" in target or "\\" in target or target.startswith("/"):
        return True
    base = posixpath.dirname(PurePosixPath(link).as_posix())
    depth = len([part for part in base.split("/") if part])
    for part in target.split("/"):
        if part in ("", "."):
            continue
        depth = depth - 1 if part == ".." else depth + 1
        # Climbing above the root even for one step escapes, whatever the rest of the path says.
        if depth < 0:
            return True
    return False


def scan_tree(
    root: Path, *, max_files: int, max_bytes: int, allow_internal_symlinks: bool = False
) -> TreeStats:
    """Walk `root` without following links; count and size regular files; raise `TreeViolation`.

    Rules: "too_many_files" (more than `max_files`), "too_large" (more than `max_bytes` in regular
    files), "git_dir" (a `.git` entry anywhere), "symlink_escape" (a link whose target leaves the tree,
    lexically or once resolved), "link" (any symlink unless `allow_internal_symlinks`), "special_file"
    (anything but a regular file, a directory or an allowed link). The walk stops at the first violation,
    so a tree of millions of entries costs no more than `max_files` + 1 of them.
    """
    root_real = Path(os.path.realpath(root))
    count = 0
    total = 0
    pending: list[tuple[Path, str]] = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                relative = f"{prefix}{entry.name}"
                if is_git_component(entry.name):
                    raise TreeViolation("git_dir", relative, f"{relative}: a .git entry is not allowed")
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    pending.append((Path(entry.path), f"{relative}/"))
                    continue
                if stat.S_ISLNK(info.st_mode):
                    _check_link(Path(entry.path), relative, root_real, allow_internal_symlinks)
                    continue
                if not stat.S_ISREG(info.st_mode):
                    raise TreeViolation("special_file", relative, f"{relative} is not a regular file")
                count += 1
                total += info.st_size
                if count > max_files:
                    raise TreeViolation("too_many_files", relative, f"more than {max_files} files")
                if total > max_bytes:
                    raise TreeViolation("too_large", relative, f"more than {max_bytes} bytes")
    return TreeStats(file_count=count, total_bytes=total)


def _check_link(path: Path, relative: str, root_real: Path, allow_internal: bool) -> None:
    target = os.readlink(path)
    # Both tests matter: the lexical one catches `../x` even when `x` does not exist, the resolved one
    # catches chains through other links (`a -> b/..`, `b -> ..`) that look harmless one at a time.
    if symlink_escapes(relative, target) or not Path(os.path.realpath(path)).is_relative_to(root_real):
        raise TreeViolation("symlink_escape", relative, f"{relative} is a link that points outside the tree")
    if not allow_internal:
        raise TreeViolation("link", relative, f"{relative} is a link; links are not allowed")


__all__ = ["TreeStats", "TreeViolation", "is_git_component", "scan_tree", "symlink_escapes"]
