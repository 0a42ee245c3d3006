"""Log lines: text for people (the default) or one JSON object per line for a log pipeline
(`GRADER_LOG_FORMAT=json`), with the ids of the grading in progress on every line and secrets
scrubbed from whatever is written.

Each composition root (the `grader` command, gunicorn's entry point, the Celery worker) calls
`configure` once; importing this module changes nothing. The ids live in a context variable: `bind`
them when a grading starts (a worker's task, a claim) and `clear` them when it ends, and every line
logged in between, by our code or a library's, carries them.

Scrubbing is the last line of defence, not the first: no code of ours logs a password or a token on
purpose. It catches what a library or an exception message might carry: bearer tokens, our API
tokens (`gr_…`), `password=…`-shaped pairs and the password in a URL such as a database URL.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

FORMATS = ("text", "json")
# The ids a grading's lines carry, in the order a text line shows them.
ID_FIELDS = ("submission_id", "run_id", "credential_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# An API token as grader.services.accounts makes them: the prefix, then 43 URL-safe characters.
# Sixteen or more: the ten-character prefix shown on the account page stays readable.
API_TOKEN = re.compile(r"\bgr_[A-Za-z0-9_-]{16,}")
# A key naming a secret, anywhere in it: password, db_password, csrf_token, Set-Cookie, X-Api-Key, …
_SECRET_NAME = re.compile(r"(?i)password|passwd|passphrase|secret|token|api[_-]?key|authorization|cookie")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+(?!\[redacted\])[A-Za-z0-9._~+/=-]{6,}")
# key=value, key: value, "key": "value" (JSON); a quoted value whole
_PAIR = re.compile(r"""([\w.-]+)(["']?\s*[:=]\s*)("[^"]*"|'[^']*'|(?!\[redacted\])[^\s"',;&)\]}]+)""")
# scheme://user:password@host (the user may be empty: redis://:password@host)
_URL_PASSWORD = re.compile(r"(://[^/\s:@]*:)[^@/\s]+@")
# Most lines hold none of these: they are written as they are, without running the patterns.
_HINTS = ("bearer", "basic", "gr_", "://", "pass", "secret", "token", "key", "auth", "cookie")
# What every LogRecord has; anything else on a record came as `extra=` and goes into the JSON object.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_OURS = "_grader_handler"

_ids: ContextVar[Mapping[str, str] | None] = ContextVar("grader_log_ids", default=None)


def bind(**ids: str | None) -> None:
    """Put ids on every line logged from here (this thread or task) until `clear`."""
    current = dict(_ids.get() or {})
    current.update({key: str(value) for key, value in ids.items() if value is not None})
    _ids.set(current)


def clear() -> None:
    _ids.set(None)


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """`bind` for a block: the ids before it are back after it."""
    token = _ids.set(_ids.get())
    bind(**ids)
    try:
        yield
    finally:
        _ids.reset(token)


def current_ids() -> dict[str, str]:
    return dict(_ids.get() or {})


def redact(text: str) -> str:
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):
        return text
    text = _BEARER.sub(r"\1 [redacted]", text)
    text = _PAIR.sub(_pair, text)
    text = _URL_PASSWORD.sub(r"\1[redacted]@", text)
    return API_TOKEN.sub("gr_[redacted]", text)


def _pair(match: re.Match[str]) -> str:
    key, separator, value = match.groups()
    if _SECRET_NAME.search(key):
        return f"{key}{separator}[redacted]"
    # The value may hold a pair of its own (`a:password=…`): it is read again.
    return f"{key}{separator}{_PAIR.sub(_pair, value)}"


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [submission=… run=…]`, scrubbed."""

    def __init__(self, fmt: str = TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = current_ids()
        if ids:
            shown = " ".join(f"{key.removesuffix('_id')}={ids[key]}" for key in ID_FIELDS if key in ids)
            first, newline, rest = line.partition("\n")
            line = f"{first} [{shown}]{newline}{rest}"
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the bound ids, extras, the exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "process": record.process,
        }
        entry.update(current_ids())
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = "[redacted]" if _SECRET_NAME.search(key) else _scrubbed(value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def _scrubbed(value: Any, depth: int = 0) -> Any:
    """An extra as JSON: nested mappings and lists kept as such, every string scrubbed."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    if depth < 4 and isinstance(value, Mapping):
        return {
            str(key): "[redacted]" if _SECRET_NAME.search(str(key)) else _scrubbed(item, depth + 1)
            for key, item in value.items()
        }
    if depth < 4 and isinstance(value, list | tuple):
        return [_scrubbed(item, depth + 1) for item in value]
    return redact(str(value))


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return TextFormatter()


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of each line, not the one it was made with (a
    test runner or click's CliRunner swaps it, and closes the one it lent)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(
    log_format: str,
    *,
    level: int | str = logging.INFO,
    stream: TextIO | None = None,
    path: Path | None = None,
) -> logging.Handler:
    """Send every logger's lines through one handler on the root logger, as `text` or `json`.

    Called again, it replaces the handler it made before (and only that one).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _OURS, False):
            root.removeHandler(handler)
            handler.close()
    made: logging.Handler
    if path is not None:
        made = logging.FileHandler(path, encoding="utf-8")
    elif stream is not None:
        made = logging.StreamHandler(stream)
    else:
        made = _StandardError()
    made.setFormatter(formatter(log_format))
    setattr(made, _OURS, True)
    root.addHandler(made)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return made
