"""`extract_archive`: one test per unsafe upload, plus the archives learners really send."""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import tarfile
import time
import tracemalloc
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from grader.errors import PayloadTooLarge, UnsafeArchive
from grader.intake.archives import ArchivePolicy, extract_archive

POLICY = ArchivePolicy()
MIB = 1024 * 1024


def make_zip(entries: Iterable[tuple[str, bytes | str]], *, modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            mode = (modes or {}).get(name, 0o40755 if name.endswith("/") else 0o100644)
            info.external_attr = mode << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def make_tar(members: Iterable[tuple[tarfile.TarInfo, bytes | None]], *, gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in members:
            if content is not None:
                info.size = len(content)
            archive.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def tar_file(name: str, content: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, content


def tar_entry(name: str, kind: bytes, **attrs: object) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, None


def rejected(data: bytes, dest: Path, policy: ArchivePolicy = POLICY, filename: str = "upload.zip") -> str:
    """Extract expecting an `UnsafeArchive`; check nothing is left behind; return the rule."""
    with pytest.raises(UnsafeArchive) as caught:
        extract_archive(data, filename, dest, policy)
    assert caught.value.details["field"] == "archive"
    assert not dest.exists(), "a refused archive must leave nothing behind"
    rule = caught.value.details["rule"]
    assert isinstance(rule, str)
    return rule


def listing(root: Path) -> dict[str, bytes | None]:
    return {
        str(path.relative_to(root)): (path.read_bytes() if path.is_file() else None)
        for path in sorted(root.rglob("*"))
    }


# -- happy paths ---------------------------------------------------------------------------------------------


def test_a_github_style_zip_loses_its_top_folder(tmp_path: Path) -> None:
    data = make_zip(
        [
            ("project-main/", ""),
            ("project-main/README.md", "# hi\n"),
            ("project-main/src/", ""),
            ("project-main/src/app.py", "print(1)\n"),
            ("project-main/run.sh", "#!/bin/sh\n"),
        ],
        modes={"project-main/run.sh": 0o100755},
    )
    tree = extract_archive(data, "project-main.zip", tmp_path / "out", POLICY)

    assert tree.path == tmp_path / "out"
    assert listing(tree.path) == {
        "README.md": b"# hi\n",
        "run.sh": b"#!/bin/sh\n",
        "src": None,
        "src/app.py": b"print(1)\n",
    }
    assert (tree.file_count, tree.total_bytes) == (3, 5 + 9 + 10)
    assert stat.S_IMODE(os.stat(tree.path / "run.sh").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tree.path / "README.md").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tree.path / "src").st_mode) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging directory left over


def test_a_zip_with_several_top_level_entries_is_kept_as_is(tmp_path: Path) -> None:
    tree = extract_archive(
        make_zip([("src/app.py", "x"), ("README.md", "y")]), "a.zip", tmp_path / "out", POLICY
    )
    assert listing(tree.path) == {"README.md": b"y", "src": None, "src/app.py": b"x"}


def test_a_tar_gz_works(tmp_path: Path) -> None:
    data = make_tar(
        [
            tar_entry("proj", tarfile.DIRTYPE, mode=0o700),
            tar_file("proj/main.py", b"print(2)\n", mode=0o600),
            tar_file("proj/tool.sh", b"#!/bin/sh\n", mode=0o700),
        ],
        gz=True,
    )
    tree = extract_archive(data, "whatever.bin", tmp_path / "out", POLICY)  # the name does not matter

    assert listing(tree.path) == {"main.py": b"print(2)\n", "tool.sh": b"#!/bin/sh\n"}
    assert stat.S_IMODE(os.stat(tree.path / "main.py").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tree.path / "tool.sh").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tree.path).st_mode) == 0o755


def test_a_plain_tar_works(tmp_path: Path) -> None:
    tree = extract_archive(
        make_tar([tar_file("a.txt", b"a"), tar_file("b/c.txt", b"c")]), "x.tar", tmp_path / "o", POLICY
    )
    assert listing(tree.path) == {"a.txt": b"a", "b": None, "b/c.txt": b"c"}


def test_small_highly_compressible_files_are_fine(tmp_path: Path) -> None:
    # 512 KiB of blank lines compress far beyond the ratio cap; below the grace size they are no bomb.
    tree = extract_archive(make_zip([("blank.txt", "\n" * (512 * 1024))]), "a.zip", tmp_path / "out", POLICY)
    assert tree.total_bytes == 512 * 1024


# -- refused uploads ---------------------------------------------------------------------------------------


def test_an_upload_over_the_size_cap(tmp_path: Path) -> None:
    data = make_zip([("a.bin", os.urandom(2048))])
    with pytest.raises(PayloadTooLarge) as caught:
        extract_archive(data, "a.zip", tmp_path / "out", ArchivePolicy(max_upload_bytes=len(data) - 1))
    assert caught.value.details == {"field": "archive", "rule": "upload_size", "limit": len(data) - 1}
    assert not (tmp_path / "out").exists()
    assert (
        extract_archive(data, "a.zip", tmp_path / "ok", ArchivePolicy(max_upload_bytes=len(data))).file_count
        == 1
    )


def test_a_png_renamed_to_zip(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + os.urandom(64)
    assert rejected(png, tmp_path / "out", filename="homework.zip") == "not_an_archive"


def test_a_png_with_a_zip_appended_is_not_taken_for_a_zip(tmp_path: Path) -> None:
    polyglot = b"\x89PNG\r\n\x1a\n" + os.urandom(64) + make_zip([("a.py", "x")])
    assert rejected(polyglot, tmp_path / "out") == "not_an_archive"


def test_a_gzip_that_is_not_a_tar(tmp_path: Path) -> None:
    assert (
        rejected(gzip.compress(b"just some text\n" * 100), tmp_path / "out", filename="a.tar.gz") == "corrupt"
    )


def test_a_truncated_zip(tmp_path: Path) -> None:
    data = make_zip([("a.py", os.urandom(4096))])
    assert rejected(data[: len(data) // 2], tmp_path / "out") == "corrupt"


@pytest.mark.parametrize(
    "name",
    [".git/config", "project/.git/config", ".GIT/config", "sub/dir/.git/hooks/pre-commit", ".git. /config"],
)
def test_a_git_directory_inside_a_zip(name: str, tmp_path: Path) -> None:
    config = "[core]\n\tfsmonitor = touch /tmp/pwned\n"
    assert rejected(make_zip([("README.md", "hi"), (name, config)]), tmp_path / "out") == "git_dir"


def test_a_git_directory_inside_a_tar(tmp_path: Path) -> None:
    data = make_tar([tar_file("p/.git/config", b"[core]\n\tfsmonitor = touch /tmp/pwned\n")], gz=True)
    assert rejected(data, tmp_path / "out") == "git_dir"


def test_a_git_file_pointing_elsewhere(tmp_path: Path) -> None:
    assert rejected(make_zip([("p/.git", "gitdir: /srv/other/.git\n")]), tmp_path / "out") == "git_dir"


@pytest.mark.parametrize(
    "name", ["../x", "a/../../x", "../../../../tmp/evil.py", "/abs", "/etc/cron.d/x", "C:/x"]
)
def test_zip_slip(name: str, tmp_path: Path) -> None:
    dest = tmp_path / "deep" / "out"
    assert rejected(make_zip([("ok.txt", "fine"), (name, "escaped")]), dest) == "traversal"
    assert (
        not list(tmp_path.rglob("x"))
        and not list(tmp_path.rglob("evil.py"))
        and not list(tmp_path.rglob("abs"))
    )


@pytest.mark.parametrize("name", ["../escaped.txt", "/abs.txt"])
def test_tar_slip(name: str, tmp_path: Path) -> None:
    assert rejected(make_tar([tar_file(name, b"escaped")]), tmp_path / "out", filename="a.tar") == "traversal"
    assert not (tmp_path / "escaped.txt").exists()


def test_a_zip_bomb_is_stopped_early(tmp_path: Path) -> None:
    data = make_zip([("bomb.bin", bytes(200 * MIB))])  # about 200 KiB compressed, ~1000:1
    policy = ArchivePolicy(max_file_bytes=1024 * MIB, max_total_bytes=1024 * MIB)
    started = time.monotonic()
    tracemalloc.start()
    try:
        assert rejected(data, tmp_path / "out", policy) == "ratio"
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 5
    # Streamed in 64 KiB chunks: the 200 MiB never sit in memory, not even a few MiB of them.
    assert peak < 8 * MIB, f"peak Python allocations {peak / MIB:.1f} MiB"


def test_a_zip_bomb_over_the_file_cap(tmp_path: Path) -> None:
    assert rejected(make_zip([("bomb.bin", bytes(30 * MIB))]), tmp_path / "out") in {"too_large", "ratio"}


def test_a_zip_that_lies_about_its_sizes(tmp_path: Path) -> None:
    """The central directory claims 10 bytes; the stream holds 3 MiB. Actual bytes are what count."""
    data = bytearray(make_zip([("liar.bin", bytes(3 * MIB))]))
    central = data.rfind(b"PK\x01\x02")
    local = data.find(b"PK\x03\x04")
    struct.pack_into("<I", data, central + 24, 10)  # uncompressed size in the central directory
    struct.pack_into("<I", data, local + 22, 10)  # and in the local header
    policy = ArchivePolicy(max_total_bytes=MIB, max_ratio=10_000)
    # Either the real byte count trips the cap or zipfile notices the lie: never 3 MiB on disk.
    assert rejected(bytes(data), tmp_path / "out", policy) in {"too_large", "corrupt"}


def test_overlapping_zip_entries(tmp_path: Path) -> None:
    """Fifield's non-recursive bomb: many central-directory entries reuse one compressed stream."""
    data = bytearray(make_zip([("a.bin", bytes(MIB)), ("b.bin", bytes(MIB))]))
    second = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, second + 42, 0)  # point b.bin's local header offset at a.bin's
    assert rejected(bytes(data), tmp_path / "out") == "overlapping_entries"


def test_a_gzip_bomb_tar(tmp_path: Path) -> None:
    data = make_tar([tar_file("zeros.bin", bytes(100 * MIB))], gz=True)
    policy = ArchivePolicy(max_file_bytes=1024 * MIB, max_total_bytes=1024 * MIB)
    started = time.monotonic()
    assert rejected(data, tmp_path / "out", policy) == "ratio"
    assert time.monotonic() - started < 5


def test_total_size_cap(tmp_path: Path) -> None:
    data = make_zip([(f"f{i}.bin", os.urandom(400 * 1024)) for i in range(3)])
    policy = ArchivePolicy(max_total_bytes=MIB)
    assert rejected(data, tmp_path / "out", policy) == "too_large"
    assert (
        extract_archive(data, "a.zip", tmp_path / "ok", ArchivePolicy(max_total_bytes=2 * MIB)).file_count
        == 3
    )


def test_a_tar_member_declaring_more_than_the_file_cap(tmp_path: Path) -> None:
    data = make_tar([tar_file("big.bin", os.urandom(2 * MIB))])
    assert rejected(data, tmp_path / "out", ArchivePolicy(max_file_bytes=MIB)) == "too_large"


def test_a_symlink_in_a_tar(tmp_path: Path) -> None:
    data = make_tar([tar_file("a.txt", b"a"), tar_entry("passwd", tarfile.SYMTYPE, linkname="/etc/passwd")])
    assert rejected(data, tmp_path / "out") == "link"


def test_a_hardlink_in_a_tar(tmp_path: Path) -> None:
    data = make_tar([tar_file("a.txt", b"a"), tar_entry("shadow", tarfile.LNKTYPE, linkname="/etc/shadow")])
    assert rejected(data, tmp_path / "out") == "link"


def test_a_symlink_in_a_zip(tmp_path: Path) -> None:
    data = make_zip([("a.txt", "a"), ("passwd", "/etc/passwd")], modes={"passwd": 0o120777})
    assert rejected(data, tmp_path / "out") == "link"


@pytest.mark.parametrize(
    ("kind", "attrs"),
    [
        (tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3}),
        (tarfile.BLKTYPE, {"devmajor": 8, "devminor": 0}),
        (tarfile.FIFOTYPE, {}),
    ],
    ids=["char-device", "block-device", "fifo"],
)
def test_a_device_or_fifo_in_a_tar(kind: bytes, attrs: dict[str, object], tmp_path: Path) -> None:
    assert rejected(
        make_tar([tar_file("a.txt", b"a"), tar_entry("dev", kind, **attrs)]), tmp_path / "out"
    ) == ("special_file")


def test_a_device_in_a_zip(tmp_path: Path) -> None:
    data = make_zip([("a.txt", "a"), ("null", "")], modes={"null": stat.S_IFCHR | 0o666})
    assert rejected(data, tmp_path / "out") == "special_file"


def test_too_many_zip_entries(tmp_path: Path) -> None:
    data = make_zip([(f"f{i}.txt", "x") for i in range(11)])
    assert rejected(data, tmp_path / "out", ArchivePolicy(max_entries=10)) == "too_many_entries"
    assert extract_archive(data, "a.zip", tmp_path / "ok", ArchivePolicy(max_entries=11)).file_count == 11


def test_too_many_tar_entries(tmp_path: Path) -> None:
    data = make_tar([tar_file(f"f{i}.txt", b"x") for i in range(11)], gz=True)
    assert rejected(data, tmp_path / "out", ArchivePolicy(max_entries=10)) == "too_many_entries"


def test_duplicate_paths(tmp_path: Path) -> None:
    data = make_tar([tar_file("a.txt", b"first"), tar_file("a.txt", b"second")])
    assert rejected(data, tmp_path / "out") == "duplicate"


def test_duplicate_paths_after_normalisation(tmp_path: Path) -> None:
    assert rejected(make_zip([("src/a.py", "1"), ("src//./a.py", "2")]), tmp_path / "out") == "duplicate"


def test_a_path_that_is_both_file_and_folder(tmp_path: Path) -> None:
    assert rejected(make_zip([("src", "file"), ("src/a.py", "x")]), tmp_path / "out") == "duplicate"


@pytest.mark.parametrize("name", ["src\\..\\..\\evil.py", "a\\b.txt", "bad\x01name", "x" * 300])
def test_bad_names(name: str, tmp_path: Path) -> None:
    assert rejected(make_zip([(name, "x")]), tmp_path / "out") == "bad_name"


def test_a_nul_in_a_tar_name(tmp_path: Path) -> None:
    # tarfile cuts names at NUL, so the visible name is "safe.txt" and nothing escapes: the point is that
    # whatever survives parsing is what gets checked and written.
    tree = extract_archive(
        make_tar([tar_file("safe.txt\x00/../../evil", b"x")]), "a.tar", tmp_path / "out", POLICY
    )
    assert listing(tree.path) == {"safe.txt": b"x"}


def test_the_destination_must_not_exist(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError):
        extract_archive(make_zip([("a", "b")]), "a.zip", tmp_path / "out", POLICY)
    assert (tmp_path / "out").is_dir()
