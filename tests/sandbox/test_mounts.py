"""A mount that appears below the grading root filesystem on the host never shows inside a box.

bwrap's --ro-bind is recursive: a bind mount left below the root filesystem (once: an assignment's
hidden tests) would be in every box. The bubblewrap runner refuses such a root, naming the mount,
and doctor reports it with the fix; Docker images are imported copies, so they are not affected.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.contract import JobSpec, Outcome, Runner
from sandbox.select import DEFAULT_ROOTFS, check_bwrap

ROOT = Path(__file__).resolve().parents[2]
SECRET = "HIDDEN-TEST-SECRET"


@pytest.fixture
def foreign_mount(tmp_path: Path, sandbox_ready: None) -> Iterator[Path]:
    hidden = tmp_path / "hidden-tests"
    hidden.mkdir()
    (hidden / "secret.txt").write_text(SECRET)
    target = DEFAULT_ROOTFS / "mnt" / f"leak-{uuid.uuid4().hex[:8]}"
    target.mkdir()
    try:
        subprocess.run(["mount", "--bind", str(hidden), str(target)], check=True)
        try:
            yield target
        finally:
            subprocess.run(["umount", str(target)], check=True)
    finally:
        target.rmdir()


@pytest.mark.bwrap
@pytest.mark.docker
def test_a_foreign_mount_below_the_root_is_refused_and_reported(
    runners: dict[str, Runner], foreign_mount: Path
) -> None:
    reader = JobSpec(command=("sh", "-c", f"cat /mnt/{foreign_mount.name}/secret.txt; ls /mnt"))
    refused = runners["bwrap"].run(reader)
    assert refused.outcome is Outcome.SANDBOX_ERROR and refused.error is not None
    assert str(foreign_mount) in refused.error and SECRET.encode() not in refused.stdout
    check = check_bwrap(DEFAULT_ROOTFS)
    assert not check.ok and str(foreign_mount) in check.detail and f"umount {foreign_mount}" in check.fix
    doctor = subprocess.run(
        [sys.executable, "-m", "sandbox", "doctor"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert str(foreign_mount) in doctor.stdout and "fix: unmount them" in doctor.stdout
    # Docker's image is a copy imported earlier: the host's mount is not in it.
    copied = runners["docker"].run(reader)
    assert copied.outcome is Outcome.COMPLETED and SECRET.encode() not in copied.stdout


@pytest.mark.bwrap
def test_the_root_is_usable_again_once_the_mount_is_gone(runners: dict[str, Runner], tmp_path: Path) -> None:
    hidden = tmp_path / "gone"
    hidden.mkdir()
    target = DEFAULT_ROOTFS / "mnt" / f"leak-{uuid.uuid4().hex[:8]}"
    target.mkdir()
    try:
        subprocess.run(["mount", "--bind", str(hidden), str(target)], check=True)
        try:
            assert runners["bwrap"].run(JobSpec(command=("true",))).outcome is Outcome.SANDBOX_ERROR
        finally:
            subprocess.run(["umount", str(target)], check=True)
    finally:
        target.rmdir()
    assert runners["bwrap"].run(JobSpec(command=("true",))).outcome is Outcome.COMPLETED


# Run in a mount namespace of its own, so that mounts by anything else on this host (other test
# runs, other workers' boxes) do not count.
COUNT_READS = """
import subprocess, sys
from pathlib import Path
from sandbox.bwrap.mounts import MountWatch

place = Path(sys.argv[1])
mount = lambda *args: subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", *args], check=True)
umount = lambda path: subprocess.run(["umount", str(path)], check=True)
watch = MountWatch()
for _ in range(50):
    assert watch.below(place) == []
reads = [watch.reads]
for _ in range(20):  # the runner's own mounts (work dirs) do not count as changes
    watch.own_change(lambda: mount(str(place)))
    watch.own_change(lambda: umount(place))
    assert watch.below(place) == []
reads.append(watch.reads)
mount(str(place))
(place / "inner").mkdir()
mount(str(place / "inner"))
found = watch.below(place)
reads.append(watch.reads)
umount(place / "inner")
umount(place)
assert watch.below(place) == []
print(reads, found)
"""


def test_the_mount_table_is_read_again_only_after_it_changed(tmp_path: Path) -> None:
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", COUNT_READS, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("]")[0] + "]" == "[1, 1, 2]"
    assert str(tmp_path / "inner") in result.stdout
