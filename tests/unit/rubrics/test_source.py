"""rubrics.source: YAML with line numbers, and pydantic errors turned into `file:line: message`."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rubrics.source import MAX_VALUES, Problem, SourceError, load_located, problems_from_pydantic

DOC = """\
name: demo
items:
  - id: a
    size: 1
  - id: b
    size: 2
nested: {x: 1, y: [10, 20]}
"""


def test_lines_of_keys_and_sequence_items() -> None:
    doc = load_located(DOC, "d.yaml")
    assert doc.data["items"][1] == {"id": "b", "size": 2}
    assert doc.lines[("name",)] == 1
    assert doc.lines[("items", 1)] == 5
    assert doc.lines[("items", 1, "size")] == 6
    assert doc.lines[("nested", "y", 1)] == 7
    # An unknown path falls back to its deepest known prefix.
    assert doc.line_for(("items", 1, "colour")) == 5
    assert doc.line_for(("nowhere",)) == 1


def test_problem_prints_like_a_compiler() -> None:
    assert str(Problem("d.yaml", 4, "bad")) == "d.yaml:4: bad"
    error = SourceError([Problem("a", 1, "x"), Problem("a", 2, "y")])
    assert str(error) == "a:1: x\na:2: y"


def test_syntax_error_line() -> None:
    with pytest.raises(SourceError) as info:
        load_located("a: 1\nb: [1, 2\nc: 3\n", "d.yaml")
    (problem,) = info.value.problems
    assert (problem.source, problem.line) == ("d.yaml", 3)
    assert problem.message.startswith("invalid YAML")


def test_empty_document() -> None:
    doc = load_located("# nothing\n", "d.yaml")
    assert doc.data is None


def test_duplicate_keys_are_reported_with_both_lines() -> None:
    with pytest.raises(SourceError) as info:
        load_located("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "d.yaml")
    assert [str(p) for p in info.value.problems] == [
        "d.yaml:4: duplicate key 'c' (first at line 3)",
        "d.yaml:5: duplicate key 'a' (first at line 1)",
    ]


def test_anchors_and_merge_keys_still_work() -> None:
    doc = load_located("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\nlist: [*b, *b]\n", "d.yaml")
    assert doc.data["other"] == {"x": 1, "y": 2}
    assert doc.lines[("list",)] == 5
    # An alias shares the anchored node, so problems inside it point at the anchor's line.
    assert doc.lines[("list", 1, "x")] == 1


def test_recursive_alias_is_an_error_not_a_hang() -> None:
    with pytest.raises(SourceError, match="an alias refers to a value that contains it"):
        load_located("a: &a [1, *a]\n", "d.yaml")


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 7):
        refs = ", ".join([f"*a{n - 1}"] * 10)
        lines.append(f"a{n}: &a{n} [{refs}]")
    with pytest.raises(SourceError, match=f"more than {MAX_VALUES} values"):
        load_located("\n".join(lines) + "\n", "bomb.yaml")


class Thing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["thing"] = "thing"
    size: int = Field(gt=0)


class Other(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["other"] = "other"


class Holder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    part: Thing | Other = Field(discriminator="kind")


def errors_for(text: str) -> list[str]:
    doc = load_located(text, "h.yaml")
    with pytest.raises(ValidationError) as info:
        Holder.model_validate(doc.data)
    return [str(p) for p in problems_from_pydantic(doc, info.value.errors())]


def test_pydantic_errors_are_located_and_union_tags_dropped() -> None:
    text = "name: n\npart:\n  kind: thing\n  size: 0\n  colour: red\n"
    assert errors_for(text) == [
        "h.yaml:4: part.size: Input should be greater than 0",
        "h.yaml:5: part.colour: unknown key 'colour'",
    ]


def test_missing_key_is_named_and_placed_at_its_parent() -> None:
    assert errors_for("part:\n  kind: other\n") == ["h.yaml:1: name: missing required key 'name'"]
    assert errors_for("name: n\npart:\n  kind: thing\n  size: nope\n") == [
        "h.yaml:4: part.size: Input should be a valid integer, unable to parse string as an integer"
    ]
