"""Grading images with a course team's setup step (Gradescope's setup.sh), built once, never per submission.

An assessment whose command suite declares `setup` is graded on an image of its own: the base
grading image with the setup run in it, under a name derived from the base and the grader files, so
a changed setup or grader file gives a new image and every worker computes the same name from the
stored assessment alone. `grader images build` builds what is missing; a worker that meets a
missing image reports a sandbox error naming it (the run is retried, then flagged to staff).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from grader.catalog.bundle import Bundle
from grader.catalog.schema import CommandSuite, RepositoryAssessment
from grader.config import Settings
from grader.errors import ImageBuildFailed
from sandbox import images

SETUP_SOURCE = "/autograder/source"


@dataclass(frozen=True)
class SetupImage:
    reference: str
    files: dict[str, bytes]  # placed in /autograder/source for the setup
    command: tuple[str, ...]


def setup_suite(assessment: RepositoryAssessment) -> CommandSuite | None:
    return next((s for s in assessment.tests if isinstance(s, CommandSuite) and s.setup), None)


def setup_image(assessment: RepositoryAssessment, bundle: Bundle, base: str) -> SetupImage | None:
    """The image `assessment` is graded on, when it has a setup step; None means the base image."""
    suite = setup_suite(assessment)
    if suite is None or suite.setup is None:
        return None
    folder = suite.folder
    digest = hashlib.sha256(f"{base}\0{suite.setup}\0{bundle.digest(folder)}".encode()).hexdigest()
    return SetupImage(
        reference=f"microcred-setup-{assessment.slug}:{digest[:16]}",
        files=bundle.under(folder),
        command=("sh", "-c", f'cd {SETUP_SOURCE} && exec bash "$1"', "setup", f"./{suite.setup}"),
    )


def build_setup_image(settings: Settings, backend: str, image: SetupImage, *, network: bool = False) -> str:
    """Build `image` on `backend` unless it exists; "built" or "exists", else `ImageBuildFailed`."""
    result = images.build_setup_image(
        backend,
        settings.sandbox_image,
        image.reference,
        image.files,
        image.command,
        timeout=settings.setup_timeout_seconds,
        network=network,
        rootfs_parent=settings.sandbox_rootfs.parent,
    )
    if not result.ok:
        raise ImageBuildFailed(
            f"the setup of {image.reference} failed on {backend}:\n{result.log[-4000:]}",
            details={"image": image.reference, "backend": backend},
        )
    return result.status
