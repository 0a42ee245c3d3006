"""A worker composition root for the fairness tests: the real worker app, with a repository grader that
holds each run for GRADER_TEST_GRADE_DELAY seconds and then applies the real verdict logic to fixed test
results (`tests.support.reviewed.FixedTestsGrader`): the order runs start in is what is tested here."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from grader.config import Settings
from grader.kinds.base import Grade, GradingJob, KindGrader
from grader.kinds.quiz import QuizGrader
from tests.support.reviewed import FixedTestsGrader
from workers.celery_app import configure_graders
from workers.main import app

__all__ = ["app"]


class SlowRepositoryGrader:
    def __init__(self) -> None:
        self.delay = float(os.environ.get("GRADER_TEST_GRADE_DELAY", "2"))

    def grade(self, job: GradingJob) -> Grade:
        time.sleep(self.delay)
        return FixedTestsGrader().grade(job)


def _graders(settings: Settings) -> Mapping[str, KindGrader]:
    return {"quiz": QuizGrader(), "repository": SlowRepositoryGrader()}


configure_graders(_graders)
