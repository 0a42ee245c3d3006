"""JSON API for reviewers (/api/v1/review...): the queue, claims, reviews, comments, regrade requests."""

from __future__ import annotations

from flask import Blueprint

from grader.web.auth import csrf

bp = Blueprint("api_review", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # token-authenticated, like the rest of the API
