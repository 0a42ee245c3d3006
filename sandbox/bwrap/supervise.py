"""Supervision of a running bubblewrap box: one poll loop per job, in the calling thread.

It feeds stdin (and, in serve mode, the answers to the job's stdout lines), drains stdout and
stderr up to their caps, watches the wall clock and reaps bwrap's monitor, with no thread per
stream or timer (each costs a scheduling round on a busy host). Past the deadline or an output cap
the box is killed through `stop`. Time spent inside `serve` counts against the wall clock: the
deadline is checked again as soon as it returns.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.channel import LineChannel, ServeFailed
from sandbox.contract import Outcome, Serve

CHUNK = 65536
DRAIN_SECONDS = 2.0  # after the box is gone, a pipe still open is held by nothing we must wait for


@dataclass
class Supervised:
    status: int  # bwrap's monitor's wait status
    usage: resource.struct_rusage  # the monitor's, counting the init (and the job) it reaped
    stdout: bytes
    stderr: bytes
    truncated: bool
    serve_error: ServeFailed | None = None


def supervise(
    process: subprocess.Popen[bytes],
    *,
    stdin: bytes,
    caps: tuple[int, int],
    deadline: float,
    stop: Callable[[Outcome], None],
    serve: Serve | None = None,
) -> Supervised:
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    stdin_stream = process.stdin
    pidfd = os.pidfd_open(process.pid)
    selector = selectors.DefaultSelector()
    out_fd, err_fd, stdin_fd = process.stdout.fileno(), process.stderr.fileno(), process.stdin.fileno()
    kept: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    outputs: dict[int, bytes] = {}
    sizes = dict.fromkeys(kept, 0)
    limits = {out_fd: caps[0], err_fd: caps[1]}
    channel = LineChannel(serve, caps[0]) if serve is not None else None
    truncated = False
    killed = False
    serve_error: ServeFailed | None = None
    pending = bytearray(stdin)
    stdin_open = True
    writing = False

    def kill(why: Outcome) -> None:
        nonlocal killed
        killed = True
        stop(why)

    def close_stdin() -> None:
        nonlocal stdin_open, writing
        if writing:
            selector.unregister(stdin_fd)
            writing = False
        stdin_open = False
        pending.clear()
        with contextlib.suppress(OSError):
            stdin_stream.close()

    def want_writes() -> None:
        nonlocal writing
        if stdin_open and pending and not writing:
            selector.register(stdin_fd, selectors.EVENT_WRITE)
            writing = True

    try:
        for fd in kept:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        selector.register(pidfd, selectors.EVENT_READ)
        os.set_blocking(stdin_fd, False)
        if pending:
            want_writes()
        elif channel is None:
            close_stdin()  # nothing to send and nothing will be: the job reads end-of-file
        reaped: tuple[int, resource.struct_rusage] | None = None
        drain_until = float("inf")
        while kept or reaped is None:
            now = time.monotonic()
            if reaped is None and now >= deadline and not killed:
                kill(Outcome.TIMEOUT)
            if now >= drain_until:
                break
            until = drain_until if killed or reaped is not None else min(deadline, drain_until)
            timeout = None if until == float("inf") else max(until - now, 0.001)
            for key, _ in selector.select(timeout):
                fd = int(key.fd)
                if fd == pidfd:
                    selector.unregister(pidfd)
                    _, status, usage = os.wait4(process.pid, 0)
                    reaped = (status, usage)
                    drain_until = time.monotonic() + DRAIN_SECONDS
                    if stdin_open:
                        close_stdin()
                elif fd == stdin_fd:
                    if not writing:
                        continue  # unregistered earlier in this round
                    try:
                        del pending[: os.write(fd, pending[:CHUNK])]
                    except BlockingIOError:
                        continue
                    except OSError:
                        close_stdin()  # the job closed its input; that is its business
                        continue
                    if not pending:
                        if channel is None:
                            close_stdin()
                        else:
                            selector.unregister(stdin_fd)  # stays open for the next answer
                            writing = False
                elif fd in kept:
                    try:
                        chunk = os.read(fd, CHUNK)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        selector.unregister(fd)
                        outputs[fd] = b"".join(kept.pop(fd))
                        continue
                    if channel is not None and fd == out_fd:
                        if channel.add(chunk):
                            truncated = True
                            kill(Outcome.OUTPUT_LIMIT)
                            selector.unregister(fd)
                            kept.pop(fd)
                            continue
                        if killed:
                            continue  # a box being killed is not answered any more
                        try:
                            for line in channel.lines():
                                pending += channel.answer(line)
                                if time.monotonic() >= deadline:
                                    kill(Outcome.TIMEOUT)
                                    break
                        except ServeFailed as exc:
                            serve_error = exc
                            kill(Outcome.SANDBOX_ERROR)
                        if stdin_open and not killed:
                            want_writes()
                        continue
                    room = limits[fd] - sizes[fd]
                    if room > 0:
                        kept[fd].append(chunk[:room])
                    sizes[fd] += len(chunk)
                    if sizes[fd] > limits[fd]:
                        truncated = True
                        kill(Outcome.OUTPUT_LIMIT)
                        selector.unregister(fd)
                        outputs[fd] = b"".join(kept.pop(fd))
        assert reaped is not None
        for fd, parts in kept.items():
            outputs[fd] = b"".join(parts)
        stdout = channel.rest[: caps[0]] if channel is not None else outputs.get(out_fd, b"")
        return Supervised(reaped[0], reaped[1], stdout, outputs.get(err_fd, b""), truncated, serve_error)
    finally:
        selector.close()
        os.close(pidfd)
        for stream in (process.stdin, process.stdout, process.stderr):
            with contextlib.suppress(OSError):
                stream.close()
