"""Thin Celery tasks: take a run id, call one grader service, retry only infrastructure faults."""

from __future__ import annotations

import logging

from celery import shared_task

from grader.broker import GRADE_TASK, ISSUE_TASK
from grader.errors import ServiceUnavailable
from grader.services import credentials
from grader.services.grading import process_run
from workers.celery_app import runtime

log = logging.getLogger(__name__)


@shared_task(
    name=GRADE_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(ServiceUnavailable,),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
    ignore_result=True,
)
def grade_run(self: object, run_id: str) -> str:
    rt = runtime()
    hostname = getattr(getattr(self, "request", None), "hostname", None) or "worker"
    outcome = process_run(
        rt.sessions,
        run_id,
        rt.graders,
        worker=hostname,
        lease_seconds=rt.settings.lease_seconds,
        max_tries=rt.settings.max_run_tries,
        announce=rt.signal.announce,
    )
    log.info("run %s: %s", run_id, outcome.value)
    return outcome.value


@shared_task(
    name=ISSUE_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(ServiceUnavailable,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
    ignore_result=True,
)
def issue_credential(credential_id: str) -> bool:
    rt = runtime()
    identity = credentials.issuer_identity(rt.settings)
    with rt.sessions() as session:
        issued = credentials.issue(session, credential_id, identity)
    log.info("credential %s: %s", credential_id, "issued" if issued else "already issued")
    return issued
