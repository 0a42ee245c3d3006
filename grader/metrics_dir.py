"""Prometheus multiprocess mode: the folder where each process of a gunicorn or Celery prefork tree
keeps its metric values, so that one scrape of the parent adds up all its children.

prometheus_client picks its storage once, when it is first imported, from `PROMETHEUS_MULTIPROC_DIR`.
So this module never imports it (nor anything that does): a composition root calls `prepare` first,
then builds the app. An operator's own `PROMETHEUS_MULTIPROC_DIR` is kept; without one, a fresh folder
under the temporary directory is made for this process tree.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger(__name__)
_made: Path | None = None  # the folder `prepare` made for this process tree, which `discard` removes


def active() -> Path | None:
    """The multiprocess folder in use, or None: one process, values in memory."""
    folder = os.environ.get(ENV, "")
    return Path(folder) if folder else None


def prepare(role: str) -> Path:
    """Make sure `PROMETHEUS_MULTIPROC_DIR` names an existing folder before prometheus_client loads."""
    global _made
    folder = active()
    if folder is None:
        # Keyed by process id: two trees on one host never mix, and a restarted one starts afresh.
        folder = Path(tempfile.gettempdir()) / f"grader-metrics-{role}-{os.getpid()}"
        os.environ[ENV] = str(folder)
        _made = folder
        if "prometheus_client" in sys.modules:
            log.warning(
                "prometheus_client was imported before %s was set: the metrics of child processes "
                "will be missing",
                ENV,
            )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def wipe(folder: Path) -> None:
    """Forget the values of an earlier run (prometheus_client's advice: before the children start)."""
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def discard() -> None:
    """Remove the folder `prepare` made, when the process tree stops (an operator's own is kept)."""
    if _made is not None:
        shutil.rmtree(_made, ignore_errors=True)
