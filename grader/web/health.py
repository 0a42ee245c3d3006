"""Operations routes: /healthz (the process answers), /readyz (it can reach the database, the broker
and the file store) and /metrics (Prometheus text); see docs/operations.md.

None needs a login: an orchestrator and Prometheus call them. /metrics shows counts and queue depths,
never an id or a person; where the web port is reachable from outside, `GRADER_METRICS_TOKEN` makes it
ask for `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, jsonify, request

from grader import metrics
from grader.services import health
from grader.web.context import web

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "up"})


@bp.get("/readyz")
def readyz() -> Response:
    context = web()
    readiness = health.readiness(context.settings, context.sessions)
    if readiness.ok:
        return jsonify({"status": "ready", "checks": readiness.to_dict()})
    failed = [check.name for check in readiness.failed]
    response = jsonify(
        {
            "error": {
                "code": "not_ready",
                "message": readiness.summary(),
                "details": {"failed": failed, "checks": readiness.to_dict()},
            }
        }
    )
    response.status_code = 503
    return response


@bp.get("/metrics")
def metrics_text() -> Response:
    context = web()
    wanted = context.settings.metrics_token
    if wanted:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), wanted.encode()):
            return Response(
                "metrics need Authorization: Bearer <GRADER_METRICS_TOKEN>\n",
                status=401,
                mimetype="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    body, content_type = metrics.exposition(metrics.QueueCollector(context.sessions))
    return Response(body, content_type=content_type)
