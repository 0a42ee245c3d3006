"""Staff pages (/staff): accounts and enrolment, catalog status, queue health, gradebook, agreement."""

from __future__ import annotations

from flask import Blueprint, render_template

from grader.errors import PermissionDenied
from grader.services import access
from grader.web.auth import login_required_page, page_user
from grader.web.context import db

bp = Blueprint("staff", __name__, url_prefix="/staff")


@bp.get("")
@login_required_page
def home() -> str:
    """The staff workspace (built out in the staff pages)."""
    if not access.is_staff(db(), page_user()):
        raise PermissionDenied("only staff may open the staff pages")
    return render_template(
        "error.html", status=200, code="", message="The staff workspace is coming.", details={}
    )
