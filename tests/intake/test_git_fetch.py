"""`resolve_commit` and `fetch_worktree` against a real git smart-HTTP server on loopback."""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from grader.errors import RepositoryUnavailable
from grader.intake.git import GitPolicy, ValidatedGitUrl, fetch_worktree, resolve_commit, validate_git_url
from tests.support.gitserver import Executable, FileSpec, GitServer, Submodule, Symlink

pytestmark = pytest.mark.git

FILES: dict[str, FileSpec] = {
    "README.md": "# demo\n",
    "src/app.py": "print('v1')\n",
    "run.sh": Executable("#!/bin/sh\necho hi\n"),
}


def _validated(server: GitServer, repo: str, policy: GitPolicy) -> ValidatedGitUrl:
    return validate_git_url(server.url(repo), policy)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


# -- happy paths -------------------------------------------------------------------------------------------


def test_fetch_at_a_branch(git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path) -> None:
    commit = git_server.commit("demo", FILES)
    url = _validated(git_server, "demo", loopback_git_policy)

    resolved = resolve_commit(url, "main", loopback_git_policy)
    tree = fetch_worktree(url, resolved, tmp_path / "work", loopback_git_policy)

    assert resolved == commit
    assert tree.commit == commit
    assert tree.path == tmp_path / "work"
    assert _tree(tree.path) == {
        "README.md": b"# demo\n",
        "run.sh": b"#!/bin/sh\necho hi\n",
        "src/app.py": b"print('v1')\n",
    }
    assert tree.file_count == 3
    assert tree.total_bytes == sum(len(content) for content in _tree(tree.path).values())
    assert not (tree.path / ".git").exists()
    assert os.stat(tree.path / "run.sh").st_mode & 0o111


def test_the_default_ref_is_the_remote_head(git_server: GitServer, loopback_git_policy: GitPolicy) -> None:
    main = git_server.commit("demo", FILES, branch="main")  # the first branch becomes the server's HEAD
    git_server.commit("demo", {"a": "on feature"}, branch="feature")
    assert (
        resolve_commit(_validated(git_server, "demo", loopback_git_policy), None, loopback_git_policy) == main
    )


def test_fetch_another_branch(git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path) -> None:
    git_server.commit("demo", FILES)
    feature = git_server.commit("demo", {"feature.txt": "yes\n"}, branch="feature")
    url = _validated(git_server, "demo", loopback_git_policy)

    assert resolve_commit(url, "feature", loopback_git_policy) == feature
    assert resolve_commit(url, "refs/heads/feature", loopback_git_policy) == feature
    tree = fetch_worktree(url, feature, tmp_path / "work", loopback_git_policy)
    assert _tree(tree.path) == {"feature.txt": b"yes\n"}


@pytest.mark.parametrize("annotated", [False, True], ids=["lightweight", "annotated"])
def test_fetch_at_a_tag(
    annotated: bool, git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path
) -> None:
    first = git_server.commit("demo", {"version.txt": "1\n"})
    git_server.tag("demo", "v1.0", first, annotated=annotated)
    git_server.commit("demo", {"version.txt": "2\n"})
    url = _validated(git_server, "demo", loopback_git_policy)

    commit = resolve_commit(url, "v1.0", loopback_git_policy)
    assert commit == first  # the commit, not the tag object
    tree = fetch_worktree(url, commit, tmp_path / "work", loopback_git_policy)
    assert _tree(tree.path) == {"version.txt": b"1\n"}


def test_fetch_at_a_commit_id(git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path) -> None:
    old = git_server.commit("demo", {"version.txt": "old\n"})
    git_server.commit("demo", {"version.txt": "new\n"})
    url = _validated(git_server, "demo", loopback_git_policy)

    commit = resolve_commit(url, old.upper(), loopback_git_policy)
    assert commit == old
    tree = fetch_worktree(url, commit, tmp_path / "work", loopback_git_policy)
    assert _tree(tree.path) == {"version.txt": b"old\n"}
    assert tree.commit == old


def test_the_pinned_commit_is_fetched_after_the_branch_moves(
    git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path
) -> None:
    git_server.commit("demo", {"answer.py": "ANSWER = 1\n"})
    url = _validated(git_server, "demo", loopback_git_policy)
    pinned = resolve_commit(url, "main", loopback_git_policy)

    moved = git_server.commit("demo", {"answer.py": "ANSWER = 2\n"})
    assert resolve_commit(url, "main", loopback_git_policy) == moved != pinned

    tree = fetch_worktree(url, pinned, tmp_path / "work", loopback_git_policy)
    assert tree.commit == pinned
    assert _tree(tree.path) == {"answer.py": b"ANSWER = 1\n"}


def test_the_validated_address_is_pinned_for_git(
    git_server: GitServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A name only *Python* can resolve still works: git connects to the vetted address, not to fresh DNS."""
    commit = git_server.commit("demo", FILES)
    name = "learner-forge.invalid"  # .invalid never resolves in real DNS
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == name else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    policy = GitPolicy(allowed_hosts=(name,), allow_insecure_loopback=True, clone_timeout_seconds=20)
    url = validate_git_url(f"http://{name}:{git_server.port}/demo.git", policy)
    assert url.addresses == ("127.0.0.1",)

    assert resolve_commit(url, None, policy) == commit
    assert fetch_worktree(url, commit, tmp_path / "work", policy).file_count == 3


# -- unavailable repositories ------------------------------------------------------------------------------


def test_a_missing_repository(git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path) -> None:
    url = _validated(git_server, "does-not-exist", loopback_git_policy)
    with pytest.raises(RepositoryUnavailable) as caught:
        resolve_commit(url, None, loopback_git_policy)
    assert caught.value.details == {"field": "git_url", "rule": "not_found"}

    with pytest.raises(RepositoryUnavailable) as caught:
        fetch_worktree(url, "a" * 40, tmp_path / "work", loopback_git_policy)
    assert caught.value.details == {"field": "git_url", "rule": "not_found"}
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("ref", ["no-such-branch", "v9.9", "refs/heads/nope"])
def test_a_missing_ref(ref: str, git_server: GitServer, loopback_git_policy: GitPolicy) -> None:
    git_server.commit("demo", FILES)
    with pytest.raises(RepositoryUnavailable) as caught:
        resolve_commit(_validated(git_server, "demo", loopback_git_policy), ref, loopback_git_policy)
    assert caught.value.details == {"field": "ref", "rule": "ref_not_found"}


def test_a_commit_the_repository_does_not_have(
    git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path
) -> None:
    git_server.commit("demo", FILES)
    url = _validated(git_server, "demo", loopback_git_policy)
    with pytest.raises(RepositoryUnavailable) as caught:
        fetch_worktree(
            url, "0123456789abcdef0123456789abcdef01234567", tmp_path / "work", loopback_git_policy
        )
    assert caught.value.details == {"field": "ref", "rule": "ref_not_found"}
    assert not (tmp_path / "work").exists()


def test_a_repository_over_the_size_limit(
    git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path
) -> None:
    commit = git_server.large_repo("big", 4 * 1024 * 1024)
    policy = GitPolicy(allow_insecure_loopback=True, max_repo_bytes=1024 * 1024)
    url = _validated(git_server, "big", policy)
    started = time.monotonic()
    with pytest.raises(RepositoryUnavailable) as caught:
        fetch_worktree(url, commit, tmp_path / "work", policy)
    assert caught.value.details["rule"] == "too_large"
    assert time.monotonic() - started < 5
    assert not (tmp_path / "work").exists()
    # The same repository is fine under the default limit: the limit, not the data, made it fail.
    assert fetch_worktree(url, commit, tmp_path / "ok", loopback_git_policy).total_bytes == 4 * 1024 * 1024


def test_a_small_pack_that_checks_out_too_large_is_refused_before_checkout(
    git_server: GitServer, tmp_path: Path
) -> None:
    # 20 MiB of zeros compress to a few KiB: the pack passes the fetch watch, the blob sizes do not.
    commit = git_server.commit("zeros", {"zeros.bin": bytes(20 * 1024 * 1024)})
    policy = GitPolicy(allow_insecure_loopback=True, max_repo_bytes=1024 * 1024)
    with pytest.raises(RepositoryUnavailable) as caught:
        fetch_worktree(_validated(git_server, "zeros", policy), commit, tmp_path / "work", policy)
    assert caught.value.details["rule"] == "too_large"
    assert not (tmp_path / "work").exists()


def test_a_repository_with_too_many_files(
    git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path
) -> None:
    commit = git_server.commit("many", {f"f{i}.txt": str(i) for i in range(6)})
    policy = GitPolicy(allow_insecure_loopback=True, max_files=5)
    url = _validated(git_server, "many", policy)
    with pytest.raises(RepositoryUnavailable) as caught:
        fetch_worktree(url, commit, tmp_path / "work", policy)
    assert caught.value.details["rule"] == "too_many_files"
    assert not (tmp_path / "work").exists()
    assert fetch_worktree(url, commit, tmp_path / "ok", GitPolicy(allow_insecure_loopback=True, max_files=6))


def test_a_hanging_server_times_out(git_server: GitServer, tmp_path: Path) -> None:
    commit = git_server.commit("demo", FILES)
    policy = GitPolicy(allow_insecure_loopback=True, clone_timeout_seconds=1)
    url = _validated(git_server, "demo", policy)
    git_server.hang = True

    started = time.monotonic()
    with pytest.raises(RepositoryUnavailable) as caught:
        resolve_commit(url, "main", policy)
    assert caught.value.details == {"field": "git_url", "rule": "timeout"}
    with pytest.raises(RepositoryUnavailable) as caught:
        fetch_worktree(url, commit, tmp_path / "work", policy)
    assert caught.value.details == {"field": "git_url", "rule": "timeout"}
    assert time.monotonic() - started < 10
    assert not (tmp_path / "work").exists()
    assert git_server.requests  # git did reach the server: the hang, not a refusal, made it fail


def test_a_server_that_stalls_after_the_ref_lookup_times_out(git_server: GitServer, tmp_path: Path) -> None:
    commit = git_server.commit("demo", FILES)
    policy = GitPolicy(allow_insecure_loopback=True, clone_timeout_seconds=1)
    url = _validated(git_server, "demo", policy)
    assert resolve_commit(url, "main", policy) == commit
    # The capability advertisement (info/refs) still answers; the upload-pack exchange never does.
    git_server.hang_on = "git-upload-pack"

    started = time.monotonic()
    with pytest.raises(RepositoryUnavailable) as caught:
        fetch_worktree(url, commit, tmp_path / "work", policy)
    assert caught.value.details == {"field": "git_url", "rule": "timeout"}
    assert time.monotonic() - started < 5
    assert any(request.endswith("/git-upload-pack") for request in git_server.requests)
    assert not (tmp_path / "work").exists()


# -- malicious repositories --------------------------------------------------------------------------------


def test_submodules_are_not_fetched(
    git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path
) -> None:
    inner = git_server.commit("inner", {"secret.txt": "from the submodule\n"})
    outer = git_server.commit(
        "outer", {"main.py": "x = 1\n", "vendor/inner": Submodule(git_server.url("inner"), inner)}
    )
    url = _validated(git_server, "outer", loopback_git_policy)

    tree = fetch_worktree(
        url, resolve_commit(url, None, loopback_git_policy), tmp_path / "work", loopback_git_policy
    )

    assert tree.commit == outer
    # git leaves an empty directory where an uninitialised submodule sits.
    assert (tree.path / "vendor" / "inner").is_dir()
    assert list((tree.path / "vendor" / "inner").iterdir()) == []
    assert "secret.txt" not in {path.name for path in tree.path.rglob("*")}
    assert not any("inner.git" in request for request in git_server.requests)


@pytest.mark.parametrize(
    "target", ["/etc/hostname", "../../../../../../etc/hostname", "/proc/self/environ", "../x", "a/../../x"]
)
def test_a_symlink_pointing_out_of_the_tree_is_rejected(
    target: str, git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path
) -> None:
    commit = git_server.commit("links", {"README.md": "hi\n", "escape": Symlink(target)})
    url = _validated(git_server, "links", loopback_git_policy)

    with pytest.raises(RepositoryUnavailable) as caught:
        fetch_worktree(url, commit, tmp_path / "work", loopback_git_policy)

    assert caught.value.details == {"field": "git_url", "rule": "symlink_escape", "path": "escape"}
    assert not (tmp_path / "work").exists()


def test_a_deep_symlink_climbing_out_is_rejected(
    git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path
) -> None:
    # Two levels down, `../../..` climbs one level above the root.
    commit = git_server.commit("deep", {"a/b/link": Symlink("../../../secret"), "a/b/ok": "x"})
    with pytest.raises(RepositoryUnavailable) as caught:
        fetch_worktree(
            _validated(git_server, "deep", loopback_git_policy), commit, tmp_path / "w", loopback_git_policy
        )
    assert caught.value.details["rule"] == "symlink_escape"
    assert caught.value.details["path"] == "a/b/link"


def test_symlinks_inside_the_tree_arrive_as_plain_files(
    git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path
) -> None:
    commit = git_server.commit(
        "inner-links",
        {
            "README.md": "hi\n",
            "docs/readme": Symlink("../README.md"),
            "dir/up": Symlink(".."),
            "self": Symlink("."),
        },
    )
    url = _validated(git_server, "inner-links", loopback_git_policy)

    tree = fetch_worktree(url, commit, tmp_path / "work", loopback_git_policy)

    for name in ("docs/readme", "dir/up", "self"):
        mode = os.lstat(tree.path / name).st_mode
        assert stat.S_ISREG(mode), f"{name} must be a plain file"
    # core.symlinks=false: the file holds the link text; nothing on disk can be followed.
    assert (tree.path / "docs" / "readme").read_text() == "../README.md"
    assert (tree.path / "dir" / "up").read_text() == ".."
    assert tree.file_count == 4


def test_committed_hooks_never_run(
    git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even if the worker's own environment points git at the repo's hooks, nothing from the repo runs."""
    marker = tmp_path / "hook-ran"
    script = Executable(f"#!/bin/sh\ntouch {marker}\n")
    hooks = {f".githooks/{name}": script for name in ("post-checkout", "post-merge", "reference-transaction")}
    commit = git_server.commit("hooks", {"README.md": "hi\n", "fsmonitor.sh": script, **hooks})
    # What an inherited environment could do if git saw it: run repo hooks and an fsmonitor command.
    global_config = tmp_path / "gitconfig"
    global_config.write_text(
        f"[core]\n\thooksPath = .githooks\n\tfsmonitor = {tmp_path / 'work' / 'fsmonitor.sh'}\n"
    )
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(global_config))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'core.hooksPath'='.githooks'")
    monkeypatch.setenv("HOME", str(tmp_path))
    url = _validated(git_server, "hooks", loopback_git_policy)

    tree = fetch_worktree(url, commit, tmp_path / "work", loopback_git_policy)

    assert (tree.path / ".githooks" / "post-checkout").is_file()  # the files arrive ...
    assert not marker.exists()  # ... but none of them ran


def test_the_work_tree_must_not_exist_yet(
    git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path
) -> None:
    commit = git_server.commit("demo", FILES)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        fetch_worktree(
            _validated(git_server, "demo", loopback_git_policy),
            commit,
            tmp_path / "work",
            loopback_git_policy,
        )
    assert (tmp_path / "work" / "keep.txt").read_text() == "mine"


def test_redirects_are_not_followed(
    git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path
) -> None:
    """A redirect could lead git to an address nobody vetted (cloud metadata, an internal forge)."""
    git_server.commit("elsewhere", FILES)
    git_server.redirects["moved"] = git_server.url("elsewhere")
    url = _validated(git_server, "moved", loopback_git_policy)

    with pytest.raises(RepositoryUnavailable):
        resolve_commit(url, None, loopback_git_policy)
    with pytest.raises(RepositoryUnavailable):
        fetch_worktree(url, "a" * 40, tmp_path / "work", loopback_git_policy)
    assert any(request.startswith("/moved.git/") for request in git_server.requests)
    assert not any(request.startswith("/elsewhere.git/") for request in git_server.requests)
    assert not (tmp_path / "work").exists()


def test_a_tree_of_millions_of_files_in_a_tiny_pack(git_server: GitServer, tmp_path: Path) -> None:
    """Shared subtrees: 10 entries per level, 6 levels, one blob; a million paths from a few objects."""
    blob = git_server.blob("fanout", "x")
    tree = git_server.tree("fanout", {f"f{i}": ("100644", blob) for i in range(10)})
    for _level in range(5):
        tree = git_server.tree("fanout", {f"d{i}": ("040000", tree) for i in range(10)})
    commit = git_server.commit_tree("fanout", tree)
    policy = GitPolicy(allow_insecure_loopback=True, clone_timeout_seconds=20)

    started = time.monotonic()
    with pytest.raises(RepositoryUnavailable) as caught:
        fetch_worktree(_validated(git_server, "fanout", policy), commit, tmp_path / "work", policy)
    assert caught.value.details["rule"] == "too_many_files"
    assert time.monotonic() - started < 15
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("name", [".git", ".GIT", ".git."])
def test_a_committed_git_directory_is_refused(
    name: str, git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path
) -> None:
    config = git_server.blob("dotgit", "[core]\n\tfsmonitor = touch /tmp/pwned\n")
    inner = git_server.tree("dotgit", {"config": ("100644", config)})
    sub = git_server.tree("dotgit", {name: ("040000", inner), "ok.txt": ("100644", config)})
    commit = git_server.commit_tree("dotgit", git_server.tree("dotgit", {"sub": ("040000", sub)}))
    url = _validated(git_server, "dotgit", loopback_git_policy)

    with pytest.raises(RepositoryUnavailable) as caught:
        fetch_worktree(url, commit, tmp_path / "work", loopback_git_policy)
    # transfer.fsckObjects refuses the pack; the ls-tree check would refuse the tree if fsck did not.
    assert caught.value.details == {"field": "git_url", "rule": "unsafe_tree"}
    assert not (tmp_path / "work").exists()


def test_pinning_a_ref_runs_git_at_the_policys_niceness(
    git_server: GitServer, loopback_git_policy: GitPolicy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake's `ls-remote` shares a web host with quiz requests: it runs niced, and the fetch of a
    worker (another policy field) does not."""
    import dataclasses
    import shutil

    import grader.intake.git as git_module

    seen = tmp_path / "nice.txt"
    wrapper = tmp_path / "git"
    # Waits a moment (the niceness is set right after the spawn), notes its own, then runs git.
    wrapper.write_text(
        f"#!/bin/sh\nsleep 0.2\ncut -d' ' -f19 /proc/$$/stat >> {seen}\nexec {shutil.which('git')} \"$@\"\n"
    )
    wrapper.chmod(0o755)
    monkeypatch.setattr(git_module, "_GIT_BINARY", str(wrapper))
    git_server.commit("niced", {"a.py": "x = 1\n"})
    policy = dataclasses.replace(loopback_git_policy, resolve_nice=12)
    url = _validated(git_server, "niced", policy)
    commit = resolve_commit(url, None, policy)
    assert seen.read_text().split() == ["12"]
    fetch_worktree(url, commit, tmp_path / "tree", policy)
    assert set(seen.read_text().split()[1:]) == {"0"}  # every git of the fetch at the worker's own


@pytest.mark.parametrize("value", ["-1", "20"])
def test_an_intake_niceness_outside_zero_to_nineteen_is_refused_naming_the_setting(value: str) -> None:
    from grader.config import Settings
    from grader.errors import InvalidInput

    with pytest.raises(InvalidInput, match="GRADER_INTAKE_GIT_NICE must be between 0") as refused:
        Settings.from_env({"GRADER_INTAKE_GIT_NICE": value})
    assert refused.value.details["field"] == "GRADER_INTAKE_GIT_NICE"
    assert Settings.from_env({}).intake_git_nice == 10
