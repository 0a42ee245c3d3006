"""Rubric versions: content_hash follows every edit, scoring_hash only edits that change scores."""

from __future__ import annotations

import hashlib

from rubrics import Criterion, Level, Rubric, load_rubric_text

BASE = """\
id: essay
title: Essay
version: 1
pass_mark: 0.5
criteria:
  - id: argument
    title: Argument
    manual: true
    levels:
      - {label: weak, points: 0, description: "No clear claim."}
      - {label: strong, points: 3, description: "A clear claim, well supported."}
"""


def load(text: str) -> Rubric:
    return load_rubric_text(text, "essay.yaml")


def test_content_hash_is_sha256_of_the_canonical_json() -> None:
    rubric = load(BASE)
    expected = hashlib.sha256(rubric.canonical_json().encode()).hexdigest()
    assert rubric.content_hash == expected
    assert rubric.canonical_json().startswith('{"criteria":[{"auto":null,')


def test_content_hash_ignores_formatting_and_explicit_defaults() -> None:
    reformatted = "# a comment\n" + BASE.replace("pass_mark: 0.5", "pass_mark:   0.50").replace(
        "    manual: true\n", "    manual: true\n    weight: 1\n"
    ).replace("points: 3,", "points: 3.0,")
    assert load(reformatted).content_hash == load(BASE).content_hash


def test_same_definition_built_in_python_has_the_same_hash() -> None:
    built = Rubric(
        id="essay",
        title="Essay",
        version=1,
        pass_mark=0.5,
        criteria=(
            Criterion(
                id="argument",
                title="Argument",
                manual=True,
                levels=(
                    Level(label="weak", points=0, description="No clear claim."),
                    Level(label="strong", points=3, description="A clear claim, well supported."),
                ),
            ),
        ),
    )
    assert built.content_hash == load(BASE).content_hash


def test_any_edit_changes_the_content_hash() -> None:
    base = load(BASE)
    edits = [
        BASE.replace("points: 3", "points: 4"),
        BASE.replace("No clear claim.", "No claim."),
        BASE.replace("version: 1", "version: 2"),
        BASE.replace("pass_mark: 0.5", "pass_mark: 0.6"),
    ]
    hashes = {load(text).content_hash for text in edits}
    assert len(hashes) == len(edits)
    assert base.content_hash not in hashes


def test_scoring_hash_ignores_wording_and_version_but_not_points() -> None:
    base = load(BASE)
    reworded = load(
        BASE.replace("No clear claim.", "No claim at all.")
        .replace("title: Argument", "title: The argument")
        .replace("version: 1", "version: 2")
    )
    assert reworded.scoring_hash == base.scoring_hash
    assert reworded.content_hash != base.content_hash
    assert load(BASE.replace("points: 3", "points: 4")).scoring_hash != base.scoring_hash
    assert load(BASE.replace("label: weak", "label: thin")).scoring_hash != base.scoring_hash


def test_version_is_optional() -> None:
    rubric = load(BASE.replace("version: 1\n", ""))
    assert rubric.version is None
