"""JSON API for staff (/api/v1/staff...): accounts, enrolment, queue health, gradebook, agreement."""

from __future__ import annotations

from flask import Blueprint

from grader.web.auth import csrf

bp = Blueprint("api_staff", __name__, url_prefix="/api/v1/staff")
csrf.exempt(bp)  # token-authenticated, like the rest of the API
