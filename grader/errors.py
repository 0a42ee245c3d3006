"""The one error hierarchy of the grading service.

Every failure a user can meet is a `GraderError` with a stable `code`, a message written for that
user and optional `details` (for example the field at fault). `grader.web.errors` maps these to HTML
pages or the JSON envelope `{"error": {"code", "message", "details"}}`; the CLI prints the message and
exits non-zero. Anything else that escapes is a bug: it is logged and shown as a generic 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class GraderError(Exception):
    """Base of every error the service reports to a user."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 400

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(GraderError):
    """The request or a submitted value is malformed; `details["field"]` names the culprit."""

    code = "invalid_input"
    http_status = 400


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    http_status = 413


class InvalidGitUrl(InvalidInput):
    code = "invalid_git_url"


class RepositoryUnavailable(InvalidInput):
    """The learner's repository or ref cannot be fetched (missing, too large, too slow)."""

    code = "repository_unavailable"
    http_status = 422


class UnsafeArchive(InvalidInput):
    code = "unsafe_archive"


class AuthenticationRequired(GraderError):
    code = "authentication_required"
    http_status = 401


class PermissionDenied(GraderError):
    code = "forbidden"
    http_status = 403


class NotFound(GraderError):
    code = "not_found"
    http_status = 404


class Conflict(GraderError):
    code = "conflict"
    http_status = 409


class AttemptsExhausted(Conflict):
    code = "attempts_exhausted"


class PastDue(Conflict):
    """The assessment's due date (and late window, if any) has passed for this learner."""

    code = "past_due"


class TimeLimitExceeded(Conflict):
    code = "time_limit_exceeded"


class RateLimited(GraderError):
    """Too soon to try again; `retry_after` seconds tell the client when it may."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, details={**(details or {}), "retry_after": retry_after})
        self.retry_after = retry_after


class CatalogError(GraderError):
    """The catalog has problems; each is a `file:line: message` string in `details["problems"]`."""

    code = "catalog_invalid"
    http_status = 422

    def __init__(self, problems: list[str]) -> None:
        count = len(problems)
        super().__init__(
            f"the catalog has {count} problem{'s' if count != 1 else ''}",
            details={"problems": problems},
        )
        self.problems = problems


class ImageBuildFailed(GraderError):
    """A course team's setup step failed while its grading image was built; the log says why."""

    code = "image_build_failed"
    http_status = 500


class ServiceUnavailable(GraderError):
    """An infrastructure fault on our side (broker, sandbox, database); safe to retry later."""

    code = "service_unavailable"
    http_status = 503


class SandboxUnavailable(ServiceUnavailable):
    code = "sandbox_unavailable"
