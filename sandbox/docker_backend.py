"""The Docker backend: one locked-down container per job, used once, driven only through the Docker API.

The container's first process is the box's init (sandbox.boxinit), running as the job's user
(65534) but non-dumpable and the container's pid 1, so the job can neither trace nor signal it. It
starts before its job is known, attached to our stream: the warm pool (sandbox.warm_pool) keeps a
few such containers made and started per image and set of limits (`BoxShape`), and a job is handed
over that one stream: the files mark, the job's argv and environment, the files as a tar, then the
job's stdin. The files come back as a tar on stderr after every process of the job is dead, between
the files mark and the mark again, while the work dir stays a size-capped tmpfs (Docker refuses
`put_archive` on a read-only root, and `get_archive` cannot see into a tmpfs); the init then waits
while the worker reads the container's cgroup, and the container is removed off the job's path. A
job whose shape has no ready container gets one made on its path (cold). No network, read-only
root, tmpfs work dir, /tmp and /dev/shm, user nobody, every capability dropped, no-new-privileges,
the project's own seccomp profile (sandbox.seccomp, the same rules as the bubblewrap filter), pids
limit, memory equal to memory+swap, one CPU, rlimits for open files, file size, CPU time and core
dumps; the wall clock is enforced here and the container is always removed. Setup images
(sandbox.images) are built here too. This is the only module that imports `docker`.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import selectors
import socket
import struct
import tarfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, ImageNotFound
from docker.types import LogConfig, Ulimit

from sandbox.boxinit import (
    FILES_MARK_LENGTH,
    SETUP_SOURCE,
    Report,
    job_message,
    parse_report_line,
    waiting_init_argv,
)
from sandbox.channel import LineChannel, ServeFailed
from sandbox.contract import (
    WORKDIR,
    JobSpec,
    Observation,
    Outcome,
    RunResult,
    Serve,
    decide_outcome,
    sandbox_error,
)
from sandbox.seccomp import arch_guard, docker_profile
from sandbox.select import BUILD_HINT
from sandbox.warm_pool import WarmPool

BOX_USER = "65534:65534"
# The box's stderr after the job: the files mark (a second secret, handed to the init on the first
# line of stdin, so in no argv or environment the job can read), the init's report, the tar, the
# mark again.
EXIT_WAIT_SECONDS = 10.0
COLLECT_SECONDS = 60.0  # returning the files is ours: it does not count against the job's wall clock
CHUNK = 64 * 1024
MAX_WARM_KEYS = 4  # images and sets of limits that keep a warm container
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
    the files mark, the init's report line and the tar of the returned files (capped on its own;
    past the cap it is cut short, which loses files, not the job's output). A mark split across
    chunks is held back until whole."""

    def __init__(self, job_limit: int, mark: bytes, files_limit: int) -> None:
        self.job = _Buffer(job_limit)
        self.mark = mark
        self.files: _Buffer | None = None
        self.files_started: float | None = None  # when the mark came: the job was over by then
        self.ended = False  # the mark came again after the tar: the init has said everything
        self._files_limit = files_limit
        self._held = b""

    def add(self, chunk: bytes) -> bool:
        """Keep what fits; True when the job's own stderr went past its limit."""
        if self.files is not None:
            self._add_files(chunk)
            return False
        data = self._held + chunk
        at = data.find(self.mark)
        if at >= 0:
            self._held = b""
            self.files = _Buffer(self._files_limit)
            self.files_started = time.monotonic()
            self._add_files(data[at + len(self.mark) :])
            return self.job.add(data[:at])
        keep = min(len(data), len(self.mark) - 1)
        self._held = data[len(data) - keep :]
        return self.job.add(data[: len(data) - keep])

    def _add_files(self, chunk: bytes) -> None:
        """The report and the tar, up to the mark that ends them (the job cannot know the mark, so
        no collected file can hold it). Past its cap the tar is dropped but still scanned."""
        if self.ended or self.files is None:
            return
        data = self._held + chunk
        at = data.find(self.mark)
        if at >= 0:
            self._held = b""
            self.ended = True
            self.files.add(data[:at])
            return
        keep = min(len(data), len(self.mark) - 1)
        self._held = data[len(data) - keep :]
        self.files.add(data[: len(data) - keep])

    def finish(self) -> bool:
        """The stream ended: what was held back is the job's. True when the job's part is past its limit."""
        held, self._held = self._held, b""
        if self.files is not None:
            return False  # held back from a tar cut short: not the job's output
        return self.job.add(held) if held else False

    def report_and_tar(self) -> tuple[Report | None, bytes]:
        """The init's report (None if it never wrote one) and the tar that follows it."""
        if self.files is None:
            return None, b""
        line, newline, tar = self.files.value().partition(b"\n")
        return (parse_report_line(line), tar) if newline else (None, b"")


@dataclass(frozen=True)
class BoxShape:
    """What a container fixes when it is made: its image and the limits of its cgroup, tmpfs and
    ulimits. The warm pool is keyed by it; the wall clock and the output and file caps are the
    worker's, so jobs that differ only in those share warm boxes."""

    image: str
    memory_mb: int
    pids: int
    disk_mb: int
    nofile: int
    file_size_mb: int
    cpu_seconds: int

    @classmethod
    def of(cls, spec: JobSpec, default_image: str) -> BoxShape:
        limits = spec.limits
        return cls(
            image=spec.image or default_image,
            memory_mb=limits.memory_mb,
            pids=limits.pids,
            disk_mb=limits.disk_mb,
            nofile=limits.nofile,
            file_size_mb=limits.file_size_mb,
            cpu_seconds=limits.cpu_seconds,
        )


@dataclass
class _Box:
    """A started container whose init waits for its job on the attached stream."""

    container: Any
    stream: Any  # docker's socket wrapper: held so the connection lives as long as the box
    raw: socket.socket

    @property
    def id(self) -> str:
        return str(self.container.id)

    def idle(self) -> bool:
        """Still waiting, untouched: the stream is open and nothing came on it (a box whose init
        failed, or whose container the daemon lost, has written or closed its stream)."""
        if self.raw.fileno() < 0:
            return False
        with contextlib.suppress(OSError, ValueError):
            readable, _, _ = select.select([self.raw], [], [], 0)
            return not readable
        return False


class DockerRunner:
    name = "docker"

    def __init__(self, image: str, *, client: Any = None, cpus: float = 1.0, warm: int = 2) -> None:
        self.image = image
        self.cpus = cpus
        self._client = client
        # Making a box costs ~0.3 s of the daemon and removing one ~0.1 s; the pool keeps `warm`
        # started, never-used boxes per shape (image and limits) and removes used ones, off the
        # job's path. Each job still gets a box of its own, used once.
        self.warm = warm
        self.pool: WarmPool[BoxShape, _Box] = WarmPool(
            self._make_box, _discard_box, size=warm, max_keys=MAX_WARM_KEYS, name="docker-warm-pool"
        )
        # Every container we make carries our owner tag, so a worker that died without cleaning up
        # (SIGKILL, OOM) has its boxes removed by the next runner on the same host.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"

    def close(self) -> None:
        """Remove the warm and the used boxes; a box being made is waited for. Also run at exit."""
        self.pool.close()

    def warm_up(self, spec: JobSpec, timeout: float = 60.0) -> bool:
        """Have the pool keep boxes of `spec`'s shape and wait until they are ready (False on
        timeout): for a worker that knows its jobs before the first one, and for benches."""
        shape = BoxShape.of(spec, self.image)
        self.pool.want(shape)
        return self.pool.wait_ready(shape, timeout=timeout)

    def _acquire(self, spec: JobSpec) -> _Box:
        shape = BoxShape.of(spec, self.image)
        while (box := self.pool.take(shape)) is not None:
            if box.idle():
                return box
            self.pool.discard(box)
        return self._make_box(shape)  # cold: no ready box of this shape (the pool now makes them)

    def _make_box(self, shape: BoxShape) -> _Box:
        container = self._create(shape)
        try:
            # Attached before it starts, so not a byte of the box's output is missed.
            stream = self.client.api.attach_socket(
                container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            box = _Box(container, stream, _raw_socket(stream))
            container.start()
        except BaseException:
            _remove(container)
            raise
        return box

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
            self._client = _client()
            with contextlib.suppress(DockerException):
                self.sweep_orphans()
        return self._client

    def run(self, spec: JobSpec, *, serve: Serve | None = None) -> RunResult:
        started = time.monotonic()
        box = None
        try:
            box = self._acquire(spec)
            return self._execute(box, spec, started, serve)
        except ImageNotFound:
            image = spec.image or self.image
            message = f"image {image} is missing: {BUILD_HINT}, or sandbox.images.build_setup_image"
            return sandbox_error(self.name, message, time.monotonic() - started)
        except (DockerException, OSError) as exc:
            return sandbox_error(self.name, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
        finally:
            if box is not None:
                # Every process of the job is dead or dies with the box; removing it off the
                # critical path saves a daemon round trip per job.
                self.pool.discard(box)

    def _create(self, shape: BoxShape) -> Any:
        # exec: like the bubblewrap box, where a job may run a script it was given or built
        scratch = f"rw,exec,nosuid,nodev,size={shape.disk_mb}m"
        memory = f"{shape.memory_mb}m"
        return self.client.containers.create(
            shape.image,
            command=waiting_init_argv(),
            user=BOX_USER,
            working_dir=WORKDIR,
            environment={},  # the job's environment is handed to the init with the job
            stdin_open=True,  # and, not detached, stdin_once: the job reads EOF when we close it
            network_mode="none",
            read_only=True,
            tmpfs={WORKDIR: f"{scratch},mode=0700,uid=65534,gid=65534", "/tmp": f"{scratch},mode=1777"},
            shm_size=shape.disk_mb * 1024 * 1024,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges", f"seccomp={docker_profile()}"],
            pids_limit=shape.pids,
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(self.cpus * 1e9),
            ipc_mode="private",
            ulimits=[
                Ulimit(name="nofile", soft=shape.nofile, hard=shape.nofile),
                Ulimit(
                    name="fsize",
                    soft=shape.file_size_mb * 1024 * 1024,
                    hard=shape.file_size_mb * 1024 * 1024,
                ),
                Ulimit(name="core", soft=0, hard=0),
                Ulimit(name="cpu", soft=shape.cpu_seconds, hard=shape.cpu_seconds + 1),
            ],
            log_config=LogConfig(type="json-file", config={"max-size": "64k"}),
            labels={LABEL: "job", OWNER_LABEL: self.owner},
        )

    def _execute(self, box: _Box, spec: JobSpec, started: float, serve: Serve | None) -> RunResult:
        limits = spec.limits
        container = box.container
        # A warm box's init has used a little CPU before its job: only the job's counts.
        cpu_before = _cgroup_cpu(box.id)
        archive = _tar(spec) if spec.files else b""
        nonce = uuid.uuid4().hex
        files_mark = uuid.uuid4().hex.encode()
        assert len(files_mark) == FILES_MARK_LENGTH
        message = job_message(
            spec.command,
            spec.box_env(),
            start_mark=nonce,
            tar_size=len(archive),
            guard=arch_guard(),
            collect=spec.collect,
        )
        raw = box.raw
        out = _Buffer(limits.output_bytes)
        files_cap = len(spec.collect) * (limits.collect_bytes + 1024) + 10240
        err = _StderrAndFiles(limits.output_bytes + len(nonce), files_mark, files_cap)
        reason: list[Outcome] = []
        at_kill: list[tuple[float | None, tuple[int | None, bool]]] = []

        def kill(why: Outcome) -> None:
            if not reason:
                reason.append(why)
                # The box's cgroup goes with the container: read what it counted first.
                at_kill.append((_cgroup_cpu(box.id), _cgroup_memory(box.id)))
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)  # a job blocked writing to a full socket answers kill slowly
            with contextlib.suppress(DockerException):
                container.kill()

        # The job and its files arrive on the init's stdin, ahead of the job's own input: the init
        # reads exactly the mark, the message and the archive, and the job the rest.
        stream = _ExecStream(raw, out, err, LineChannel(serve, limits.output_bytes) if serve else None)
        try:
            stream.pump(
                files_mark + b"\n" + message + archive + spec.stdin, started + limits.wall_seconds, kill
            )
        finally:
            with contextlib.suppress(OSError):
                raw.close()
        if stream.finish() | err.finish():
            kill(Outcome.OUTPUT_LIMIT)  # the job's last bytes, held back in case they began the mark
        wall = time.monotonic() - started
        if stream.serve_error is not None:
            return sandbox_error(self.name, str(stream.serve_error), wall)
        report, tar = err.report_and_tar()
        cpu, (peak, oom) = at_kill[0] if at_kill else (_cgroup_cpu(box.id), _cgroup_memory(box.id))
        if cpu is not None and cpu_before is not None:
            cpu = max(0.0, cpu - cpu_before)
        exit_code = None
        if report is None:
            # No report: the init itself was killed (by us or the OOM killer); the box's exit
            # code is all there is.
            exit_code = _exit_code(container)
            if exit_code == 137 and not reason and not oom:
                oom = _oom_killed_state(container)  # the cgroup was not visible from here (remote daemon)
        if cpu is None and report is not None:
            cpu = report.cpu_seconds
        stderr = err.job.value()
        started_mark = stderr.startswith(nonce.encode())
        verdict = decide_outcome(
            Observation(
                box_started=started_mark,
                killed_for=reason[0] if reason else None,
                oom_killed=oom,
                wait_status=report.wait_status if report is not None else None,
                exit_code=exit_code,
                cpu_seconds=cpu,
                cpu_limit=limits.cpu_seconds,
                setup_detail=stderr.decode(errors="replace"),
            )
        )
        if verdict.outcome is Outcome.SANDBOX_ERROR:
            return sandbox_error(self.name, verdict.error or "the box failed", wall)
        stderr = stderr.removeprefix(nonce.encode())
        err_truncated = len(stderr) > limits.output_bytes or err.job.overflowed
        stderr = stderr[: limits.output_bytes]
        files = _untar(tar, spec.collect, limits.collect_bytes) if not reason else {}
        missing = [relative for relative in spec.collect if relative not in files]
        return RunResult(
            outcome=verdict.outcome,
            exit_code=verdict.exit_code,
            signal=verdict.signal,
            wall_seconds=wall,
            cpu_seconds=cpu,
            peak_memory_bytes=peak,
            stdout=stream.stdout(),
            stderr=stderr,
            output_truncated=out.overflowed or err_truncated or stream.line_overflowed,
            files=files,
            missing_files=tuple(missing),
            backend=self.name,
        )

    def build_image(
        self,
        base_reference: str,
        reference: str,
        files: Mapping[str, bytes],
        setup_command: Sequence[str],
        *,
        timeout: float,
        network: bool,
    ) -> tuple[str, str]:
        """A container of `base_reference` with `files` in /autograder/source runs `setup_command` as
        root, then is committed as `reference`: ("exists" | "built" | "failed", the log)."""
        client = self.client
        with contextlib.suppress(ImageNotFound):
            client.images.get(reference)
            return "exists", ""
        try:
            client.images.get(base_reference)
        except ImageNotFound:
            return "failed", f"base image {base_reference} is missing: {BUILD_HINT}"
        container = client.containers.create(
            base_reference,
            command=["sh", "-c", BUILD_SCRIPT, "setup", *setup_command],
            user="0:0",
            working_dir="/autograder/source",
            environment={
                "HOME": "/root",
                "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            },
            network_mode="bridge" if network else "none",
            labels={LABEL: "build", OWNER_LABEL: self.owner},
        )
        try:
            client.api.put_archive(container.id, WORKDIR, _setup_tar(files))
            container.start()
            try:
                status = container.wait(timeout=timeout)
            except Exception as exc:  # the daemon's wait timed out (requests raises its own types)
                with contextlib.suppress(DockerException):
                    container.kill()
                log = container.logs().decode(errors="replace")
                return (
                    "failed",
                    f"{log}\nthe setup did not finish within {timeout:g} s ({type(exc).__name__})",
                )
            log = container.logs().decode(errors="replace")
            if status.get("StatusCode") != 0:
                return "failed", f"{log}\nthe setup exited with status {status.get('StatusCode')}"
            repository, _, tag = reference.partition(":")
            with contextlib.suppress(ImageNotFound):
                client.images.get(reference)
                return "exists", log  # another worker built it meanwhile: theirs stands
            container.commit(
                repository=repository,
                tag=tag,
                changes=[
                    f"USER {BOX_USER}",
                    f"WORKDIR {WORKDIR}",
                    'CMD ["sleep", "infinity"]',
                    f"LABEL microcred.setup-of={base_reference}",
                ],
            )
            return "built", log
        finally:
            _remove(container)


# Run as root in a container of the base image at build time: the setup, then what it left in
# /autograder/source (really /box/autograder/source, which is a tmpfs at grading time) moves into
# the image at SETUP_SOURCE, and /box is emptied.
BUILD_SCRIPT = (
    '"$@" || exit $?; '
    f"mkdir -p {SETUP_SOURCE} && cp -a /box/autograder/source/. {SETUP_SOURCE}/ && "
    "rm -rf /box/* /box/.[!.]* /tmp/* 2>/dev/null; exit 0"
)


def _client() -> Any:
    client = docker.from_env(timeout=60)
    # Requests would read proxy settings from os.environ on every call, from our background
    # threads too, while another thread may change the environment: the daemon is local.
    client.api.trust_env = False
    return client


def _setup_tar(files: Mapping[str, bytes]) -> bytes:
    """`files` under autograder/source/, for put_archive into the build container's /box."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directories: set[str] = set()
        for relative, content in sorted(files.items()):
            path = f"autograder/source/{relative}"
            parts = path.split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    archive.addfile(info)
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), 0o755
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class _EndMark:
    """Finds the mark that ends a stream, holding back a tail that could be its beginning."""

    def __init__(self, mark: bytes) -> None:
        self.mark = mark
        self.ended = False
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        """What of `chunk` (and of what was held back) is the stream's own."""
        if self.ended:
            return b""
        data = self._held + chunk
        at = data.find(self.mark)
        if at >= 0:
            self._held, self.ended = b"", True
            return data[:at]
        # Only a tail that begins the mark: a serve line's newline is never held back (the job
        # waits for its answer), since the mark is hex.
        keep = next(
            (k for k in range(min(len(data), len(self.mark) - 1), 0, -1) if data.endswith(self.mark[:k])), 0
        )
        self._held = data[len(data) - keep :]
        return data[: len(data) - keep]

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held


class _ExecStream:
    """The box's one attached socket, both ways, from one poll loop: stdin (and serve's answers) out,
    Docker's multiplexed stdout and stderr (8-byte frame headers) in, until the init has ended both
    with the files mark, the stream closes (the box was killed) or the deadline (the wall clock;
    returning the files has its own budget once their mark has come) passes."""

    def __init__(
        self, raw: socket.socket, out: _Buffer, err: _StderrAndFiles, channel: LineChannel | None
    ) -> None:
        self.raw = raw
        self.out = out
        self.err = err
        self.channel = channel
        self.serve_error: ServeFailed | None = None
        self.line_overflowed = False
        self.stdout_end = _EndMark(err.mark)
        self._inbound = bytearray()
        self._stream = 0
        self._left = 0  # bytes of the current frame still to come

    def stdout(self) -> bytes:
        return self.channel.rest[: self.out.limit] if self.channel is not None else self.out.value()

    def finish(self) -> bool:
        """The stream ended without its mark: what was held back is the job's. True past the cap."""
        held = self.stdout_end.flush()
        if not held:
            return False
        if self.channel is None:
            return self.out.add(held)
        overflowed = self.channel.add(held)
        self.line_overflowed = self.line_overflowed or overflowed
        return overflowed

    def pump(self, data: bytes, deadline: float, kill: Callable[[Outcome], None]) -> None:
        pending = bytearray(data)
        raw = self.raw
        raw.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(raw, selectors.EVENT_READ | selectors.EVENT_WRITE)
        writing = True
        try:
            while True:
                files_started = self.err.files_started
                until = deadline if files_started is None else max(deadline, files_started + COLLECT_SECONDS)
                remaining = until - time.monotonic()
                if remaining <= 0:
                    kill(Outcome.TIMEOUT)
                    return
                for _, events in selector.select(remaining):
                    if events & selectors.EVENT_WRITE and pending:
                        try:
                            del pending[: raw.send(pending[:CHUNK])]
                        except BlockingIOError:
                            pass
                        except OSError:
                            pending.clear()  # the job closed its input or is already gone
                    if events & selectors.EVENT_READ:
                        try:
                            chunk = raw.recv(CHUNK)
                        except BlockingIOError:
                            continue
                        except OSError:
                            return  # the stream broke because the box was killed
                        if not chunk:
                            return
                        answers, why = self._take(chunk, deadline)
                        if why is not None:
                            kill(why)
                            return
                        if self.err.ended and self.stdout_end.ended:
                            return  # the init's last word: the job's output and its files are in
                        pending += answers
                if not pending and writing:
                    if self.channel is None:
                        with contextlib.suppress(OSError):
                            raw.shutdown(socket.SHUT_WR)  # the job reads end-of-file
                    selector.modify(raw, selectors.EVENT_READ)
                    writing = False
                elif pending and not writing:
                    selector.modify(raw, selectors.EVENT_READ | selectors.EVENT_WRITE)
                    writing = True
        finally:
            selector.close()

    def _take(self, chunk: bytes, deadline: float) -> tuple[bytes, Outcome | None]:
        """Split frames; (answers for the job's stdin, why to kill the box or None)."""
        self._inbound += chunk
        answers = bytearray()
        while self._inbound:
            if self._left == 0:
                if len(self._inbound) < 8:
                    break
                self._stream, self._left = self._inbound[0], struct.unpack(">I", self._inbound[4:8])[0]
                del self._inbound[:8]
                continue
            piece = bytes(self._inbound[: self._left])
            del self._inbound[: len(piece)]
            self._left -= len(piece)
            if self._stream == 2:
                if self.err.add(piece):
                    return bytes(answers), Outcome.OUTPUT_LIMIT
                continue
            piece = self.stdout_end.feed(piece)
            if not piece:
                continue
            if self.channel is None:
                if self.out.add(piece):
                    return bytes(answers), Outcome.OUTPUT_LIMIT
            else:
                if self.channel.add(piece):
                    self.line_overflowed = True
                    return bytes(answers), Outcome.OUTPUT_LIMIT
                try:
                    for line in self.channel.lines():
                        answers += self.channel.answer(line)
                        if time.monotonic() >= deadline:
                            return bytes(answers), Outcome.TIMEOUT
                except ServeFailed as exc:
                    self.serve_error = exc
                    return bytes(answers), Outcome.SANDBOX_ERROR
        return bytes(answers), None


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


def _discard_box(box: _Box) -> None:
    with contextlib.suppress(OSError):
        box.raw.close()
    _remove(box.container)


def _exit_code(container: Any) -> int | None:
    """The box's exit code once it has stopped (its init is gone, so it stops at once)."""
    try:
        code = container.wait(timeout=EXIT_WAIT_SECONDS).get("StatusCode")
    except Exception:  # the daemon's wait timed out (requests raises its own types)
        return None
    return code if isinstance(code, int) else None


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
