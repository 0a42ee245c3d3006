"""Loading rubric files: YAML text -> validated `Rubric`, or `RubricError` listing every problem.

Loading runs in two passes so that one mistake never hides another. First pydantic checks the
schema (types, unknown keys, required keys) with the cross-field rules deferred; then those rules
(`rubric_problems`) run on whatever validated, down to single criteria when the rubric as a whole
did not. Every problem is reported as `file:line: message`, sorted by line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rubrics.model import (
    DEFER_CHECKS,
    Criterion,
    Issue,
    Location,
    Rubric,
    criterion_problems,
    duplicate_id_problems,
    pass_mark_problems,
    rubric_problems,
)
from rubrics.source import LocatedDocument, Problem, SourceError, load_located, problems_from_pydantic

_CONTEXT = {DEFER_CHECKS: True}


class RubricError(SourceError):
    """A rubric file is invalid; `problems` holds every problem found, each with its line."""


def load_rubric(path: Path) -> Rubric:
    """Load a rubric file. Raises `RubricError`, or `OSError` if the file cannot be read."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RubricError([Problem(str(path), line, "file is not valid UTF-8")]) from None
    return load_rubric_text(text, str(path))


def load_rubric_text(text: str, source: str) -> Rubric:
    """Load a rubric from YAML text; `source` names it in error messages (usually the path)."""
    try:
        document = load_located(text, source)
    except RubricError:
        raise
    except SourceError as exc:
        raise RubricError(exc.problems) from None
    return _build(document)


def rubric_from_dict(data: Any, source: str) -> Rubric:
    """Validate already-parsed data (no line numbers are known, so every problem is on line 1)."""
    return _build(LocatedDocument(source=source, data=data))


def _build(document: LocatedDocument) -> Rubric:
    data = document.data
    if not isinstance(data, Mapping):
        raise RubricError(
            [document.problem((), "a rubric is a mapping with id, title, pass_mark and criteria")]
        )
    problems: list[Problem] = []
    rubric: Rubric | None = None
    try:
        rubric = Rubric.model_validate(data, context=_CONTEXT)
    except ValidationError as exc:
        problems.extend(problems_from_pydantic(document, exc.errors()))
    issues = rubric_problems(rubric) if rubric is not None else _partial_problems(data)
    problems.extend(_locate(document, issue) for issue in issues)
    if problems:
        unique = list(dict.fromkeys(problems))
        raise RubricError(sorted(unique, key=lambda p: p.line))
    assert rubric is not None
    return rubric


def _partial_problems(data: Mapping[str, Any]) -> list[Issue]:
    """Cross-field rules for the criteria that validated on their own, when the rubric did not."""
    issues: list[Issue] = []
    pass_mark = data.get("pass_mark")
    if isinstance(pass_mark, int | float) and not isinstance(pass_mark, bool):
        issues.extend(pass_mark_problems(float(pass_mark)))
    criteria = data.get("criteria")
    if not isinstance(criteria, list):
        return issues
    if not criteria:
        issues.append((("criteria",), "a rubric needs at least one criterion"))
    for index, raw in enumerate(criteria):
        try:
            criterion = Criterion.model_validate(raw, context=_CONTEXT)
        except ValidationError:
            continue  # its schema errors are already reported
        issues.extend((("criteria", index, *loc), msg) for loc, msg in criterion_problems(criterion))
    ids = [raw.get("id") if isinstance(raw, dict) else None for raw in criteria]
    # Non-string ids are schema errors reported elsewhere; keep indexes aligned with placeholders.
    issues.extend(duplicate_id_problems([i if isinstance(i, str) else f"\0{n}" for n, i in enumerate(ids)]))
    return issues


def _locate(document: LocatedDocument, issue: Issue) -> Problem:
    loc, message = issue
    return document.problem(loc, f"{_where(loc)}: {message}" if loc else message)


def _where(loc: Location) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
