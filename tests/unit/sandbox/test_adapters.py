"""Gradescope and PrairieLearn results.json into one neutral result, refusing anything implausible."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox.adapters import (
    MAX_TESTS,
    AdaptedResult,
    AdaptedTest,
    ResultsFormatError,
    number_key,
    parse_results_json,
)


def parse(document: Any, **kwargs: Any) -> AdaptedResult:
    return parse_results_json(json.dumps(document).encode(), **kwargs)


GRADESCOPE = {
    "score": 3.0,
    "output": "Autograder ran 3 tests",
    "visibility": "after_due_date",
    "execution_time": 1.5,
    "tests": [
        {
            "name": "test_add",
            "score": 1,
            "max_score": 1,
            "status": "passed",
            "output": "ok",
            "visibility": "visible",
            "number": "1.1",
            "tags": ["math"],
        },
        {"name": "test_sub", "score": 0, "max_score": 2, "status": "failed", "output": "expected 1, got 2"},
        {"name": "test_mul", "score": 2, "max_score": 2},
    ],
    "leaderboard": [{"name": "speed", "value": 3}],
}

PRAIRIELEARN = {
    "gradable": True,
    "score": 0.25,
    "message": "Some tests failed",
    "output": "full log",
    "tests": [
        {
            "name": "Check add",
            "description": "adds",
            "points": 1,
            "max_points": 1,
            "message": "good",
            "output": "",
        },
        {"name": "Check sub", "points": 0, "max_points": 3, "message": "wrong sign", "output": "got -1"},
    ],
}


def test_gradescope_results() -> None:
    result = parse(GRADESCOPE)
    assert result.format == "gradescope"
    assert (result.score, result.max_score, result.gradable) == (3.0, 5.0, True)
    assert result.message == "Autograder ran 3 tests"
    assert result.tests == (
        AdaptedTest("test_add", True, 1.0, 1.0, "ok", "visible", "1.1", ("math",)),
        AdaptedTest("test_sub", False, 0.0, 2.0, "expected 1, got 2", "after_due_date"),
        AdaptedTest("test_mul", True, 2.0, 2.0, "", "after_due_date"),
    )


def test_gradescope_score_defaults_to_the_sum_of_the_tests() -> None:
    document = {**GRADESCOPE}
    del document["score"]
    assert parse(document).score == 3.0


def test_gradescope_top_level_score_overrides_the_tests_and_may_come_alone() -> None:
    overriding = parse({"score": 9, "tests": [{"score": 1, "max_score": 1}]})
    assert overriding.score_given and overriding.points_out_of(10) == 9
    assert overriding.points_out_of(5) == 5  # never more than the maximum the catalog declares
    alone = parse({"score": 7.5, "visibility": "visible"})
    assert (alone.tests, alone.score_given, alone.points_out_of(10)) == ((), True, 7.5)


def test_prairielearn_score_alone_is_a_fraction_of_the_declared_maximum() -> None:
    alone = parse({"gradable": True, "score": 0.8})
    assert alone.points_out_of(20) == pytest.approx(16)


def test_gradescope_test_numbers_sort_as_numbers() -> None:
    numbers = ["1.10", "2", "1.2", "intro", "1.1"]
    assert sorted(numbers, key=number_key) == ["1.1", "1.2", "1.10", "2", "intro"]


def test_gradescope_status_wins_over_points() -> None:
    document = {"tests": [{"name": "t", "score": 1, "max_score": 1, "status": "failed"}]}
    (test,) = parse(document).tests
    assert test.passed is False


def test_prairielearn_results() -> None:
    result = parse(PRAIRIELEARN)
    assert result.format == "prairielearn"
    # The fraction is expressed in the tests' points: 0.25 of 4.
    assert (result.score, result.max_score, result.gradable) == (1.0, 4.0, True)
    assert result.message == "Some tests failed\nfull log"
    assert result.tests == (
        AdaptedTest("Check add", True, 1.0, 1.0, "good", "visible"),
        AdaptedTest("Check sub", False, 0.0, 3.0, "wrong sign\ngot -1", "visible"),
    )


def test_prairielearn_without_tests_keeps_the_fraction() -> None:
    result = parse({"gradable": True, "score": 0.8, "message": "ok"})
    assert (result.score, result.max_score, result.tests) == (0.8, 1.0, ())


def test_prairielearn_not_gradable() -> None:
    result = parse({"gradable": False, "format_errors": ["answer.py missing"]})
    assert (result.gradable, result.score, result.max_score) == (False, 0.0, 1.0)
    assert result.message == "answer.py missing"


def test_prairielearn_score_from_tests_when_absent() -> None:
    result = parse({"tests": [{"name": "a", "points": 1, "max_points": 4}]})
    assert (result.score, result.max_score) == (1.0, 4.0)


def test_format_can_be_forced() -> None:
    result = parse({"score": 0.5, "tests": []}, format="prairielearn")
    assert (result.format, result.score, result.max_score) == ("prairielearn", 0.5, 1.0)


def test_duplicate_test_names_are_made_unique() -> None:
    document = {
        "tests": [
            {"name": "t", "score": 1, "max_score": 1},
            {"name": "t", "score": 0, "max_score": 1},
            {"score": 0, "max_score": 1},
        ]
    }
    assert [t.name for t in parse(document).tests] == ["t", "t [2]", "test 3"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe", "results.json is not UTF-8 (byte 0)"),
        (
            b"{not json",
            "results.json is not valid JSON: Expecting property name enclosed in "
            "double quotes at line 1 column 2",
        ),
        (b"[1, 2]", "results.json must be a JSON object"),
        (b'{"gradable": true, "score": NaN}', "results.json contains NaN, which is not a number"),
        (b'{"gradable": true, "score": Infinity}', "results.json contains Infinity, which is not a number"),
        (b'{"gradable": true, "score": 1e999}', "score must be a finite number, got inf"),
        (b"[" * 100_000 + b"]" * 100_000, "results.json is nested too deeply"),
        (
            b'{"score": 1}',
            "cannot tell the format of results.json: it has neither Gradescope nor PrairieLearn keys",
        ),
    ],
)
def test_unreadable_input(raw: bytes, message: str) -> None:
    with pytest.raises(ResultsFormatError) as info:
        parse_results_json(raw)
    assert str(info.value) == message


def test_size_is_capped_before_parsing() -> None:
    with pytest.raises(
        ResultsFormatError, match=r"results\.json is 1000001 bytes, more than the 1000000 allowed"
    ):
        parse_results_json(b" " * 1_000_001)
    with pytest.raises(ResultsFormatError, match="more than the 10 allowed"):
        parse_results_json(json.dumps(PRAIRIELEARN).encode(), max_bytes=10)


def test_too_many_tests() -> None:
    tests = [{"name": f"t{i}", "score": 0, "max_score": 1} for i in range(MAX_TESTS + 1)]
    with pytest.raises(ResultsFormatError, match="has 1001 tests, more than the 1000 allowed"):
        parse({"tests": tests})
    tests.pop()
    assert len(parse({"tests": tests}).tests) == MAX_TESTS


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"tests": {"a": 1}, "visibility": "visible"}, "tests must be a list, got dict"),
        ({"tests": ["x"], "visibility": "visible"}, "tests[0] must be an object, got 'x'"),
        ({"tests": [{"score": "1", "max_score": 1}]}, "tests[0].score must be a number, got '1'"),
        ({"tests": [{"score": True, "max_score": 1}]}, "tests[0].score must be a number, got True"),
        ({"tests": [{"score": -1, "max_score": 1}]}, "tests[0].score must not be negative, got -1"),
        ({"tests": [{"score": 3, "max_score": 2}]}, "tests[0].score (3) is more than max_score (2)"),
        ({"tests": [{"score": 0, "max_score": -2}]}, "tests[0].max_score must not be negative"),
        (
            {"tests": [{"score": 1, "max_score": 1, "status": "ok"}]},
            "tests[0].status must be passed or failed, got 'ok'",
        ),
        (
            {"tests": [{"score": 1, "max_score": 1, "visibility": "public"}]},
            "tests[0].visibility must be one of after_due_date, after_published, hidden, visible, "
            "got 'public'",
        ),
        ({"tests": [{"name": 7, "score": 1, "max_score": 1}]}, "tests[0].name must be a string, got 7"),
        ({"score": -1, "tests": [{"score": 1, "max_score": 1}]}, "score must not be negative, got -1"),
        ({"visibility": "hidden", "tests": []}, "results.json has neither tests nor a top-level score"),
        ({"tests": [{"score": 1, "max_score": 1, "tags": "x"}]}, "tests[0].tags must be a list of strings"),
        ({"tests": [{"score": 1, "max_score": 1, "number": [1]}]}, "tests[0].number must be a number"),
    ],
)
def test_bad_gradescope_fields(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ResultsFormatError) as info:
        parse(document)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"gradable": "yes", "score": 1}, "gradable must be true or false, got 'yes'"),
        ({"gradable": True, "score": 1.5}, "score must be a fraction between 0 and 1, got 1.5"),
        ({"gradable": True, "score": -0.1}, "score must be a fraction between 0 and 1, got -0.1"),
        ({"gradable": True}, "score is required when the tests carry no points"),
        ({"gradable": True, "score": 1, "message": ["x"]}, "message must be a string, got list"),
        ({"gradable": True, "score": 1, "format_errors": "x"}, "format_errors must be a list of strings"),
        (
            {"score": 1, "tests": [{"name": "a", "points": 5, "max_points": 1}]},
            "tests[0].points (5) is more than max_points (1)",
        ),
    ],
)
def test_bad_prairielearn_fields(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ResultsFormatError) as info:
        parse(document)
    assert str(info.value) == message


def test_mixed_formats_are_refused() -> None:
    with pytest.raises(ResultsFormatError) as info:
        parse({"gradable": True, "visibility": "visible", "score": 1})
    assert str(info.value) == (
        "cannot tell the format of results.json: it has Gradescope keys (visibility) and "
        "PrairieLearn keys (gradable)"
    )


def test_results_format_error_is_a_value_error() -> None:
    assert issubclass(ResultsFormatError, ValueError)


def test_test_names_stay_unique_even_when_a_test_is_named_like_a_renamed_one() -> None:
    document = {
        "tests": [{"name": n, "score": 1, "max_score": 1} for n in ("parses", "parses", "parses [2]")]
    }
    assert [t.name for t in parse(document).tests] == ["parses", "parses [2]", "parses [2] [2]"]


def test_a_test_number_with_odd_digits_is_ordered_not_a_crash() -> None:
    assert number_key("1.²") == ((0, 1), (1, "²"))
