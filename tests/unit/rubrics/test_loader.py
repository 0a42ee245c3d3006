"""Loading rubric files: every bad input is reported with its file and line, all at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rubrics import (
    Criterion,
    LintWarnings,
    RubricError,
    TestsPassed,
    load_rubric,
    load_rubric_text,
    rubric_from_dict,
)
from rubrics.source import SourceError

GOOD = """\
id: demo
title: Demo rubric
version: 2
pass_mark: 0.5
criteria:
  - id: tests
    title: Tests
    weight: 2
    auto: {kind: tests_passed}
    max_points: 10
  - id: style
    title: Style
    manual: true
    minimum_level: ok
    levels:
      - {label: bad, points: 0}
      - {label: ok, points: 1}
      - {label: great, points: 3}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(RubricError) as info:
        load_rubric_text(textwrap.dedent(text), "r.yaml")
    assert isinstance(info.value, SourceError)
    return [str(p) for p in info.value.problems]


def test_good_rubric_loads_with_defaults_filled_in() -> None:
    rubric = load_rubric_text(GOOD, "r.yaml")
    assert rubric.id == "demo"
    assert rubric.version == 2
    assert rubric.pass_mark == 0.5
    tests, style = rubric.criteria
    assert isinstance(tests.auto, TestsPassed)
    assert tests.weight == 2 and tests.top_points == 10
    assert style.weight == 1 and style.top_points == 3
    assert [lv.label for lv in style.levels] == ["bad", "ok", "great"]
    assert rubric.max_score == 23


def test_load_rubric_reads_a_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("pass_mark: 0.5", "pass_mark: 5"))
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    assert str(info.value) == (
        f"{path}:4: pass_mark: pass_mark is a fraction of the maximum score between 0 and 1 "
        "(0.6 means 60%), got 5"
    )


def test_file_that_is_not_utf8_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"id: demo\ntitle: caf\xe9\n")
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    assert [str(p) for p in info.value.problems] == [f"{path}:2: file is not valid UTF-8"]


def test_yaml_syntax_error_has_its_line() -> None:
    found = problems("id: demo\ntitle: [unclosed\npass_mark: 0.5\n")
    assert len(found) == 1
    assert found[0].startswith("r.yaml:3: invalid YAML")


def test_document_that_is_not_a_mapping() -> None:
    assert problems("- just\n- a list\n") == [
        "r.yaml:1: a rubric is a mapping with id, title, pass_mark and criteria"
    ]
    assert problems("") == ["r.yaml:1: a rubric is a mapping with id, title, pass_mark and criteria"]


def test_unknown_keys_are_forbidden_at_every_level() -> None:
    text = GOOD.replace("    weight: 2\n", "    wieght: 2\n").replace(
        "{label: ok, points: 1}", "{label: ok, points: 1, colour: red}"
    )
    assert problems(text) == [
        "r.yaml:8: criteria[0].wieght: unknown key 'wieght'",
        "r.yaml:17: criteria[1].levels[1].colour: unknown key 'colour'",
    ]


def test_wrong_types_show_what_was_written() -> None:
    text = GOOD.replace("weight: 2", 'weight: "2"').replace("label: bad", "label: no")
    assert problems(text) == [
        "r.yaml:8: criteria[0].weight: Input should be a valid number (got '2')",
        "r.yaml:16: criteria[1].levels[0].label: Input should be a valid string (got False)",
    ]


def test_missing_required_keys_point_at_the_enclosing_item() -> None:
    text = GOOD.replace("    title: Style\n", "").replace("{label: ok, points: 1}", "{label: ok}")
    assert problems(text) == [
        "r.yaml:11: criteria[1].title: missing required key 'title'",
        "r.yaml:16: criteria[1].levels[1].points: missing required key 'points'",
    ]


def test_duplicate_criterion_ids() -> None:
    text = GOOD.replace("  - id: style", "  - id: tests")
    assert problems(text) == ["r.yaml:11: criteria[1].id: duplicate criterion id 'tests'"]


def test_duplicate_criterion_ids_are_found_even_when_another_criterion_is_broken() -> None:
    text = GOOD.replace("  - id: style", "  - id: tests").replace("weight: 2", "weight: x")
    assert problems(text) == [
        "r.yaml:8: criteria[0].weight: Input should be a valid number (got 'x')",
        "r.yaml:11: criteria[1].id: duplicate criterion id 'tests'",
    ]


def test_duplicate_level_labels() -> None:
    text = GOOD.replace("{label: great, points: 3}", "{label: ok, points: 3}")
    # Two problems: the duplicate, and minimum_level is then still valid (it names 'ok').
    assert problems(text) == ["r.yaml:18: criteria[1].levels[2].label: duplicate level label 'ok'"]


def test_unknown_automatic_kind_lists_the_known_ones() -> None:
    text = GOOD.replace("kind: tests_passed", "kind: coverage")
    assert problems(text) == [
        "r.yaml:9: criteria[0].auto: unknown kind 'coverage'; expected one of 'tests_passed', "
        "'test_points', 'lint', 'files_present', 'quiz_score'"
    ]


def test_errors_inside_an_automatic_kind_are_located_without_the_union_tag() -> None:
    text = GOOD.replace("auto: {kind: tests_passed}", "auto: {kind: tests_passed, tests: [1]}")
    assert problems(text) == ["r.yaml:9: criteria[0].auto.tests[0]: Input should be a valid string (got 1)"]


def test_rules_of_an_automatic_kind_are_reported() -> None:
    text = GOOD.replace(
        "auto: {kind: tests_passed}",
        "auto: {kind: lint, thresholds: [{max_warnings: 5, fraction: 1}, {max_warnings: 2, fraction: 0.5}]}",
    )
    assert problems(text) == [
        "r.yaml:9: criteria[0].auto: thresholds must list max_warnings in increasing order"
    ]


def test_pass_mark_above_one() -> None:
    assert problems(GOOD.replace("pass_mark: 0.5", "pass_mark: 60")) == [
        "r.yaml:4: pass_mark: pass_mark is a fraction of the maximum score between 0 and 1 "
        "(0.6 means 60%), got 60"
    ]


def test_minimum_level_that_does_not_exist() -> None:
    assert problems(GOOD.replace("minimum_level: ok", "minimum_level: fine")) == [
        "r.yaml:14: criteria[1].minimum_level: minimum_level 'fine' is not one of the levels: bad, ok, great"
    ]


def test_pass_mark_that_cannot_be_reached() -> None:
    # The lint kind gives at most half of its points, so the best score is 5 + 3 of 13.
    text = GOOD.replace("pass_mark: 0.5", "pass_mark: 0.7").replace(
        "auto: {kind: tests_passed}",
        "auto: {kind: lint, thresholds: [{max_warnings: 0, fraction: 0.25}]}",
    )
    assert problems(text) == [
        "r.yaml:4: pass_mark: pass_mark 0.7 cannot be reached: the best possible score is 8 of 23"
    ]


def test_positive_items_that_cannot_reach_max_points_make_the_pass_mark_unreachable() -> None:
    text = """\
    id: items
    title: Items
    pass_mark: 0.9
    criteria:
      - id: extras
        title: Extras
        manual: true
        max_points: 10
        items:
          - {id: a, points: 3}
          - {id: b, points: 4}
    """
    assert problems(text) == [
        "r.yaml:3: pass_mark: pass_mark 0.9 cannot be reached: the best possible score is 7 of 10"
    ]


def test_levels_with_no_points() -> None:
    text = GOOD.replace("points: 1}", "points: 0}").replace("points: 3}", "points: 0}")
    assert problems(text) == [
        "r.yaml:15: criteria[1].levels: levels give no points: at least one level needs points > 0"
    ]


def test_weights_must_be_positive() -> None:
    assert problems(GOOD.replace("weight: 2", "weight: 0")) == [
        "r.yaml:8: criteria[0].weight: Input should be greater than 0"
    ]
    assert problems(GOOD.replace("weight: 2", "weight: -1")) == [
        "r.yaml:8: criteria[0].weight: Input should be greater than 0"
    ]


def test_every_problem_is_reported_sorted_by_line() -> None:
    text = (
        GOOD.replace("pass_mark: 0.5", "pass_mark: 2")
        .replace("weight: 2", "weight: 0")
        .replace("minimum_level: ok", "minimum_level: fine")
        .replace("{label: great, points: 3}", "{label: bad, points: 3}")
    )
    found = problems(text)
    assert [p.split(":")[1] for p in found] == ["4", "8", "14", "18"]


def test_criterion_shape_rules() -> None:
    text = """\
    id: shapes
    title: Shapes
    pass_mark: 0.5
    criteria:
      - id: both
        title: Both manual and auto
        manual: true
        auto: {kind: quiz_score}
        max_points: 1
      - id: neither
        title: Neither
        max_points: 1
      - id: auto-no-max
        title: Auto without max
        auto: {kind: quiz_score}
      - id: auto-levels
        title: Auto with levels
        auto: {kind: quiz_score}
        max_points: 2
        levels: [{label: a, points: 2}]
      - id: levels-and-items
        title: Levels and items
        manual: true
        levels: [{label: a, points: 2}]
        items: [{id: x, points: 1}]
      - id: floor-on-levels
        title: Floor on levels
        manual: true
        floor: 1
        levels: [{label: a, points: 2}]
      - id: negative-no-max
        title: Negative without max
        manual: true
        mode: negative
        items: [{id: x, points: -1}]
      - id: bad-bounds
        title: Bad bounds
        manual: true
        max_points: 5
        floor: 6
        ceiling: 4
        items: [{id: x, points: 1}, {id: x, points: 2}]
      - id: min-level-no-levels
        title: Minimum level without levels
        manual: true
        max_points: 3
        minimum_level: good
      - id: manual-nothing
        title: Manual with nothing to score
        manual: true
    """
    assert problems(text) == [
        "r.yaml:7: criteria[0].manual: a criterion is either `manual: true` or `auto:`, not both",
        "r.yaml:10: criteria[1]: criterion needs `auto: {kind: ...}` or `manual: true`",
        "r.yaml:13: criteria[2]: an automatic criterion needs `max_points`",
        "r.yaml:20: criteria[3].levels: an automatic criterion is scored from evidence; "
        "remove `levels` or make it `manual: true`",
        "r.yaml:25: criteria[4].items: a criterion has `levels` or `items`, not both",
        "r.yaml:29: criteria[5].floor: `floor` only applies to point items",
        "r.yaml:34: criteria[6].mode: negative grading starts from `max_points`; set it",
        "r.yaml:40: criteria[7].floor: floor (6) must be between 0 and max_points (5)",
        "r.yaml:41: criteria[7].ceiling: ceiling (4) is below max_points (5), "
        "so the maximum could never be reached",
        "r.yaml:42: criteria[7].items[1].id: duplicate item id 'x'",
        "r.yaml:47: criteria[8].minimum_level: `minimum_level` needs `levels`",
        "r.yaml:48: criteria[9]: a manual criterion needs `levels`, `items` or `max_points`",
    ]


def test_minimum_points_beyond_what_the_criterion_gives() -> None:
    text = GOOD.replace("    max_points: 10\n", "    max_points: 10\n    minimum_points: 11\n")
    assert problems(text) == [
        "r.yaml:11: criteria[0].minimum_points: minimum_points (11) is more than this criterion can give (10)"
    ]


def test_duplicate_yaml_keys_are_errors_not_silently_overwritten() -> None:
    text = GOOD.replace("    weight: 2\n", "    weight: 2\n    weight: 5\n")
    assert problems(text) == ["r.yaml:9: duplicate key 'weight' (first at line 8)"]


def test_rubric_from_dict_validates_parsed_data_without_lines() -> None:
    with pytest.raises(RubricError) as info:
        rubric_from_dict({"id": "x", "title": "X", "pass_mark": 0.5, "criteria": []}, "db:7")
    assert [str(p) for p in info.value.problems] == [
        "db:7:1: criteria: a rubric needs at least one criterion"
    ]
    rubric = rubric_from_dict(
        {
            "id": "x",
            "title": "X",
            "pass_mark": 0.5,
            "criteria": [{"id": "q", "title": "Quiz", "auto": {"kind": "quiz_score"}, "max_points": 4}],
        },
        "db:7",
    )
    assert rubric.max_score == 4


def test_models_built_in_python_apply_the_same_rules() -> None:
    with pytest.raises(ValueError, match="an automatic criterion needs `max_points`"):
        Criterion(id="t", title="T", auto=TestsPassed())
    with pytest.raises(ValueError, match="increasing order"):
        LintWarnings.model_validate(
            {"thresholds": [{"max_warnings": 3, "fraction": 1}, {"max_warnings": 3, "fraction": 0}]}
        )
