"""YAML documents that remember where each value came from.

Course teams write rubrics, assessments and programs as YAML; when one is wrong they need the file and
line, not a Python traceback. `load_located` parses a document and keeps the line of every mapping key
and sequence item, so a validation error's location (pydantic's `loc`) can be turned into
`file:line: message`. Stdlib and PyYAML only, so both `rubrics` and the `grader` catalog can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a source file, printed the way compilers print them."""

    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


class SourceError(Exception):
    """A document could not be loaded; `problems` lists every reason found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


Location = tuple[str | int, ...]


@dataclass
class LocatedDocument:
    """Plain Python data of one YAML document plus the line (1-based) of every path in it."""

    source: str
    data: Any
    lines: dict[Location, int] = field(default_factory=dict)

    def line_for(self, loc: Iterable[str | int]) -> int:
        """The line of the deepest known prefix of `loc` (1 when nothing matches)."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def problem(self, loc: Iterable[str | int], message: str) -> Problem:
        return Problem(self.source, self.line_for(loc), message)


def load_located(text: str, source: str) -> LocatedDocument:
    """Parse one YAML document; raise `SourceError` with the line of any syntax error."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise SourceError([Problem(source, line, f"invalid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise SourceError([Problem(source, 1, f"invalid YAML: {exc}")]) from None
    document = LocatedDocument(source=source, data=None)
    if node is None:
        return document
    document.lines[()] = node.start_mark.line + 1
    _record_lines(node, (), document.lines)
    try:
        document.data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # composition succeeded, so this is a constructor problem
        raise SourceError([Problem(source, 1, f"invalid YAML: {exc}")]) from None
    return document


def _record_lines(node: yaml.Node, path: Location, lines: dict[Location, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child = (*path, key)
            lines[child] = key_node.start_mark.line + 1
            _record_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _record_lines(item, child, lines)


def problems_from_pydantic(document: LocatedDocument, errors: Iterable[dict[str, Any]]) -> list[Problem]:
    """Turn pydantic's `ValidationError.errors()` into located problems, naming the field at fault."""
    problems: list[Problem] = []
    for error in errors:
        loc = tuple(part for part in error.get("loc", ()) if isinstance(part, str | int))
        # pydantic appends the tag of a discriminated union member to loc; it is not a YAML path.
        yaml_loc = tuple(p for p in loc if p in _path_keys(document, loc))
        where = ".".join(str(p) for p in loc) or "document"
        message = str(error.get("msg", "invalid value"))
        problems.append(document.problem(yaml_loc, f"{where}: {message}"))
    return problems


def _path_keys(document: LocatedDocument, loc: Location) -> set[str | int]:
    keys: set[str | int] = set()
    path: Location = ()
    for part in loc:
        candidate = (*path, part)
        if candidate in document.lines:
            keys.add(part)
            path = candidate
    return keys
