"""The interactive channel (`runner.run(spec, serve=...)`) on both real backends.

The job's stdout lines are answered by `serve` on its stdin; `serve` may run jobs of its own; a
`serve` that raises is our error; the output cap and the wall clock hold in serve mode too.
"""

from __future__ import annotations

import time

from sandbox.contract import JobSpec, Limits, Outcome, Runner
from tests.sandbox.conftest import host_processes_with
from tests.sandbox.test_attacks import wait_until_gone

DOUBLER = (
    "import sys\n"
    "greeting = sys.stdin.readline()\n"
    "for n in range(5):\n"
    "    print('double', n, flush=True)\n"
    "    answer = int(sys.stdin.readline())\n"
    "    assert answer == 2 * n, answer\n"
    "print(greeting.strip(), 'done', end='')\n"
)


def doubling(asked: list[bytes]) -> object:
    def serve(line: bytes) -> bytes:
        asked.append(line)
        return b"%d\n" % (2 * int(line.split()[1]))

    return serve


def test_each_line_is_answered_on_stdin(runner: Runner) -> None:
    asked: list[bytes] = []
    result = runner.run(
        JobSpec(command=("python3", "-c", DOUBLER), stdin=b"hello\n"),
        serve=doubling(asked),  # type: ignore[arg-type]
    )
    assert (result.outcome, result.exit_code) == (Outcome.COMPLETED, 0), result
    assert asked == [b"double %d" % n for n in range(5)]
    assert result.stdout == b"hello done"  # only what followed the last newline


def test_serve_can_run_a_nested_job_on_the_same_runner(runner: Runner) -> None:
    def serve(line: bytes) -> bytes:
        nested = runner.run(JobSpec(command=("python3", "-c", f"print({int(line)} * 3)")))
        assert nested.outcome is Outcome.COMPLETED, nested
        return nested.stdout

    code = (
        "import sys\n"
        "for n in (1, 2):\n"
        "    print(n, flush=True)\n"
        "    print('got', sys.stdin.readline().strip(), file=sys.stderr)\n"
    )
    result = runner.run(JobSpec(command=("python3", "-c", code)), serve=serve)
    assert (result.outcome, result.stderr) == (Outcome.COMPLETED, b"got 3\ngot 6\n"), result
    again = runner.run(JobSpec(command=("sh", "-c", 'echo 5; read x; echo "$x" >&2')), serve=serve)
    assert (again.outcome, again.stderr) == (Outcome.COMPLETED, b"15\n")


def test_serve_raising_kills_the_box_and_is_a_sandbox_error(runner: Runner, marker: str) -> None:
    def serve(line: bytes) -> bytes:
        raise LookupError(f"no answer to {line!r}")

    code = f"import time\nprint('question', flush=True)\ntime.sleep(60)  # {marker}"
    started = time.monotonic()
    result = runner.run(JobSpec(command=("python3", "-c", code), limits=Limits(wall_seconds=30)), serve=serve)
    assert result.outcome is Outcome.SANDBOX_ERROR and result.outcome.retryable
    assert result.error is not None and "LookupError" in result.error and "no answer to" in result.error
    assert time.monotonic() - started < 10
    assert wait_until_gone(marker) == []


def test_a_line_never_ended_is_returned_as_stdout(runner: Runner) -> None:
    asked: list[bytes] = []
    result = runner.run(
        JobSpec(command=("sh", "-c", "printf 'no newline here'")),
        serve=lambda line: asked.append(line) or b"",  # type: ignore[func-returns-value]
    )
    assert (result.outcome, result.stdout, asked) == (Outcome.COMPLETED, b"no newline here", [])


def test_one_line_past_the_cap_is_an_output_limit(runner: Runner) -> None:
    asked: list[bytes] = []
    result = runner.run(
        JobSpec(command=("sh", "-c", "yes x | tr -d '\\n'"), limits=Limits(output_bytes=10_000)),
        serve=lambda line: asked.append(line) or b"",  # type: ignore[func-returns-value]
    )
    assert (result.outcome, result.output_truncated, asked) == (Outcome.OUTPUT_LIMIT, True, [])
    assert len(result.stdout) <= 10_000


def test_serve_time_counts_against_the_wall_clock(runner: Runner, marker: str) -> None:
    def slow(line: bytes) -> bytes:
        time.sleep(2.5)
        return b"late\n"

    code = f"import sys\nprint('question', flush=True)\nsys.stdin.readline()\nprint('answered')  # {marker}"
    started = time.monotonic()
    result = runner.run(JobSpec(command=("python3", "-c", code), limits=Limits(wall_seconds=1.5)), serve=slow)
    assert result.outcome is Outcome.TIMEOUT and b"answered" not in result.stdout
    assert 2.4 <= time.monotonic() - started < 6  # killed as soon as serve came back past the deadline
    assert wait_until_gone(marker) == []


def test_the_wall_clock_fires_while_the_job_waits_for_stdin(runner: Runner, marker: str) -> None:
    code = (
        f"import sys\nprint('question', flush=True)\nsys.stdin.readline()\nsys.stdin.readline()  # {marker}"
    )
    started = time.monotonic()
    result = runner.run(
        JobSpec(command=("python3", "-c", code), limits=Limits(wall_seconds=1.5)), serve=lambda _: b"one\n"
    )
    assert result.outcome is Outcome.TIMEOUT
    assert 1.4 <= time.monotonic() - started < 5
    assert host_processes_with(marker) == [] or wait_until_gone(marker) == []
