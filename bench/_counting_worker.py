"""Bench-only composition root of the workers: `celery -A bench._counting_worker worker`.

The real app of `workers.main` plus the bench's no-op task; each task is labelled for the SQL counts
(GRADER_BENCH_COUNT_DIR) and, under GRADER_BENCH_PROFILE=1, profiled with cProfile.
"""

from __future__ import annotations

import cProfile
from typing import Any

from celery.signals import task_postrun, task_prerun

import bench._noop_tasks  # noqa: F401 - registers the no-op task with the worker
from bench._instrumentation import install
from workers.main import app

__all__ = ["app"]

_counts = install("worker")
_profilers: dict[str, cProfile.Profile] = {}


@task_prerun.connect  # type: ignore[untyped-decorator]
def _label_task(task_id: str = "", task: Any = None, **_: object) -> None:
    if _counts is None:
        return
    _counts.begin(f"task {getattr(task, 'name', '?')}")
    if _counts.profiling_now():
        profiler = _counts.profiler()
        _profilers[task_id] = profiler
        profiler.enable()


@task_postrun.connect  # type: ignore[untyped-decorator]
def _unlabel_task(task_id: str = "", task: Any = None, **_: object) -> None:
    if _counts is None:
        return
    profiler = _profilers.pop(task_id, None)
    if profiler is not None:
        profiler.disable()
        _counts.add_profile(f"task {getattr(task, 'name', '?')}", profiler)
    _counts.end()
