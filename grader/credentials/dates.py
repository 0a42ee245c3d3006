"""Dates as credentials write them: XML Schema dateTime in UTC to the second, `2026-12-01T09:30:00Z`.

Every date we write goes through `format_datetime`, so the signed text of a date never depends on the
machine's time zone or on microseconds; every date we read goes through `parse_datetime`, which refuses a
date without a time zone rather than guess one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from grader.credentials.errors import MalformedCredential


def format_datetime(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("credential dates must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(text: object, field: str) -> datetime:
    if not isinstance(text, str):
        raise MalformedCredential(f"{field} must be a date and time as text", details={"field": field})
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise MalformedCredential(
            f"{field} is not an ISO 8601 date and time: {text[:40]!r}", details={"field": field}
        ) from error
    if moment.tzinfo is None:
        raise MalformedCredential(f"{field} has no time zone: {text[:40]!r}", details={"field": field})
    return moment.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)
