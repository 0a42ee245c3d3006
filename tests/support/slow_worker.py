"""A worker composition root for tests: the real worker app, with a quiz grader that takes its time.

`celery -A tests.support.slow_worker worker` holds each run for GRADER_TEST_GRADE_DELAY seconds and
touches `<GRADER_DATA_DIR>/grading-<run id>` when it starts, so a test can kill it mid-run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from grader.config import Settings
from grader.kinds.base import Grade, GradingJob, KindGrader
from grader.kinds.quiz import QuizGrader
from workers.celery_app import configure_graders
from workers.main import app

__all__ = ["app"]


class SlowQuizGrader:
    def __init__(self, settings: Settings) -> None:
        self.marker_dir = Path(settings.data_dir)
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        self.delay = float(os.environ.get("GRADER_TEST_GRADE_DELAY", "5"))

    def grade(self, job: GradingJob) -> Grade:
        (self.marker_dir / f"grading-{job.run_id}").touch()
        time.sleep(self.delay)
        return QuizGrader().grade(job)


def _slow(settings: Settings) -> Mapping[str, KindGrader]:
    return {"quiz": SlowQuizGrader(settings)}


configure_graders(_slow)
