"""YAML documents that remember where each value came from.

Course teams write rubrics, assessments and programs as YAML; when one is wrong they need the file and
line, not a Python traceback. `load_located` parses a document and keeps the line of every mapping key
and sequence item, so a validation error's location (pydantic's `loc`) can be turned into
`file:line: message`. Stdlib and PyYAML only, so both `rubrics` and the `grader` catalog can use it.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping, Sequence
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


# Beyond this many values the document is almost certainly an alias bomb ("billion laughs"):
# PyYAML shares aliased nodes, but walking every path would expand them.
MAX_VALUES = 100_000


def load_located(text: str, source: str) -> LocatedDocument:
    """Parse one YAML document; raise `SourceError` with the line of any syntax error.

    Duplicate mapping keys are errors too: YAML loaders silently keep the last one, which hides a
    course team's mistake (two `points:` on one level) instead of reporting it.
    """
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
    walker = _Walker(source, document.lines)
    walker.walk(node, ())
    if walker.problems:
        raise SourceError(walker.problems)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # composition succeeded, so this is a constructor problem
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise SourceError([Problem(source, line, f"invalid YAML: {exc}")]) from None
    problems: list[Problem] = []
    document.data = _plain(data, (), document, problems)
    if problems:
        raise SourceError(problems)
    return document


def _written_key(document: LocatedDocument, path: Location, key: Any) -> Location:
    """The path of the key as written (`yes`), for a key YAML read as another type (True)."""
    for located in document.lines:
        if len(located) == len(path) + 1 and located[: len(path)] == path:
            written = located[-1]
            try:
                if isinstance(written, str) and yaml.safe_load(written) == key:
                    return located
            except yaml.YAMLError:
                continue
    return path


def _plain(value: Any, path: Location, document: LocatedDocument, problems: list[Problem]) -> Any:
    """The value as JSON data, as every document is stored: YAML's other scalar types either become
    JSON (an unquoted date or timestamp becomes its ISO 8601 text, which the models parse back) or
    are reported where they were written."""
    if isinstance(value, dict):
        plain: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(
                    document.problem(
                        _written_key(document, path, key),
                        f"the key {key!r} is read by YAML as a {type(key).__name__}, not as text: quote it",
                    )
                )
                continue
            plain[key] = _plain(item, (*path, key), document, problems)
        return plain
    if isinstance(value, list):
        return [_plain(item, (*path, index), document, problems) for index, item in enumerate(value)]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(document.problem(path, f"{_render(path) or 'value'}: {value} is not a finite number"))
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    names: dict[type, str] = {bytes: "binary data (!!binary)", set: "a set (!!set)"}
    kind = names.get(type(value), type(value).__name__)
    problems.append(
        document.problem(path, f"{_render(path) or 'value'}: {kind} is not allowed here; write plain text")
    )
    return None


class _Walker:
    """Records the line of every path, and the duplicate keys and alias loops met on the way."""

    def __init__(self, source: str, lines: dict[Location, int]) -> None:
        self.source = source
        self.lines = lines
        self.problems: list[Problem] = []
        self._active: set[int] = set()  # nodes on the current path, to catch recursive aliases

    def walk(self, node: yaml.Node, path: Location) -> None:
        if len(self.lines) > MAX_VALUES:
            raise SourceError(
                [
                    Problem(
                        self.source,
                        node.start_mark.line + 1,
                        f"document too large: more than {MAX_VALUES} values (aliases expanding?)",
                    )
                ]
            )
        if id(node) in self._active:
            self.problems.append(
                Problem(self.source, node.start_mark.line + 1, "an alias refers to a value that contains it")
            )
            return
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                self._mapping(node, path)
            elif isinstance(node, yaml.SequenceNode):
                for index, item in enumerate(node.value):
                    child = (*path, index)
                    self.lines[child] = item.start_mark.line + 1
                    self.walk(item, child)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Location) -> None:
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            line = key_node.start_mark.line + 1
            if key == "<<":  # a merge key may repeat; its keys belong to the parent mapping
                self.walk(value_node, (*path, key))
                continue
            if key in first_line:
                self.problems.append(
                    Problem(self.source, line, f"duplicate key {key!r} (first at line {first_line[key]})")
                )
                continue
            first_line[key] = line
            child = (*path, key)
            self.lines[child] = line
            self.walk(value_node, child)


def problems_from_pydantic(document: LocatedDocument, errors: Iterable[Mapping[str, Any]]) -> list[Problem]:
    """Turn pydantic's `ValidationError.errors()` into located problems, naming the field at fault."""
    problems: list[Problem] = []
    for error in errors:
        loc = tuple(part for part in error.get("loc", ()) if isinstance(part, str | int))
        located, shown = _split_loc(document, loc)
        where = _render(shown) or "document"
        problems.append(document.problem(located, f"{where}: {_message(error, shown)}"))
    return problems


def _split_loc(document: LocatedDocument, loc: Location) -> tuple[Location, Location]:
    """The deepest path of `loc` found in the document, and `loc` without union tags.

    pydantic puts the tag of a discriminated union member into `loc` (`auto.lint.thresholds`);
    it is not a key of the YAML, so it is dropped both for locating and for showing.
    """
    path: Location = ()
    shown: list[str | int] = []
    lost = False
    for index, part in enumerate(loc):
        candidate = (*path, part)
        if not lost and candidate in document.lines:
            path = candidate
            shown.append(part)
            continue
        if not lost and _is_tag(document, path, part, loc[index + 1 :]):
            continue
        lost = True  # a missing key, or a value below one: nothing further is in the document
        shown.append(part)
    return path, tuple(shown)


def _is_tag(document: LocatedDocument, path: Location, part: str | int, rest: Location) -> bool:
    if rest and (*path, rest[0]) in document.lines:
        return True
    value = _value_at(document.data, path)
    # The tag is a value of the mapping (kind: lint), not one of its keys.
    return isinstance(value, dict) and part not in value and part in value.values()


def _value_at(data: Any, path: Location) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _render(loc: Location) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: Mapping[str, Any], shown: Location) -> str:
    kind = str(error.get("type", ""))
    key = shown[-1] if shown else "?"
    if kind == "extra_forbidden":
        return f"unknown key {key!r}"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx") or {}
        field = str(ctx.get("discriminator", "kind")).strip("'")
        return f"unknown {field} {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "missing":
        return f"missing required key {key!r}"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    value = error.get("input")
    # For type errors show what was written: `label: no` is read by YAML as false.
    if kind.endswith("_type") and not isinstance(value, dict | list):
        message += f" (got {value!r})"
    return message
