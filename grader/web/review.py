"""Reviewer pages (/review): the queue, the evidence viewer and the rubric form."""

from __future__ import annotations

from flask import Blueprint, render_template

from grader.models import Role
from grader.web.auth import login_required_page, page_user, require_role

bp = Blueprint("review", __name__, url_prefix="/review")


@bp.get("")
@login_required_page
def queue() -> str:
    """The review queue (built out in the reviewer pages)."""
    require_role(page_user(), Role.REVIEWER)
    return render_template(
        "error.html", status=200, code="", message="The review queue is coming.", details={}
    )
