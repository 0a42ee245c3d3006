"""Setup images for bubblewrap: a copy of a root filesystem with a course team's setup step run in it.

The base folder is copied (`cp -a`, one file system only, so a foreign mount below it is not
copied either) to a temporary name next to it; the setup runs there once, as root, with the setup
files in /autograder/source (really /box/autograder/source, a scratch folder bound at /box, as at
grading time); what it leaves there is kept at /opt/microcred/autograder-source, the folder
records the reference it was built for, and it is renamed into place atomically: a failed or
timed-out setup leaves nothing behind, and of two builds at once the first rename wins.

The setup is the course team's code, run as root: it sees only the copy (plus /proc, a minimal
/dev and a tmpfs /tmp), no network unless asked, runs under the box's seccomp filter with Docker's
default capabilities less CAP_MKNOD, with /proc/sys read-only and /proc's host-wide files masked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from sandbox.boxinit import SETUP_SOURCE
from sandbox.bwrap.launch import pipe_holding
from sandbox.bwrap.mounts import foreign_mounts_problem
from sandbox.bwrap.runner import IMAGE_STAMP
from sandbox.seccomp import box_filter

# Docker's default capabilities for a root container, less CAP_MKNOD: there is no devices cgroup
# here to stop a device node made in the copy from reaching the host's disk.
CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
MASKED_PROC = ("/proc/sysrq-trigger", "/proc/kcore", "/proc/kmsg", "/proc/timer_list", "/proc/keys")
LOG_BYTES = 1_000_000
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def build_rootfs(
    base: Path,
    target: Path,
    reference: str,
    files: Mapping[str, bytes],
    setup_command: Sequence[str],
    *,
    timeout: float,
    network: bool,
) -> tuple[str, str]:
    """("exists" | "built" | "failed", the setup's log)."""
    if target.exists():
        return "exists", ""
    if not base.is_dir():
        return "failed", f"base root filesystem {base} is missing"
    problem = foreign_mounts_problem(base)
    if problem is not None:
        return "failed", problem
    if os.geteuid() != 0:
        return "failed", "building a bubblewrap setup image needs root (the setup runs as root in a copy)"
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
    try:
        root, box = work / "root", work / "box"
        copied = subprocess.run(["cp", "-a", "-x", str(base), str(root)], capture_output=True, text=True)
        if copied.returncode != 0:
            return "failed", f"copying {base}: {copied.stderr.strip()}"
        source = box / "autograder" / "source"
        for relative, content in files.items():
            path = source / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            path.chmod(0o755)
        source.mkdir(parents=True, exist_ok=True)
        status, log = _run_setup(root, box, setup_command, timeout=timeout, network=network)
        if status != 0:
            return "failed", log
        kept = root / SETUP_SOURCE.lstrip("/")
        shutil.copytree(source, kept, symlinks=True, dirs_exist_ok=True)
        (root / IMAGE_STAMP).write_text(f"{reference}\n")
        try:
            root.rename(target)
        except OSError:
            return "exists", log  # another build got there first: theirs stands
        return "built", log
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_setup(
    root: Path, box: Path, command: Sequence[str], *, timeout: float, network: bool
) -> tuple[int | None, str]:
    seccomp_read = pipe_holding(box_filter())
    argv = ["bwrap", "--bind", str(root), "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    argv += ["--bind", str(box), "/box", "--ro-bind", "/proc/sys", "/proc/sys"]
    for masked in MASKED_PROC:
        if Path(masked).exists():
            argv += ["--ro-bind", "/dev/null", masked]
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--as-pid-1"]
    if not network:
        argv.append("--unshare-net")
    elif Path("/etc/resolv.conf").exists():
        argv += ["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
    argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    for capability in CAPABILITIES:
        argv += ["--cap-add", capability]
    argv += [
        "--clearenv",
        "--setenv",
        "PATH",
        PATH,
        "--setenv",
        "HOME",
        "/root",
        "--setenv",
        "LANG",
        "C.UTF-8",
    ]
    argv += ["--chdir", "/autograder/source", "--seccomp", str(seccomp_read), "--", *command]
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=(seccomp_read,),
        )
    finally:
        os.close(seccomp_read)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the box dies with bwrap (--die-with-parent)
        output, _ = process.communicate()
        log = output[-LOG_BYTES:].decode(errors="replace")
        return None, f"{log}\nthe setup did not finish within {timeout:g} s"
    log = output[-LOG_BYTES:].decode(errors="replace")
    if process.returncode != 0:
        log += f"\nthe setup exited with status {process.returncode}"
    return process.returncode, log
