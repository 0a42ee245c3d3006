"""The Docker backend: one locked-down container per job, driven only through the Docker API.

The container's first process is an idle keeper; the job runs in it through one `exec` whose
stream carries everything: the files go in as a tar ahead of the job's stdin, and come out as a tar
on stderr after every process of the job is dead, while the work dir stays a size-capped tmpfs (a
tmpfs would vanish if the container stopped; Docker refuses `put_archive` on a read-only root, and
`get_archive` cannot see into a tmpfs). No network, read-only root, tmpfs work dir, /tmp and
/dev/shm, user nobody, every capability dropped, no-new-privileges, pids limit, memory equal to
memory+swap, one CPU, rlimits for open files, file size, CPU time and core dumps; the wall clock is
enforced here and the container is always removed. This is the only module that imports `docker`.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shlex
import socket
import struct
import tarfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, ImageNotFound
from docker.types import LogConfig, Ulimit

from sandbox.contract import WORKDIR, JobSpec, Outcome, RunResult, sandbox_error
from sandbox.select import BUILD_HINT

BOX_USER = "65534:65534"
KEEPER = ("sleep", "infinity")
# Runs as the job's exec: places the files (a tar of exactly $2 bytes ahead of the job's stdin),
# prints the nonce $1 on stderr once the box is ready (a failure before it is ours, anything after
# it the job's; the job cannot un-print it), runs the job, then kills whatever the job left running
# so a daemonised child cannot hold the output stream open (pid 1, the keeper, is spared by kill -1).
# When files are to be returned, it kills again (a fork racing the first kill), prints the files
# mark on stderr and then the tar of the collected paths ($3, a command of quoted paths built here):
# one exec for the whole job, as each exec costs ~50 ms. tar stores symlinks as symlinks and never
# follows them. The files mark is a second secret, read from the first line of stdin so that it is
# in no argv or environment the job can read; it shares nothing with the start nonce.
RUN_JOB = (
    'IFS= read -r files_mark; nonce="$1"; size="$2"; collect="$3"; shift 3; '
    'if [ "$size" -gt 0 ]; then head -c "$size" | tar -x -f - -C /box --no-same-owner || exit 125; fi; '
    'printf %s "$nonce" >&2; '
    '"$@"; code=$?; kill -9 -1 2>/dev/null; '
    'if [ -n "$collect" ]; then kill -9 -1 2>/dev/null; printf %s "$files_mark" >&2; '
    'eval "$collect" >&2; fi; '
    "exit $code"
)
COLLECT_SECONDS = 60.0  # returning the files is ours: it does not count against the job's wall clock
INLINE_STDIN = 64 * 1024
CGROUP_MEMORY = Path("/sys/fs/cgroup/memory/docker")
CGROUP_CPUACCT = Path("/sys/fs/cgroup/cpuacct/docker")
LABEL = "microcred.sandbox"
OWNER_LABEL = "microcred.owner"


class _Buffer:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.kept = 0
        self.overflowed = False

    def add(self, chunk: bytes) -> bool:
        """Keep what fits; True when the stream went past its limit."""
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(chunk[:room])
            self.kept += min(room, len(chunk))
        if len(chunk) > room:
            self.overflowed = True
        return self.overflowed

    def value(self) -> bytes:
        return b"".join(self.parts)


class _StderrAndFiles:
    """The exec's stderr: the job's part (the nonce, then its stderr, capped like stdout) and, after
    the files mark, the tar of the returned files (capped on its own; past the cap it is cut short,
    which loses files, not the job's output). A mark split across chunks is held back until whole."""

    def __init__(self, job_limit: int, mark: bytes, files_limit: int) -> None:
        self.job = _Buffer(job_limit)
        self.mark = mark
        self.files: _Buffer | None = None
        self.files_started: float | None = None  # when the mark came: the job was over by then
        self._files_limit = files_limit
        self._held = b""

    def add(self, chunk: bytes) -> bool:
        """Keep what fits; True when the job's own stderr went past its limit."""
        if self.files is not None:
            self.files.add(chunk)
            return False
        data = self._held + chunk
        at = data.find(self.mark)
        if at >= 0:
            self._held = b""
            self.files = _Buffer(self._files_limit)
            self.files_started = time.monotonic()
            self.files.add(data[at + len(self.mark) :])
            return self.job.add(data[:at])
        keep = min(len(data), len(self.mark) - 1)
        self._held = data[len(data) - keep :]
        return self.job.add(data[: len(data) - keep])

    def finish(self) -> bool:
        """The stream ended: what was held back is the job's. True when the job's part is past its limit."""
        held, self._held = self._held, b""
        return self.job.add(held) if held else False


class DockerRunner:
    name = "docker"

    def __init__(self, image: str, *, client: Any = None, cpus: float = 1.0, warm: int = 1) -> None:
        self.image = image
        self.cpus = cpus
        self._client = client
        # Starting a container costs ~0.3 s; keeping `warm` fresh, never-used containers started
        # per set of limits takes that off each job's critical path. Each job still gets its own.
        self.warm = warm
        self._pool: dict[tuple[Any, ...], list[Any]] = {}
        self._pool_lock = threading.Lock()
        self._closed = False
        # Every container we make carries our owner tag, so a worker that died without cleaning up
        # (SIGKILL, OOM) has its boxes removed by the next runner on the same host.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        atexit.register(self.close)

    def close(self) -> None:
        """Remove the warm containers; later refills remove what they make. Also run at exit."""
        with self._pool_lock:
            self._closed = True
            waiting = [c for containers in self._pool.values() for c in containers]
            self._pool.clear()
        for container in waiting:
            _remove(container)

    def _acquire(self, spec: JobSpec) -> Any:
        key = _pool_key(spec)
        with self._pool_lock:
            ready = self._pool.get(key, [])
            container = ready.pop() if ready else None
        if container is None:
            container = self._create(spec)
            container.start()
        if self.warm and not self._closed:
            # Not a daemon thread: the interpreter waits for it at exit, and `close` (atexit, which
            # runs after that wait) then removes what it made, so no box outlives the process.
            threading.Thread(target=self._refill, args=(key, spec)).start()
        return container

    def _refill(self, key: tuple[Any, ...], spec: JobSpec) -> None:
        with self._pool_lock:
            missing = self.warm - len(self._pool.get(key, []))
        for _ in range(max(0, missing)):
            try:
                container = self._create(spec)
                container.start()
            except DockerException:
                return
            with self._pool_lock:
                if not self._closed:
                    self._pool.setdefault(key, []).append(container)
                    continue
            _remove(container)
            return

    def sweep_orphans(self) -> int:
        """Remove boxes whose owning process on this host is gone; returns how many."""
        host = socket.gethostname()
        removed = 0
        # The plain list call: it neither inspects each box (a box removed meanwhile would fail it)
        # nor costs a round trip per box.
        for box in self.client.api.containers(all=True, filters={"label": LABEL}):
            owner = (box.get("Labels") or {}).get(OWNER_LABEL, "")
            owner_host, _, rest = owner.partition(":")
            pid_text = rest.partition(":")[0]
            if owner_host != host or not pid_text.isdigit() or _alive(int(pid_text)):
                continue
            with contextlib.suppress(DockerException):
                self.client.api.remove_container(box["Id"], force=True)
                removed += 1
        return removed

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker.from_env(timeout=60)
            with contextlib.suppress(DockerException):
                self.sweep_orphans()
        return self._client

    def run(self, spec: JobSpec) -> RunResult:
        started = time.monotonic()
        container = None
        try:
            container = self._acquire(spec)
            return self._execute(container, spec, started)
        except (DockerException, OSError) as exc:
            return sandbox_error(self.name, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
        finally:
            if container is not None:
                # Every process of the job is already dead or dies with the container; removing it
                # off the critical path saves a daemon round trip per job. Not a daemon thread, so
                # the interpreter waits for the removal at exit.
                threading.Thread(target=_remove, args=(container,)).start()

    def _create(self, spec: JobSpec) -> Any:
        limits = spec.limits
        # exec: like the bubblewrap box, where a job may run a script it was given or built
        scratch = f"rw,exec,nosuid,nodev,size={limits.disk_mb}m"
        memory = f"{limits.memory_mb}m"
        return self.client.containers.create(
            self.image,
            command=list(KEEPER),
            user=BOX_USER,
            working_dir=WORKDIR,
            environment={},  # the job's environment is given to its exec, not the keeper
            network_mode="none",
            read_only=True,
            tmpfs={WORKDIR: f"{scratch},mode=0700,uid=65534,gid=65534", "/tmp": f"{scratch},mode=1777"},
            shm_size=limits.disk_mb * 1024 * 1024,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=limits.pids,
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(self.cpus * 1e9),
            ipc_mode="private",
            ulimits=[
                Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
                Ulimit(
                    name="fsize",
                    soft=limits.file_size_mb * 1024 * 1024,
                    hard=limits.file_size_mb * 1024 * 1024,
                ),
                Ulimit(name="core", soft=0, hard=0),
                Ulimit(name="cpu", soft=limits.cpu_seconds, hard=limits.cpu_seconds + 1),
            ],
            log_config=LogConfig(type="json-file", config={"max-size": "64k"}),
            labels={LABEL: "job", OWNER_LABEL: self.owner},
        )

    def _execute(self, container: Any, spec: JobSpec, started: float) -> RunResult:
        limits = spec.limits
        api = self.client.api
        archive = _tar(spec) if spec.files else b""
        nonce = uuid.uuid4().hex.encode()
        # The job's files arrive as a tar on the same stdin, ahead of the job's own input: `head -c`
        # reads exactly the archive, so one exec both places the files and runs the job.
        collect = ""
        if spec.collect:
            paths = " ".join(shlex.quote(path) for path in spec.collect)
            collect = f"tar -c -f - -C {WORKDIR} --ignore-failed-read -- {paths} 2>/dev/null"
        command = ["sh", "-c", RUN_JOB, "box", nonce.decode(), str(len(archive)), collect, *spec.command]
        exec_id = api.exec_create(
            container.id,
            command,
            stdin=True,
            stdout=True,
            stderr=True,
            user=BOX_USER,
            workdir=WORKDIR,
            environment=spec.box_env(),
        )["Id"]
        raw = _raw_socket(api.exec_start(exec_id, socket=True))
        out = _Buffer(limits.output_bytes)
        files_cap = len(spec.collect) * (limits.collect_bytes + 1024) + 10240
        files_mark = uuid.uuid4().hex.encode()
        err = _StderrAndFiles(limits.output_bytes + len(nonce), files_mark, files_cap)
        reason: list[Outcome] = []

        def kill(why: Outcome) -> None:
            if not reason:
                reason.append(why)
            with contextlib.suppress(DockerException):
                container.kill()

        data = files_mark + b"\n" + archive + spec.stdin
        if len(data) <= INLINE_STDIN:
            _feed(raw, data)  # fits the socket's buffer: no thread on the critical path
        else:
            threading.Thread(target=_feed, args=(raw, data), daemon=True).start()
        deadline = started + limits.wall_seconds
        try:
            finished = _demux(raw, out, err, lambda: kill(Outcome.OUTPUT_LIMIT), deadline)
            if not finished:
                # Stop reading first: a job blocked writing to a full socket answers kill slowly.
                with contextlib.suppress(OSError):
                    raw.shutdown(socket.SHUT_RDWR)
                kill(Outcome.TIMEOUT)
        finally:
            with contextlib.suppress(OSError):
                raw.close()
        if err.finish():
            kill(Outcome.OUTPUT_LIMIT)  # the job's last bytes, held back in case they began the mark
        wall = time.monotonic() - started
        info = api.exec_inspect(exec_id)
        exit_code = info.get("ExitCode")
        peak, oom = _cgroup_memory(container.id)
        if exit_code == 137 and not reason and not oom:
            oom = _oom_killed_state(container)  # the cgroup was not visible from here (remote daemon)
        cpu = _cgroup_cpu(container.id)
        stderr = err.job.value()
        if not stderr.startswith(nonce) and not reason:
            detail = stderr.decode(errors="replace").strip() or f"exit code {exit_code}"
            return sandbox_error(self.name, f"the box did not start: {detail}", wall)
        stderr = stderr.removeprefix(nonce)
        err_truncated = len(stderr) > limits.output_bytes or err.job.overflowed
        stderr = stderr[: limits.output_bytes]
        files: dict[str, bytes] = {}
        if not reason and err.files is not None:
            files = _untar(err.files.value(), spec.collect, limits.collect_bytes)
        missing = [relative for relative in spec.collect if relative not in files]
        sig = exit_code - 128 if isinstance(exit_code, int) and 128 < exit_code < 128 + 65 else None
        if reason:
            outcome = reason[0]
        elif oom:
            outcome = Outcome.MEMORY_LIMIT
        elif sig == 24:  # SIGXCPU: the CPU-time rlimit ran out
            outcome = Outcome.TIMEOUT
        else:
            outcome = Outcome.COMPLETED
        return RunResult(
            outcome=outcome,
            exit_code=exit_code if isinstance(exit_code, int) else None,
            signal=sig,
            wall_seconds=wall,
            cpu_seconds=cpu,
            peak_memory_bytes=peak,
            stdout=out.value(),
            stderr=stderr,
            output_truncated=out.overflowed or err_truncated,
            files=files,
            missing_files=tuple(missing),
            backend=self.name,
        )


def _untar(data: bytes, paths: tuple[str, ...], limit: int) -> dict[str, bytes]:
    """The collected files out of the box's tar: only regular files within the cap count."""
    wanted = set(paths)
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive:
                if member.name not in wanted or not member.isreg() or member.size > limit:
                    continue
                handle = archive.extractfile(member)
                if handle is not None:
                    files[member.name] = handle.read()
    except tarfile.TarError:
        pass  # a truncated archive: what was read whole still counts
    return files


def probe(image: str) -> tuple[str, str] | None:
    """None when the daemon answers and has `image`; else what is wrong and how to fix it."""
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except DockerException as exc:
        fix = "apt-get install docker.io and start dockerd (scripts/start-dockerd.sh)"
        return f"the Docker daemon does not answer: {exc}", fix
    try:
        client.images.get(image)
    except ImageNotFound:
        return f"image {image} is missing", BUILD_HINT
    except DockerException as exc:
        return f"cannot inspect image {image}: {exc}", "check the Docker daemon"
    return None


def _pool_key(spec: JobSpec) -> tuple[Any, ...]:
    limits = spec.limits
    return (
        limits.memory_mb,
        limits.pids,
        limits.disk_mb,
        limits.nofile,
        limits.file_size_mb,
        limits.cpu_seconds,
    )


def _remove(container: Any) -> None:
    with contextlib.suppress(DockerException):
        container.remove(force=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _oom_killed_state(container: Any) -> bool:
    try:
        container.reload()
        return bool(container.attrs.get("State", {}).get("OOMKilled"))
    except DockerException:
        return False


def _cgroup_cpu(container_id: str) -> float | None:
    """CPU seconds of the whole box (the keeper costs nothing), from the local cgroup v1 when visible."""
    try:
        return int((CGROUP_CPUACCT / container_id / "cpuacct.usage").read_text()) / 1e9
    except (OSError, ValueError):
        return None


def _tar(spec: JobSpec) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directories: set[str] = set()
        for box_file in spec.files:
            parts = box_file.path.split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, 65534, 65534
                    archive.addfile(info)
            info = tarfile.TarInfo(box_file.path)
            info.size, info.mode, info.uid, info.gid = len(box_file.content), box_file.mode, 65534, 65534
            archive.addfile(info, io.BytesIO(box_file.content))
    return buffer.getvalue()


def _raw_socket(sock: Any) -> socket.socket:
    inner = getattr(sock, "_sock", sock)
    assert isinstance(inner, socket.socket)
    return inner


def _feed(raw: socket.socket, data: bytes) -> None:
    try:
        if data:
            raw.sendall(data)
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the job closed its input or is already gone


def _demux(raw: socket.socket, out: _Buffer, err: _StderrAndFiles, on_overflow: Any, deadline: float) -> bool:
    """Read Docker's multiplexed stream (8-byte frame headers) until the exec ends (True) or the
    deadline passes (False). The deadline is the wall clock: no timer thread per job."""
    reader = raw.makefile("rb")

    def read(size: int) -> bytes:
        until = deadline if err.files_started is None else max(deadline, err.files_started + COLLECT_SECONDS)
        raw.settimeout(max(0.001, until - time.monotonic()))
        return reader.read(size)

    try:
        while True:
            header = read(8)
            if len(header) < 8:
                return True
            stream, length = header[0], struct.unpack(">I", header[4:])[0]
            remaining = length
            while remaining:
                chunk = read(min(remaining, 64 * 1024))
                if not chunk:
                    return True
                remaining -= len(chunk)
                target = err if stream == 2 else out
                if target.add(chunk):
                    # Stop reading first: a job blocked writing to a full socket answers kill slowly.
                    with contextlib.suppress(OSError):
                        raw.shutdown(socket.SHUT_RDWR)
                    on_overflow()
                    return True
    except TimeoutError:
        return False
    except OSError:
        return True  # the stream broke because the box was killed


def _cgroup_memory(container_id: str) -> tuple[int | None, bool]:
    """Peak memory and whether the OOM killer struck, read from the local cgroup (v1) when visible."""
    directory = CGROUP_MEMORY / container_id
    try:
        peak = int((directory / "memory.max_usage_in_bytes").read_text())
        oom = any(
            line.startswith("oom_kill ") and int(line.split()[1]) > 0
            for line in (directory / "memory.oom_control").read_text().splitlines()
        )
        return peak, oom
    except (OSError, ValueError):
        return None, False


__all__ = ["DockerRunner", "probe"]
