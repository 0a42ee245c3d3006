"""Per-job images, the Gradescope and PrairieLearn paths, and setup images, on both real backends.

Images made here get a reference unique to the test session and are removed at its end: a Docker
image committed from a container of the default one, or a root filesystem folder copied from the
default one next to it.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator

import docker
import pytest
from docker.errors import APIError, ImageNotFound

from sandbox.contract import BoxFile, JobSpec, Outcome, Runner, rootfs_dirname
from sandbox.images import build_setup_image
from sandbox.select import DEFAULT_IMAGE, DEFAULT_ROOTFS

SECOND = "/etc/microcred-second"


def remove_image(backend: str, reference: str) -> None:
    if backend == "docker":
        client = docker.from_env()
        # The session's runner keeps warm containers of an image it ran: they would keep the image
        # alive, untagged, after the tag is removed.
        for container in client.api.containers(all=True, filters={"ancestor": reference}):
            # The runner removes its job containers meanwhile (gone, or "removal in progress").
            with contextlib.suppress(APIError):
                client.api.remove_container(container["Id"], force=True)
        with contextlib.suppress(ImageNotFound):
            client.images.remove(reference, force=True)
    else:
        shutil.rmtree(DEFAULT_ROOTFS.parent / rootfs_dirname(reference), ignore_errors=True)


def image_exists(backend: str, reference: str) -> bool:
    if backend == "docker":
        try:
            docker.from_env().images.get(reference)
        except ImageNotFound:
            return False
        return True
    return (DEFAULT_ROOTFS.parent / rootfs_dirname(reference)).exists()


def make_second_image(backend: str, reference: str) -> None:
    """The default image plus one file, SECOND."""
    content = b"second image\n"
    if backend == "docker":
        client = docker.from_env()
        container = client.containers.create(DEFAULT_IMAGE, ["true"])
        try:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as archive:
                info = tarfile.TarInfo(SECOND.lstrip("/"))
                info.size, info.mode = len(content), 0o644
                archive.addfile(info, io.BytesIO(content))
            container.put_archive("/", buffer.getvalue())
            repository, _, tag = reference.partition(":")
            container.commit(repository=repository, tag=tag, changes=["USER 65534:65534", "WORKDIR /box"])
        finally:
            container.remove(force=True)
        return
    target = DEFAULT_ROOTFS.parent / rootfs_dirname(reference)
    subprocess.run(["cp", "-a", "-x", str(DEFAULT_ROOTFS), str(target)], check=True)
    (target / SECOND.lstrip("/")).write_bytes(content)


@pytest.fixture(scope="session")
def second_image(sandbox_ready: None) -> Iterator[str]:
    reference = f"microcred-test-{uuid.uuid4().hex[:8]}:second"
    try:
        for backend in ("docker", "bwrap"):
            make_second_image(backend, reference)
        yield reference
    finally:
        for backend in ("docker", "bwrap"):
            remove_image(backend, reference)


def test_a_job_runs_on_the_image_it_names(runner: Runner, second_image: str) -> None:
    named = runner.run(JobSpec(command=("cat", SECOND), image=second_image))
    assert (named.outcome, named.exit_code, named.stdout) == (Outcome.COMPLETED, 0, b"second image\n"), named
    default = runner.run(JobSpec(command=("cat", SECOND)))
    assert default.outcome is Outcome.COMPLETED and default.exit_code != 0
    same = runner.run(JobSpec(command=("cat", SECOND), image=DEFAULT_IMAGE))
    assert same.outcome is Outcome.COMPLETED and same.exit_code != 0  # the default, named


def test_a_missing_image_is_a_sandbox_error_that_says_how_to_build_it(runner: Runner) -> None:
    result = runner.run(JobSpec(command=("true",), image="microcred-absent:none"))
    assert result.outcome is Outcome.SANDBOX_ERROR and result.error is not None
    assert "microcred-absent:none" in result.error and "build" in result.error


def test_gradescope_paths_lead_into_the_work_dir(runner: Runner) -> None:
    script = (
        b"#!/bin/sh\nset -e\ncd /autograder/source\n"
        b'printf \'{"score": %s}\\n\' "$(cat /autograder/submission/x)" > /autograder/results/results.json\n'
    )
    result = runner.run(
        JobSpec(
            command=("/autograder/source/run_autograder",),
            files=(
                BoxFile("autograder/source/run_autograder", script, 0o755),
                BoxFile("autograder/submission/x", b"7"),
            ),
            collect=("autograder/results/results.json",),
        )
    )
    assert (result.outcome, result.exit_code) == (Outcome.COMPLETED, 0), result
    assert result.files == {"autograder/results/results.json": b'{"score": 7}\n'}


def test_prairielearn_paths_lead_into_the_work_dir(runner: Runner) -> None:
    result = runner.run(
        JobSpec(
            command=(
                "sh",
                "-c",
                "cat /grade/data/data.json /grade/student/answer.py > /grade/results/results.json",
            ),
            files=(BoxFile("grade/data/data.json", b"{}\n"), BoxFile("grade/student/answer.py", b"x = 1\n")),
            collect=("grade/results/results.json",),
        )
    )
    assert (result.outcome, result.exit_code) == (Outcome.COMPLETED, 0), result
    assert result.files == {"grade/results/results.json": b"{}\nx = 1\n"}


SETUP = b"""#!/bin/bash
set -e
cat > /usr/local/bin/course-tool <<'TOOL'
#!/bin/sh
echo "course tool ok"
TOOL
chmod 755 /usr/local/bin/course-tool
echo built > /autograder/source/built.txt
tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /autograder/source/interfaces.txt
id -u > /autograder/source/uid.txt
"""


def test_a_setup_image_is_built_once_and_jobs_see_what_it_built(runner: Runner) -> None:
    reference = f"microcred-setup-test-{uuid.uuid4().hex[:8]}:1"
    files = {"setup.sh": SETUP, "data/helper.txt": b"helper\n"}
    command = ("bash", "/autograder/source/setup.sh")
    try:
        built = build_setup_image(runner.name, DEFAULT_IMAGE, reference, files, command, timeout=300)
        assert (built.ok, built.status) == (True, "built"), built.log
        again = build_setup_image(runner.name, DEFAULT_IMAGE, reference, files, command, timeout=300)
        assert (again.ok, again.status) == (True, "exists")
        script = (
            "course-tool; cd /autograder/source; "
            "cat built.txt interfaces.txt uid.txt data/helper.txt run_autograder; "
            "touch built.txt 2>/dev/null || echo read-only"
        )
        result = runner.run(
            JobSpec(
                command=("sh", "-c", script),
                files=(BoxFile("autograder/source/run_autograder", b"grader file\n"),),
                image=reference,
            )
        )
        assert (result.outcome, result.exit_code) == (Outcome.COMPLETED, 0), result
        assert result.stdout.decode().split("\n") == [
            "course tool ok",
            "built",
            "lo",  # no network during the setup
            "0",  # the setup ran as root
            "helper",
            "grader file",  # the job's own grader files are there too
            "read-only",
            "",
        ]
        plain = runner.run(
            JobSpec(command=("sh", "-c", "ls /autograder/source 2>&1; command -v course-tool"))
        )
        assert plain.exit_code != 0 and b"course-tool" not in plain.stdout  # the base image is untouched
    finally:
        remove_image(runner.name, reference)


def test_a_failing_setup_leaves_no_image(runner: Runner) -> None:
    reference = f"microcred-setup-test-{uuid.uuid4().hex[:8]}:broken"
    try:
        result = build_setup_image(
            runner.name,
            DEFAULT_IMAGE,
            reference,
            {"setup.sh": b"echo touching /usr/local/half-built\ntouch /usr/local/half-built\nexit 3\n"},
            ("sh", "/autograder/source/setup.sh"),
            timeout=120,
        )
        assert (result.ok, result.status) == (False, "failed")
        assert "touching /usr/local/half-built" in result.log and "3" in result.log
        assert not image_exists(runner.name, reference)
        leftovers = [p.name for p in DEFAULT_ROOTFS.parent.iterdir() if rootfs_dirname(reference) in p.name]
        assert leftovers == []
        slow = build_setup_image(runner.name, DEFAULT_IMAGE, reference, {}, ("sleep", "30"), timeout=2)
        assert not slow.ok and "2 s" in slow.log and not image_exists(runner.name, reference)
    finally:
        remove_image(runner.name, reference)
