"""`grader sandbox doctor` and `grader sandbox run`: check the backends and try a job by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from sandbox.contract import BoxFile, JobSpec, Limits, Outcome
from sandbox.errors import SandboxUnavailable
from sandbox.select import (
    DEFAULT_IMAGE,
    DEFAULT_ROOTFS,
    cgroup_note,
    check_bwrap,
    check_docker,
    select_runner,
)


@click.group("sandbox")
def sandbox_group() -> None:
    """Run untrusted code in a box (Docker or bubblewrap)."""


@sandbox_group.command("doctor")
@click.option("--image", default=DEFAULT_IMAGE, show_default=True)
@click.option("--rootfs", type=click.Path(path_type=Path), default=DEFAULT_ROOTFS, show_default=True)
def doctor(image: str, rootfs: Path) -> None:
    """Check each backend on this host and say what works, what does not, and the fix."""
    working = 0
    for check in (check_bwrap(rootfs), check_docker(image)):
        mark = "ok " if check.ok else "NO "
        click.echo(f"[{mark}] {check.backend:<7} {check.detail}")
        if not check.ok:
            click.echo(f"          fix: {check.fix}")
        working += check.ok
    note = cgroup_note()
    if note is None:
        click.echo("[ok ] cgroups  per-job memory and pids limits for bubblewrap")
    else:
        click.echo(f"[NO ] cgroups  {note}")
    if not working:
        click.echo("no backend works: grading code is refused until one does", err=True)
        sys.exit(1)


@sandbox_group.command("run", context_settings={"ignore_unknown_options": False})
@click.option("--backend", type=click.Choice(["auto", "docker", "bwrap"]), default="auto", show_default=True)
@click.option(
    "--wall", type=float, default=Limits().wall_seconds, show_default=True, help="Wall-clock seconds."
)
@click.option("--cpu", type=int, default=Limits().cpu_seconds, show_default=True, help="CPU seconds.")
@click.option("--memory", type=int, default=Limits().memory_mb, show_default=True, help="Memory in MB.")
@click.option("--pids", type=int, default=Limits().pids, show_default=True, help="Processes.")
@click.option(
    "--output", type=int, default=Limits().output_bytes, show_default=True, help="Bytes per stream."
)
@click.option("--disk", type=int, default=Limits().disk_mb, show_default=True, help="Work dir size in MB.")
@click.option("--file", "files", multiple=True, help="LOCAL[:BOXPATH] to place in the box.")
@click.option("--collect", multiple=True, help="BOXPATH (relative to /box) to return.")
@click.option(
    "--stdin", "stdin_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None
)
@click.option("--image", default=DEFAULT_IMAGE, show_default=True)
@click.option("--rootfs", type=click.Path(path_type=Path), default=DEFAULT_ROOTFS, show_default=True)
@click.argument("command", nargs=-1, required=True)
def run(
    backend: str,
    wall: float,
    cpu: int,
    memory: int,
    pids: int,
    output: int,
    disk: int,
    files: tuple[str, ...],
    collect: tuple[str, ...],
    stdin_path: Path | None,
    image: str,
    rootfs: Path,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND in a box and print its RunResult as JSON (exit 1 only for a sandbox error)."""
    try:
        box_files = tuple(_box_file(spec) for spec in files)
        job = JobSpec(
            command=command,
            files=box_files,
            stdin=stdin_path.read_bytes() if stdin_path else b"",
            limits=Limits(
                wall_seconds=wall,
                cpu_seconds=cpu,
                memory_mb=memory,
                pids=pids,
                output_bytes=output,
                disk_mb=disk,
            ),
            collect=collect,
        )
    except (ValueError, OSError) as exc:
        raise click.UsageError(str(exc)) from None
    try:
        # One job: a warm container would only be made to be thrown away.
        runner = select_runner(backend, image=image, rootfs=rootfs, docker_warm_pool=0)
    except SandboxUnavailable as exc:
        click.echo(f"error: {exc}\nfix: {exc.fix}", err=True)
        sys.exit(1)
    result = runner.run(job)
    click.echo(json.dumps(result.to_json_dict(), indent=2))
    if result.outcome is Outcome.SANDBOX_ERROR:
        sys.exit(1)


def _box_file(spec: str) -> BoxFile:
    local, _, box_path = spec.partition(":")
    path = Path(local)
    if not path.is_file():
        raise ValueError(f"--file {local}: no such file")
    return BoxFile(box_path or path.name, path.read_bytes(), 0o755 if path.stat().st_mode & 0o111 else 0o644)
