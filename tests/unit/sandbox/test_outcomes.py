"""decide_outcome, signal_name, image references and the serve line channel, without a box."""

from __future__ import annotations

import os
import signal

import pytest

from sandbox.channel import LineChannel, ServeFailed
from sandbox.contract import JobSpec, Observation, Outcome, decide_outcome, rootfs_dirname, signal_name


def exited(code: int) -> int:
    return code << 8


def died_of(sig: int) -> int:
    return sig


def test_a_real_wait_status_tells_an_exit_from_a_crash() -> None:
    exit_139 = decide_outcome(Observation(box_started=True, wait_status=exited(139)))
    segfault = decide_outcome(Observation(box_started=True, wait_status=died_of(signal.SIGSEGV)))
    assert (exit_139.outcome, exit_139.exit_code, exit_139.signal) == (Outcome.COMPLETED, 139, None)
    assert (segfault.outcome, segfault.exit_code, segfault.signal) == (Outcome.CRASHED, 139, 11)
    assert os.WIFSIGNALED(died_of(signal.SIGSEGV))  # the encoding the tests use is the kernel's


def test_with_only_an_exit_code_128_plus_n_reads_as_signal_n() -> None:
    verdict = decide_outcome(Observation(box_started=True, exit_code=139))
    assert (verdict.outcome, verdict.signal) == (Outcome.CRASHED, 11)
    assert decide_outcome(Observation(box_started=True, exit_code=3)).outcome is Outcome.COMPLETED


def test_our_kill_wins_then_setup_failure_then_oom_then_cpu() -> None:
    killed = Observation(box_started=False, killed_for=Outcome.TIMEOUT, exit_code=137)
    assert decide_outcome(killed).outcome is Outcome.TIMEOUT
    not_started = decide_outcome(
        Observation(box_started=False, exit_code=1, setup_detail="bwrap: no /proc\n")
    )
    assert not_started.outcome is Outcome.SANDBOX_ERROR and not_started.error == (
        "the box did not start: bwrap: no /proc"
    )
    oom = Observation(box_started=True, oom_killed=True, wait_status=died_of(signal.SIGKILL))
    assert decide_outcome(oom).outcome is Outcome.MEMORY_LIMIT
    xcpu = Observation(box_started=True, wait_status=died_of(signal.SIGXCPU))
    assert decide_outcome(xcpu).outcome is Outcome.TIMEOUT


def test_a_sigkill_is_the_cpu_limit_only_when_the_cpu_was_spent() -> None:
    def verdict(cpu: float) -> Outcome:
        seen = Observation(
            box_started=True, wait_status=died_of(signal.SIGKILL), cpu_seconds=cpu, cpu_limit=2
        )
        return decide_outcome(seen).outcome

    assert (verdict(3.01), verdict(0.1)) == (Outcome.TIMEOUT, Outcome.CRASHED)


def test_outcome_is_closed_and_only_sandbox_errors_retry() -> None:
    assert {o.value for o in Outcome} == {
        "completed",
        "crashed",
        "timeout",
        "memory_limit",
        "output_limit",
        "killed",
        "sandbox_error",
    }
    assert [o for o in Outcome if o.retryable] == [Outcome.SANDBOX_ERROR]


def test_signal_names() -> None:
    assert signal_name(11) == "SIGSEGV (segmentation fault)"
    assert signal_name(6) == "SIGABRT (aborted)"
    assert signal_name(signal.SIGRTMIN + 2) == "SIGRTMIN+2 (real-time signal 2)"
    assert signal_name(200) == "signal 200"


def test_image_references_and_their_root_filesystem_folders() -> None:
    assert rootfs_dirname("microcred-python:bookworm") == "python-bookworm"
    assert rootfs_dirname("course-x:2024.1") == "course-x-2024.1"
    assert JobSpec(command=("true",), image="microcred-setup-adder:0123abcd").image
    for bad in ("Python:3", "registry.io/python:3", "python", "python:", "../x:y", "a:b/c", "microcred-:x"):
        with pytest.raises(ValueError):
            JobSpec(command=("true",), image=bad)


def test_the_line_channel_answers_whole_lines_and_caps_them() -> None:
    seen: list[bytes] = []

    def shout(line: bytes) -> bytes:
        seen.append(line)
        return line.upper()

    channel = LineChannel(shout, 8)
    assert not channel.add(b"ab\ncd")
    assert [channel.answer(line) for line in channel.lines()] == [b"AB"]
    assert not channel.add(b"e\n")
    assert [channel.answer(line) for line in channel.lines()] == [b"CDE"]
    assert not channel.add(b"tail") and channel.rest == b"tail" and seen == [b"ab", b"cde"]
    assert channel.add(b"12345")  # the open line is now 9 bytes
    assert LineChannel(bytes, 4).add(b"123456\nx")  # a complete line past the cap counts too


def test_serve_raising_or_answering_nonsense_is_a_serve_failure() -> None:
    def broken(line: bytes) -> bytes:
        raise KeyError("no such question")

    with pytest.raises(ServeFailed, match="serve raised KeyError"):
        LineChannel(broken, 10).answer(b"q")
    with pytest.raises(ServeFailed, match="must return bytes"):
        LineChannel(lambda line: "text", 10).answer(b"q")  # type: ignore[arg-type,return-value]
