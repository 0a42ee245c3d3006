"""The contract's own rules, without a box: limits, paths, specs, JSON, and backend selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.contract import BoxFile, JobSpec, Limits, Outcome, RunResult
from sandbox.errors import SandboxUnavailable
from sandbox.select import select_runner


def test_only_sandbox_errors_are_retryable() -> None:
    assert [o for o in Outcome if o.retryable] == [Outcome.SANDBOX_ERROR]
    assert Outcome("memory_limit") is Outcome.MEMORY_LIMIT and str(Outcome.TIMEOUT) == "timeout"


@pytest.mark.parametrize(
    "bad",
    [
        {"wall_seconds": 0},
        {"wall_seconds": -1},
        {"cpu_seconds": 0},
        {"memory_mb": 10**9},
        {"pids": 0},
        {"output_bytes": 0},
        {"disk_mb": 0},
        {"nofile": True},
        {"collect_bytes": -1},
    ],
)
def test_limits_refuse_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        Limits(**bad)  # type: ignore[arg-type]


def test_default_limits() -> None:
    limits = Limits()
    assert (limits.wall_seconds, limits.cpu_seconds, limits.memory_mb, limits.pids) == (30, 20, 512, 64)
    assert (limits.output_bytes, limits.file_size_mb, limits.disk_mb, limits.nofile) == (
        1_000_000,
        16,
        64,
        256,
    )


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", "", "a/\x00b"])
def test_box_files_stay_inside_the_box(path: str) -> None:
    with pytest.raises(ValueError):
        BoxFile(path, b"")


def test_box_files_cannot_be_setuid() -> None:
    with pytest.raises(ValueError):
        BoxFile("x", b"", 0o4755)


def test_job_specs_refuse_bad_commands_env_and_collect() -> None:
    with pytest.raises(ValueError):
        JobSpec(command=())
    with pytest.raises(ValueError):
        JobSpec(command=("a\x00b",))
    with pytest.raises(ValueError):
        JobSpec(command=("true",), env={"A=B": "x"})
    with pytest.raises(ValueError):
        JobSpec(command=("true",), collect=("/etc/shadow",))
    spec = JobSpec(command=("true",), env={"PATH": "/x", "A": "1"})
    assert spec.box_env()["A"] == "1" and spec.box_env()["HOME"] == "/tmp"


def test_run_result_json_decodes_bytes_with_replacement() -> None:
    result = RunResult(
        outcome=Outcome.OUTPUT_LIMIT,
        exit_code=None,
        signal=9,
        wall_seconds=1.23456,
        cpu_seconds=None,
        peak_memory_bytes=None,
        stdout=b"ok\xff",
        stderr=b"",
        output_truncated=True,
        files={"r.bin": b"\xfe"},
        missing_files=("x",),
        error=None,
    )
    data = result.to_json_dict()
    assert data["stdout"] == "ok\ufffd" and data["stdout_bytes"] == 3
    assert data["files"] == {"r.bin": {"size": 1, "content": "\ufffd"}} and data["missing_files"] == ["x"]
    assert data["outcome"] == "output_limit" and data["wall_seconds"] == 1.2346


def test_select_runner_refuses_unknown_or_broken_backends(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable) as unknown:
        select_runner("chroot")
    assert unknown.value.fix
    with pytest.raises(SandboxUnavailable) as broken:
        select_runner("auto", image="microcred-absent:none", rootfs=tmp_path)
    assert "bwrap" in str(broken.value) and "docker" in str(broken.value) and broken.value.fix
