"""A worker composition root for the reconciler's tests: slow, prefetching, and able to crash.

`celery -A tests.support.faulty_worker worker` grades quizzes as `tests.support.slow_worker` does
(GRADER_TEST_GRADE_DELAY seconds each, touching `<data dir>/grading-<run id>` first), takes
GRADER_TEST_PREFETCH messages per pool process ahead of time as a busy worker does (Celery's prefetch
multiplier), and kills its own pool process with SIGKILL when grading a submission of a learner for
whom `<data dir>/crash-learner-<user id>` exists: a submission that crashes the process grading it,
while the worker's main process lives on.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

from grader.config import Settings
from grader.kinds.base import Grade, GradingJob, KindGrader
from tests.support.slow_worker import SlowQuizGrader
from workers.celery_app import configure_graders
from workers.main import app

__all__ = ["app"]

app.conf.worker_prefetch_multiplier = int(os.environ.get("GRADER_TEST_PREFETCH", "1"))


class CrashingQuizGrader(SlowQuizGrader):
    def grade(self, job: GradingJob) -> Grade:
        if (self.marker_dir / f"crash-learner-{job.user_id}").exists():
            os.kill(os.getpid(), signal.SIGKILL)
        return super().grade(job)


def _faulty(settings: Settings) -> Mapping[str, KindGrader]:
    return {"quiz": CrashingQuizGrader(settings)}


configure_graders(_faulty)
