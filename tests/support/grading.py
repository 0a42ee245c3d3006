"""Run queued grading in-process (the same service a worker calls) for tests that need a result."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from grader.interfaces import RecordingQueue
from grader.kinds import default_graders
from grader.services.grading import RunOutcome, process_run


def drain(queue: RecordingQueue, sessions: sessionmaker[Session]) -> list[RunOutcome]:
    outcomes = []
    while queue.sent:
        run_id, _ = queue.sent.pop(0)
        outcomes.append(process_run(sessions, run_id, default_graders(), worker="test", lease_seconds=30))
    return outcomes
