"""A real git smart-HTTP server on loopback for tests: bare repositories built from dicts of files.

Usage (the fixtures `git_server` and `loopback_git_policy` in `tests.support.git_fixtures` wrap this)::

    with GitServer(tmp_path / "srv") as server:
        first = server.commit("demo", {"README.md": "hi\\n", "src/app.py": Executable("print(1)\\n")})
        server.commit("demo", {"README.md": "v2\\n"}, branch="feature")   # a second branch
        server.tag("demo", "v1.0", first, annotated=True)                 # a tag on the first commit
        url = server.url("demo")            # "http://127.0.0.1:<port>/demo.git"
        server.hang = True                   # every request now stalls until `hang` is False or shutdown
        server.hang_on = "git-upload-pack"   # or: info/refs answers, the upload-pack POSTs stall
        big = server.large_repo("big", 8 * 1024 * 1024)   # 8 MiB of incompressible blobs, one commit

Point the service at it with `GitPolicy(allow_insecure_loopback=True)` (http and loopback are refused by
every other policy). Everything runs in-process: no network beyond 127.0.0.1, no root, only `git`.

API:

- `GitServer(root)`: creates `root`, serves every `<name>.git` under it through `git http-backend` (CGI,
  GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL=1, protocol v2 passed through) behind a threaded
  `http.server` on 127.0.0.1 and a free port. Use it as a context manager or call `start()`/`stop()`.
- `commit(repo, files, *, branch="main", message=..., parent=...) -> str`: adds a commit whose tree is
  exactly `files` (a full snapshot, not a delta) on top of `branch` (or `parent`, a commit id) and moves
  `branch` to it; creates the bare repository on first use (HEAD -> `branch`). Returns the commit id.
  File values: `str`/`bytes` (mode 100644), `Executable(content)` (100755), `Symlink(target)` (120000),
  `Submodule(url, commit)` (a gitlink 160000; a `.gitmodules` entry is added unless you give one).
- `tag(repo, name, target, *, annotated=False) -> str`: creates `refs/tags/<name>`; returns the tag ref's
  object id (the tag object for annotated tags).
- `blob(repo, content)`, `tree(repo, {name: (mode, sha)})`, `commit_tree(repo, tree, branch=...)`: raw
  objects for trees git's index would refuse (a `.git` entry, millions of files from shared subtrees).
- `url(repo) -> str`, `repo_path(repo) -> Path`, `base_url`, `port`, `requests` (paths served, in order).
- `large_repo(repo, total_bytes, *, file_bytes=1 MiB, branch="main") -> str`: one commit of random
  (incompressible) files adding up to `total_bytes`, so the pack is as big as the checkout.
- `redirects[repo] = "http://.../other.git"`: every request for `repo` answers 302 to that URL.
- `hang` (bool property): while true, each request blocks (checked every 50 ms) without answering.
- `hang_on` (str, default ""): while non-empty, requests whose path (without the query) contains it block
  the same way, e.g. "git-upload-pack" answers `info/refs` but stalls the POSTs that follow (with
  protocol v2 that is the ref listing of `ls-remote` as well as the pack of `fetch`).
- `stop()` releases every blocked request, so a test that leaves the server hanging still ends.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Union

_AUTHOR_ENV = {
    "GIT_AUTHOR_NAME": "Test Learner",
    "GIT_AUTHOR_EMAIL": "learner@example.org",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "Test Learner",
    "GIT_COMMITTER_EMAIL": "learner@example.org",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}


@dataclass(frozen=True)
class Executable:
    content: str | bytes


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Submodule:
    url: str
    commit: str = "0123456789abcdef0123456789abcdef01234567"


FileSpec = Union[str, bytes, Executable, Symlink, Submodule]  # noqa: UP007 - used at runtime


def _git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "LC_ALL": "C",
        **_AUTHOR_ENV,
    }
    env.update(extra or {})
    return env


def _git(repo: Path, *args: str, data: bytes | None = None, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", f"--git-dir={repo}", *args],
        input=data,
        capture_output=True,
        env=_git_env(env),
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode().strip()


class GitServer:
    """Bare repositories under `root`, served over smart HTTP on 127.0.0.1 (see the module docstring)."""

    def __init__(self, root: Path, *, nice: int = 0) -> None:
        self.root = root
        # Niceness of the threads and git processes serving requests: a bench gives the learners' git
        # host, which in production is not on the grading hosts, what CPU the service leaves.
        self.nice = nice
        self.root.mkdir(parents=True, exist_ok=True)
        self.requests: list[str] = []
        # `{repo: base_url}`: requests for `/<repo>.git/...` get a 302 to `<base_url>/<rest of the path>`.
        self.redirects: dict[str, str] = {}
        self._hang = threading.Event()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._index_counter = 0
        # A substring of request paths to stall (see the module docstring); "" stalls nothing.
        self.hang_on = ""

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> GitServer:
        server = self

        class Handler(_GitHandler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="git-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GitServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the server first"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hang(self) -> bool:
        return self._hang.is_set()

    @hang.setter
    def hang(self, value: bool) -> None:
        if value:
            self._hang.set()
        else:
            self._hang.clear()

    def url(self, repo: str) -> str:
        return f"{self.base_url}/{repo}.git"

    def repo_path(self, repo: str) -> Path:
        return self.root / f"{repo}.git"

    # -- building repositories --------------------------------------------------------------------------

    def _ensure_repo(self, repo: str, branch: str) -> Path:
        path = self.repo_path(repo)
        if not path.exists():
            subprocess.run(
                ["git", "init", "--quiet", "--bare", f"--initial-branch={branch}", str(path)],
                env=_git_env(),
                check=True,
                capture_output=True,
            )
            # Let clients fetch any commit by id, as GitHub does (protocol v0 needs this; v2 allows it).
            _git(path, "config", "uploadpack.allowAnySHA1InWant", "true")
        return path

    def commit(
        self,
        repo: str,
        files: Mapping[str, FileSpec],
        *,
        branch: str = "main",
        message: str = "commit",
        parent: str | None = None,
    ) -> str:
        path = self._ensure_repo(repo, branch)
        self._index_counter += 1
        index = self.root / f".index-{repo}-{self._index_counter}"
        env = {"GIT_INDEX_FILE": str(index)}
        entries = dict(files)
        submodules = {name: spec for name, spec in entries.items() if isinstance(spec, Submodule)}
        if submodules and ".gitmodules" not in entries:
            entries[".gitmodules"] = "".join(
                f'[submodule "{name}"]\n\tpath = {name}\n\turl = {spec.url}\n'
                for name, spec in submodules.items()
            )
        try:
            for name, spec in sorted(entries.items()):
                if isinstance(spec, Submodule):
                    mode, sha = "160000", spec.commit
                else:
                    if isinstance(spec, Symlink):
                        mode, content = "120000", spec.target.encode()
                    elif isinstance(spec, Executable):
                        mode = "100755"
                        content = spec.content.encode() if isinstance(spec.content, str) else spec.content
                    else:
                        mode, content = "100644", spec.encode() if isinstance(spec, str) else spec
                    sha = _git(path, "hash-object", "-w", "--stdin", data=content)
                _git(path, "update-index", "--add", "--cacheinfo", f"{mode},{sha},{name}", env=env)
            tree = _git(path, "write-tree", env=env)
        finally:
            index.unlink(missing_ok=True)
        if parent is None:
            current = subprocess.run(
                ["git", f"--git-dir={path}", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
                capture_output=True,
                env=_git_env(),
                check=False,
            )
            parent = current.stdout.decode().strip() or None
        parent_args = ["-p", parent] if parent else []
        sha = _git(path, "commit-tree", tree, *parent_args, "-m", message)
        _git(path, "update-ref", f"refs/heads/{branch}", sha)
        return sha

    # Low-level building blocks for trees `commit` cannot express (git's own index refuses them).

    def blob(self, repo: str, content: str | bytes, *, branch: str = "main") -> str:
        path = self._ensure_repo(repo, branch)
        return _git(
            path,
            "hash-object",
            "-w",
            "--stdin",
            data=content.encode() if isinstance(content, str) else content,
        )

    def tree(self, repo: str, entries: Mapping[str, tuple[str, str]], *, branch: str = "main") -> str:
        """A tree from `{name: (mode, sha)}`; mode "040000" makes `sha` a subtree. Names are unchecked."""
        path = self._ensure_repo(repo, branch)
        lines = []
        for name, (mode, sha) in sorted(entries.items()):
            kind = "tree" if mode == "040000" else "commit" if mode == "160000" else "blob"
            lines.append(f"{mode} {kind} {sha}\t{name}\n")
        return _git(path, "mktree", "--missing", data="".join(lines).encode())

    def commit_tree(self, repo: str, tree: str, *, branch: str = "main", message: str = "commit") -> str:
        """Commit an existing tree (from `tree`) on top of `branch` and move the branch."""
        path = self._ensure_repo(repo, branch)
        current = (
            subprocess.run(
                ["git", f"--git-dir={path}", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
                capture_output=True,
                env=_git_env(),
                check=False,
            )
            .stdout.decode()
            .strip()
        )
        sha = _git(path, "commit-tree", tree, *(["-p", current] if current else []), "-m", message)
        _git(path, "update-ref", f"refs/heads/{branch}", sha)
        return sha

    def large_repo(
        self, repo: str, total_bytes: int, *, file_bytes: int = 1024 * 1024, branch: str = "main"
    ) -> str:
        """Commit random files adding up to `total_bytes`; random data keeps the pack as large as the tree."""
        files: dict[str, FileSpec] = {}
        remaining = total_bytes
        while remaining > 0:
            size = min(file_bytes, remaining)
            files[f"data/blob{len(files):05d}.bin"] = os.urandom(size)
            remaining -= size
        return self.commit(repo, files, branch=branch, message="large")

    def tag(self, repo: str, name: str, target: str, *, annotated: bool = False) -> str:
        path = self.repo_path(repo)
        if annotated:
            _git(path, "tag", "-a", "-m", f"tag {name}", name, target)
        else:
            _git(path, "tag", name, target)
        return _git(path, "rev-parse", f"refs/tags/{name}")


class _GitHandler(BaseHTTPRequestHandler):
    """Hands each request to `git http-backend` (CGI) and relays its answer."""

    owner: GitServer
    protocol_version = "HTTP/1.0"  # one request per connection keeps the CGI relay simple

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        owner = self.owner
        if owner.nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), owner.nice)  # git inherits it
        owner.requests.append(self.path)
        path, _, query = self.path.partition("?")
        while (owner.hang or (owner.hang_on and owner.hang_on in path)) and not owner._stopping.is_set():
            owner._stopping.wait(0.05)
        if owner._stopping.is_set():
            return
        body = self._read_body()
        for repo, target in owner.redirects.items():
            if path.startswith(f"/{repo}.git/"):
                self.send_response(302)
                self.send_header(
                    "Location", target.rstrip("/") + "/" + path[len(f"/{repo}.git/") :] + f"?{query}"
                )
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        env = _git_env(
            {
                "GIT_PROJECT_ROOT": str(owner.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": self.client_address[0],
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
            }
        )
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        result = subprocess.run(
            ["git", "http-backend"], input=body, capture_output=True, env=env, check=False
        )
        head, separator, payload = result.stdout.partition(b"\r\n\r\n")
        if not separator:
            head, _, payload = result.stdout.partition(b"\n\n")
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
