"""What every template may use: Markdown, numbers and sizes for people, times, and who is looking."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask_login import current_user

from grader.models import Role
from grader.services import access
from grader.web.context import db
from grader.web.markdown import render


def human_bytes(size: int | float | None) -> str:
    """2 MB, not 2097152 bytes."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}".replace(".0 ", " ")
        value /= 1024
    return f"{value:.1f} GB"


def points(value: float | None) -> str:
    """A score for people: at most two decimals, no trailing zeros."""
    if value is None:
        return "\u2013"  # an en dash: no score yet
    rounded = round(float(value), 2)
    return f"{rounded:g}" if rounded != 0 else "0"


def when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def waited(value: datetime | None) -> str:
    """How long something has waited, in the largest sensible unit."""
    if value is None:
        return ""
    seconds = max(0, int((datetime.now(UTC) - value).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "less than a minute"


def register(app: Flask) -> None:
    app.jinja_env.filters.update(
        markdown=render, human_bytes=human_bytes, points=points, when=when, waited=waited
    )

    @app.context_processor
    def _roles() -> dict[str, Any]:
        user = current_user.user if current_user.is_authenticated else None
        return {
            "is_reviewer": user is not None and user.role in (Role.REVIEWER, Role.ADMIN),
            "is_staff": user is not None and access.is_staff(db(), user),
        }
