"""`grader.intake.tree`: the checks every work tree passes before it reaches a sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grader.intake.tree import TreeStats, TreeViolation, is_git_component, scan_tree, symlink_escapes

LIMITS = {"max_files": 100, "max_bytes": 10_000}


def _files(root: Path, files: dict[str, str]) -> Path:
    root.mkdir()
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root


def _violation(root: Path, **kwargs: object) -> TreeViolation:
    limits: dict[str, object] = {**LIMITS, **kwargs}
    with pytest.raises(TreeViolation) as caught:
        scan_tree(root, **limits)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("a", "/etc/passwd"),
        ("a", ".."),
        ("a", "../x"),
        ("d/a", "../../x"),
        ("d/e/a", "../../../x"),
        ("a", "x/../../y"),  # climbs above the root midway, even though it ends "inside"
        ("a", ""),
        ("a", "x\\..\\..\\y"),
        ("a", "x\0y"),
    ],
)
def test_escaping_symlink_targets(link: str, target: str) -> None:
    assert symlink_escapes(link, target)


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("a", "b"),
        ("a", "./b"),
        ("d/a", ".."),
        ("d/a", "../b"),
        ("d/e/a", "../../b"),
        ("a", "."),
        ("a", "x/../y"),
    ],
)
def test_symlink_targets_inside_the_tree(link: str, target: str) -> None:
    assert not symlink_escapes(link, target)


@pytest.mark.parametrize("name", [".git", ".GIT", ".Git", ".git.", ".git ", ".git. .", b".git", b".GIT."])
def test_git_components(name: str | bytes) -> None:
    assert is_git_component(name)


@pytest.mark.parametrize("name", [".github", ".gitignore", "git", "x.git", ".git2", b".gitmodules"])
def test_not_git_components(name: str | bytes) -> None:
    assert not is_git_component(name)


def test_counts_regular_files_and_bytes(tmp_path: Path) -> None:
    root = _files(tmp_path / "t", {"a.txt": "12345", "d/b.txt": "123", "d/e/c.txt": ""})
    (root / "empty-dir").mkdir()
    assert scan_tree(root, max_files=100, max_bytes=10_000) == TreeStats(file_count=3, total_bytes=8)


def test_too_many_files(tmp_path: Path) -> None:
    root = _files(tmp_path / "t", {f"f{i}": "x" for i in range(4)})
    assert _violation(root, max_files=3).rule == "too_many_files"
    assert scan_tree(root, max_files=4, max_bytes=100).file_count == 4


def test_too_many_bytes(tmp_path: Path) -> None:
    root = _files(tmp_path / "t", {"a": "x" * 60, "b": "y" * 50})
    assert _violation(root, max_bytes=100).rule == "too_large"
    assert scan_tree(root, max_files=10, max_bytes=110).total_bytes == 110


@pytest.mark.parametrize("path", [".git/config", "sub/.GIT/config", "sub/.git"])
def test_a_git_entry_anywhere(path: str, tmp_path: Path) -> None:
    root = _files(tmp_path / "t", {"ok.txt": "x", path: "[core]\n\tfsmonitor = touch /tmp/pwned\n"})
    violation = _violation(root)
    assert violation.rule == "git_dir"
    assert is_git_component(violation.path.split("/")[-1])


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside", "../../../../etc/hostname"])
def test_a_symlink_pointing_out(target: str, tmp_path: Path) -> None:
    root = _files(tmp_path / "t", {"ok.txt": "x"})
    os.symlink(target, root / "link")
    violation = _violation(root, allow_internal_symlinks=True)
    assert (violation.rule, violation.path) == ("symlink_escape", "link")


def test_a_chain_of_links_that_escapes_only_when_resolved(tmp_path: Path) -> None:
    # `d/up -> ..` and `d/out -> up/..` each look harmless as text (`d/up/..` is `d`), but together
    # `d/out` resolves to the parent of the tree.
    root = _files(tmp_path / "t", {"d/ok.txt": "x"})
    os.symlink("..", root / "d" / "up")
    os.symlink("up/..", root / "d" / "out")
    assert not symlink_escapes("d/out", "up/..")
    assert _violation(root, allow_internal_symlinks=True).rule == "symlink_escape"


def test_links_inside_the_tree_are_refused_unless_allowed(tmp_path: Path) -> None:
    root = _files(tmp_path / "t", {"README.md": "x", "docs/a.md": "y"})
    os.symlink("../README.md", root / "docs" / "readme")
    assert _violation(root).rule == "link"
    # Allowed links are neither counted nor followed.
    stats = scan_tree(root, max_files=100, max_bytes=10_000, allow_internal_symlinks=True)
    assert stats == TreeStats(file_count=2, total_bytes=2)


def test_a_fifo_is_a_special_file(tmp_path: Path) -> None:
    root = _files(tmp_path / "t", {"ok.txt": "x"})
    os.mkfifo(root / "pipe")
    violation = _violation(root)
    assert (violation.rule, violation.path) == ("special_file", "pipe")


def test_a_linked_directory_is_not_walked(tmp_path: Path) -> None:
    outside = _files(tmp_path / "outside", {f"f{i}": "x" * 100 for i in range(50)})
    root = _files(tmp_path / "t", {"ok.txt": "x"})
    os.symlink(outside, root / "elsewhere")
    # Refused as a link, never counted as 50 more files.
    assert _violation(root, max_files=10).rule == "symlink_escape"
