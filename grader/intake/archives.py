"""Archive intake: unpack an uploaded .zip, .tar or .tar.gz into a fresh directory, or refuse it.

This module owns every byte of an uploaded archive between the request and the work tree. It never calls
`extractall`: each entry is checked (name, type, duplicates, `.git`) and written by hand with
`O_EXCL | O_NOFOLLOW`, counting the bytes actually decompressed, because archive headers lie (zip bombs
declare small sizes; overlapping zip entries share one compressed stream). The format is taken from the
content's magic bytes, never from the file name or the client's Content-Type.
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import secrets
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn

from grader.errors import PayloadTooLarge, UnsafeArchive
from grader.intake.tree import TreeViolation, is_git_component, scan_tree

MIB = 1024 * 1024
_CHUNK = 64 * 1024
# Below this many decompressed bytes an entry's ratio is not judged: tiny files of blank lines or zeros
# compress 1000:1 and are harmless; bombs only matter when they get big.
_RATIO_GRACE_BYTES = 1 * MIB
_MAX_NAME_BYTES = 1024
_MAX_COMPONENT_BYTES = 255
_MAX_DEPTH = 64


@dataclass(frozen=True)
class ArchivePolicy:
    """Limits for one upload. The defaults are the production policy."""

    max_upload_bytes: int = 20 * MIB
    max_entries: int = 5000
    max_total_bytes: int = 100 * MIB
    max_file_bytes: int = 20 * MIB
    max_ratio: int = 200  # decompressed / compressed bytes, per entry (and for a whole .tar.gz stream)


@dataclass(frozen=True)
class ExtractedTree:
    """The extracted files; `path` holds only regular files and directories."""

    path: Path
    file_count: int
    total_bytes: int


def _reject(rule: str, message: str, **extra: object) -> NoReturn:
    raise UnsafeArchive(message, details={"field": "archive", "rule": rule, **extra})


def extract_archive(data: bytes, filename: str, dest: Path, policy: ArchivePolicy) -> ExtractedTree:
    """Unpack `data` into the new directory `dest`; raise `UnsafeArchive`/`PayloadTooLarge` and leave nothing.

    `filename` is only used in messages. A single top-level folder shared by every entry (as in GitHub's
    "Download ZIP") is stripped.
    """
    if len(data) > policy.max_upload_bytes:
        raise PayloadTooLarge(
            f"the upload is larger than {policy.max_upload_bytes // MIB} MiB",
            details={"field": "archive", "rule": "upload_size", "limit": policy.max_upload_bytes},
        )
    kind = _detect(data)
    if kind is None:
        _reject("not_an_archive", f"{_display(filename)} is not a .zip, .tar or .tar.gz archive")
    dest.mkdir(parents=True)
    os.chmod(dest, 0o755)
    try:
        writer = _Writer(dest, policy)
        try:
            if kind == "zip":
                _extract_zip(data, writer, policy)
            else:
                _extract_tar(data, kind == "tar.gz", writer, policy)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            _reject("corrupt", f"{_display(filename)} is damaged: {type(exc).__name__}")
        except NotImplementedError:
            _reject("unsupported", f"{_display(filename)} uses a compression method that is not supported")
        root = _strip_single_top_folder(dest)
        _verify(root, writer, policy)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return ExtractedTree(path=root, file_count=writer.file_count, total_bytes=writer.total_bytes)


def _verify(root: Path, writer: _Writer, policy: ArchivePolicy) -> None:
    """Walk the result with the rules every work tree obeys (`grader.intake.tree`), as a second opinion.

    The writer should already have refused anything this finds; the walk costs little next to the
    decompression and catches a bug in the per-entry checks before learner files reach a sandbox.
    """
    try:
        stats = scan_tree(root, max_files=policy.max_entries, max_bytes=policy.max_total_bytes)
    except TreeViolation as violation:
        _reject(violation.rule, violation.message)
    if (stats.file_count, stats.total_bytes) != (writer.file_count, writer.total_bytes):
        _reject("corrupt", "the extracted files do not match the archive")


def _display(filename: str) -> str:
    name = "".join(ch for ch in filename if ch.isprintable())[:100]
    return repr(name) if name else "the upload"


def _detect(data: bytes) -> str | None:
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if data[:2] == b"\x1f\x8b":
        return "tar.gz"  # only tar inside is accepted; a bare .gz fails as corrupt
    if len(data) >= 512 and data[257:262] == b"ustar":
        return "tar"
    return None


# ---------------------------------------------------------------------------------------------------------
# Names


def _clean_path(name: str) -> tuple[str, ...]:
    """The archive member name as safe path components; raises for anything ambiguous or escaping."""
    if "\0" in name or "\\" in name:
        _reject("bad_name", "file names must not contain NUL characters or backslashes")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        _reject("bad_name", "file names must not contain control characters")
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        _reject("bad_name", "a file name in the archive is too long")
    if name.startswith("/") or (len(name) >= 2 and name[1] == ":" and name[0].isalpha()):
        _reject("traversal", "the archive contains an absolute path")
    parts: list[str] = []
    for component in name.split("/"):
        if component in ("", "."):
            continue
        if component == "..":
            _reject("traversal", "the archive contains a path that leaves its folder ('..')")
        # `.git` in any case or with trailing dots/spaces (how Windows/macOS would see it) is refused: a
        # learner-supplied `.git/config` can run commands (core.fsmonitor) when any git touches the tree.
        if is_git_component(component):
            _reject("git_dir", "archives must not contain a .git folder; upload the files only")
        if len(component.encode("utf-8", "surrogateescape")) > _MAX_COMPONENT_BYTES:
            _reject("bad_name", "a file name in the archive is too long")
        parts.append(component)
    if len(parts) > _MAX_DEPTH:
        _reject("too_deep", "the archive's folders are nested too deeply")
    return tuple(parts)


# ---------------------------------------------------------------------------------------------------------
# Writing


class _Writer:
    """Creates directories and files under `root`, enforcing the per-archive limits as bytes arrive."""

    def __init__(self, root: Path, policy: ArchivePolicy) -> None:
        self.root = root
        self.policy = policy
        self.entries = 0
        self.file_count = 0
        self.total_bytes = 0
        self._files: set[tuple[str, ...]] = set()
        self._dirs: set[tuple[str, ...]] = {()}

    def count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.policy.max_entries:
            _reject(
                "too_many_entries",
                f"the archive has more than {self.policy.max_entries} entries",
                limit=self.policy.max_entries,
            )

    def _claim_parents(self, parts: tuple[str, ...]) -> None:
        for depth in range(1, len(parts)):
            prefix = parts[:depth]
            if prefix in self._files:
                _reject("duplicate", f"{'/'.join(prefix)} is both a file and a folder in the archive")
            if prefix not in self._dirs:
                path = self.root.joinpath(*prefix)
                os.mkdir(path, 0o755)
                os.chmod(path, 0o755)
                self._dirs.add(prefix)

    def directory(self, parts: tuple[str, ...]) -> None:
        if not parts:
            return
        if parts in self._files:
            _reject("duplicate", f"{'/'.join(parts)} appears twice in the archive")
        self._claim_parents(parts)
        if parts not in self._dirs:
            path = self.root.joinpath(*parts)
            os.mkdir(path, 0o755)
            os.chmod(path, 0o755)
            self._dirs.add(parts)

    def file(
        self, parts: tuple[str, ...], chunks: Iterator[bytes], *, executable: bool, compressed: int
    ) -> None:
        if not parts:
            _reject("bad_name", "the archive contains a file without a name")
        if parts in self._files or parts in self._dirs:
            _reject("duplicate", f"{'/'.join(parts)} appears twice in the archive")
        self._claim_parents(parts)
        self._files.add(parts)
        path = self.root.joinpath(*parts)
        mode = 0o755 if executable else 0o644
        # O_EXCL|O_NOFOLLOW: never write through something that already exists, least of all a link.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        written = 0
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)  # the umask must not decide the mode
            for chunk in chunks:
                written += len(chunk)
                self.total_bytes += len(chunk)
                if written > self.policy.max_file_bytes:
                    _reject(
                        "too_large",
                        f"{'/'.join(parts)} is larger than {self.policy.max_file_bytes // MIB} MiB",
                        limit=self.policy.max_file_bytes,
                    )
                if self.total_bytes > self.policy.max_total_bytes:
                    _reject(
                        "too_large",
                        f"the archive unpacks to more than {self.policy.max_total_bytes // MIB} MiB",
                        limit=self.policy.max_total_bytes,
                    )
                if written > _RATIO_GRACE_BYTES and written > self.policy.max_ratio * max(compressed, 1):
                    _reject("ratio", "the archive is compressed suspiciously well (a zip bomb?)")
                out.write(chunk)
        self.file_count += 1


def _read_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


# ---------------------------------------------------------------------------------------------------------
# Zip


def _zip_mode(info: zipfile.ZipInfo) -> int:
    # Unix permissions live in the high 16 bits of external_attr when the creator was a Unix system.
    return (info.external_attr >> 16) & 0xFFFF if info.create_system == 3 else 0


def _extract_zip(data: bytes, writer: _Writer, policy: ArchivePolicy) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        if len(infos) > policy.max_entries:
            message = f"the archive has more than {policy.max_entries} entries"
            _reject("too_many_entries", message, limit=policy.max_entries)
        _check_zip_layout(infos)
        for info in infos:
            writer.count_entry()
            parts = _clean_path(info.filename)
            mode = _zip_mode(info)
            kind = stat.S_IFMT(mode)
            if kind == stat.S_IFLNK:
                _reject("link", f"{info.filename} is a symbolic link; links are not allowed")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                _reject("special_file", f"{info.filename} is not a regular file")
            if info.flag_bits & 0x1:
                _reject("encrypted", "encrypted archives are not supported")
            if info.is_dir() or kind == stat.S_IFDIR:
                writer.directory(parts)
                continue
            with archive.open(info) as stream:
                writer.file(
                    parts, _read_chunks(stream), executable=bool(mode & 0o111), compressed=info.compress_size
                )


def _check_zip_layout(infos: list[zipfile.ZipInfo]) -> None:
    """Refuse entries whose data overlap: the trick behind non-recursive zip bombs (Fifield 2019)."""
    spans = sorted((info.header_offset, info.header_offset + 30 + info.compress_size) for info in infos)
    for (_start, end), (next_start, _next_end) in itertools.pairwise(spans):
        if next_start < end:
            _reject("overlapping_entries", "the archive's entries overlap (a zip bomb?)")


# ---------------------------------------------------------------------------------------------------------
# Tar


class _LimitedReader(io.RawIOBase):
    """A read-only stream that refuses to hand out more than `limit` bytes in total (decompressed)."""

    def __init__(self, inner: IO[bytes], limit: int, compressed: int, policy: ArchivePolicy) -> None:
        self._inner = inner
        self._limit = limit
        self._compressed = compressed
        self._policy = policy
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        wanted = min(len(view), _CHUNK)
        if self.consumed + wanted > self._limit:
            wanted = self._limit - self.consumed
            if wanted <= 0:
                _reject("too_large", "the archive unpacks to too much data", limit=self._limit)
        chunk = self._inner.read(wanted)
        self.consumed += len(chunk)
        if self.consumed > _RATIO_GRACE_BYTES and self.consumed > self._policy.max_ratio * self._compressed:
            _reject("ratio", "the archive is compressed suspiciously well (a gzip bomb?)")
        view[: len(chunk)] = chunk
        return len(chunk)


def _extract_tar(data: bytes, gzipped: bool, writer: _Writer, policy: ArchivePolicy) -> None:
    raw: IO[bytes] = io.BytesIO(data)
    # Headers and padding count too; the slack covers a 512-byte header (plus pax/longname) per entry.
    limit = policy.max_total_bytes + policy.max_entries * 2048 + MIB
    inner: IO[bytes] = raw
    if gzipped:
        # GzipFile is a BufferedIOBase, which typeshed does not count as IO[bytes].
        inner = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    with inner:
        compressed = len(data) if gzipped else limit  # a plain tar has no ratio to judge
        reader = io.BufferedReader(_LimitedReader(inner, limit, compressed, policy), buffer_size=_CHUNK)
        # Stream mode ("r|"): members are visited once, in order, never seeked or listed up front.
        with tarfile.open(fileobj=reader, mode="r|") as archive:
            for member in archive:
                writer.count_entry()
                parts = _clean_path(member.name)
                if member.issym() or member.islnk():
                    _reject("link", f"{member.name} is a link; links are not allowed")
                if member.isdir():
                    writer.directory(parts)
                    continue
                if not member.isreg() or member.issparse():
                    _reject("special_file", f"{member.name} is not a regular file")
                if member.size > policy.max_file_bytes:
                    _reject(
                        "too_large",
                        f"{member.name} is larger than {policy.max_file_bytes // MIB} MiB",
                        limit=policy.max_file_bytes,
                    )
                stream = archive.extractfile(member)
                if stream is None:
                    _reject("special_file", f"{member.name} is not a regular file")
                with stream:
                    writer.file(
                        parts,
                        _read_chunks(stream),
                        executable=bool(member.mode & 0o111),
                        compressed=max(member.size, 1) if not gzipped else len(data),
                    )


# ---------------------------------------------------------------------------------------------------------
# Layout


def _strip_single_top_folder(dest: Path) -> Path:
    """If `dest` holds exactly one folder and nothing else, make that folder's contents `dest`."""
    children = list(dest.iterdir())
    if len(children) != 1:
        return dest
    top = children[0]
    if top.is_symlink() or not top.is_dir():
        return dest
    # Rename the folder next to `dest`, then swap it in: no copy, no name clash with its own children.
    staging = dest.with_name(f"{dest.name}.strip-{secrets.token_hex(6)}")
    top.rename(staging)
    dest.rmdir()
    staging.rename(dest)
    return dest
