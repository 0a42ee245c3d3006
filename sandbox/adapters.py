"""Adapters from existing autograders' `results.json` to one neutral result.

Course teams bring autograders written for Gradescope or PrairieLearn; this module reads what they
write (`/autograder/results/results.json`, `/grade/results/results.json`) into `AdaptedResult`,
so the rest of the service never sees either format. Stdlib only.

The file is written by code that ran next to learner code, so it is untrusted: size is capped before
parsing, NaN/Infinity and huge or deeply nested values are refused, every field is type-checked,
points must lie in [0, max], and the number of tests is capped. Any violation raises
`ResultsFormatError` with a message naming the field, never a bare KeyError or TypeError.
Unknown keys (leaderboard, images, execution_time, ...) are ignored: both formats have optional
extras we do not use.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

Format = Literal["gradescope", "prairielearn"]

MAX_BYTES = 1_000_000  # PrairieLearn's own cap on results.json
MAX_TESTS = 1000
VISIBILITIES = frozenset({"visible", "hidden", "after_due_date", "after_published"})

# Keys only one of the formats uses; shared keys (score, output, tests, name) say nothing.
_GRADESCOPE_KEYS = frozenset(
    {"visibility", "stdout_visibility", "execution_time", "leaderboard", "extra_data"}
)
_GRADESCOPE_TEST_KEYS = frozenset({"max_score", "status", "visibility", "tags", "number"})
_PRAIRIELEARN_KEYS = frozenset({"gradable", "message", "format_errors", "images", "partial_scores"})
_PRAIRIELEARN_TEST_KEYS = frozenset({"points", "max_points", "description", "message", "images"})


class ResultsFormatError(ValueError):
    """results.json is missing, malformed or implausible; the message says what and where."""


@dataclass(frozen=True)
class AdaptedTest:
    """One test from either format. `passed` is the format's status, or points == max_points.
    `number` (Gradescope's, such as "1.2") orders tests; `tags` are kept as given."""

    name: str
    passed: bool
    points: float
    max_points: float
    message: str
    visibility: str
    number: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdaptedResult:
    """A whole results.json. `score / max_score` is the fraction earned; `gradable` False means
    the submission could not be graded (PrairieLearn: no attempt should be charged).

    `score_given` says the file carried a top-level score, which overrides the sum of the tests
    (Gradescope's rule; PrairieLearn's score is the fraction itself). Where the file has no tests
    but a score, `max_score` is 1 and `score` the fraction (Gradescope: the score over a maximum the
    file does not know, so the fraction is left to the caller: `fraction_of(maximum)`)."""

    tests: tuple[AdaptedTest, ...]
    score: float
    max_score: float
    gradable: bool
    message: str
    format: Format
    score_given: bool = False

    def points_out_of(self, maximum: float) -> float:
        """The top-level score as points out of `maximum`, the maximum the course team declared."""
        if self.format == "gradescope" and self.score_given:
            return min(max(self.score, 0.0), maximum)  # Gradescope scores are points already
        fraction = self.score / self.max_score if self.max_score > 0 else 0.0
        return min(max(fraction, 0.0), 1.0) * maximum


def parse_results_json(
    data: bytes, *, max_bytes: int = MAX_BYTES, format: Format | None = None
) -> AdaptedResult:
    """Parse a Gradescope or PrairieLearn results.json; `format` None means detect it."""
    if len(data) > max_bytes:
        raise ResultsFormatError(f"results.json is {len(data)} bytes, more than the {max_bytes} allowed")
    document = _decode(data)
    chosen = format or detect_format(document)
    if chosen == "gradescope":
        return _gradescope(document)
    if chosen == "prairielearn":
        return _prairielearn(document)
    raise ResultsFormatError(f"unknown results format {chosen!r}")


def _reject_constant(name: str) -> Any:
    raise ResultsFormatError(f"results.json contains {name}, which is not a number")


def _decode(data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsFormatError(f"results.json is not UTF-8 (byte {exc.start})") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except ResultsFormatError:
        raise  # from _reject_constant; it is a ValueError too
    except json.JSONDecodeError as exc:
        raise ResultsFormatError(
            f"results.json is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ResultsFormatError("results.json is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ResultsFormatError(f"results.json has an unreadable value: {exc}") from None
    if not isinstance(document, dict):
        raise ResultsFormatError("results.json must be a JSON object")
    return document


def detect_format(document: dict[str, Any]) -> Format:
    """Tell the formats apart by the keys only one of them uses, at the top and in tests."""
    tests = document.get("tests")
    test_keys: set[str] = set()
    if isinstance(tests, list):
        for test in tests[:MAX_TESTS]:
            if isinstance(test, dict):
                test_keys.update(k for k in test if isinstance(k, str))
    keys = set(document)
    gradescope = (keys & _GRADESCOPE_KEYS) | (test_keys & _GRADESCOPE_TEST_KEYS)
    prairielearn = (keys & _PRAIRIELEARN_KEYS) | (test_keys & _PRAIRIELEARN_TEST_KEYS)
    if gradescope and not prairielearn:
        return "gradescope"
    if prairielearn and not gradescope:
        return "prairielearn"
    if gradescope and prairielearn:
        raise ResultsFormatError(
            "cannot tell the format of results.json: it has Gradescope keys "
            f"({', '.join(sorted(gradescope))}) and PrairieLearn keys "
            f"({', '.join(sorted(prairielearn))})"
        )
    raise ResultsFormatError(
        "cannot tell the format of results.json: it has neither Gradescope nor PrairieLearn keys"
    )


def _number(value: Any, where: str, *, default: float | None = None) -> float:
    if value is None and default is not None:
        return default
    # bool is an int in Python, but `true` is not a score.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultsFormatError(f"{where} must be a number, got {_show(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ResultsFormatError(f"{where} must be a finite number, got {_show(value)}")
    return number


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ResultsFormatError(f"{where} must be a string, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    if isinstance(value, dict | list):
        return type(value).__name__
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _test_list(document: dict[str, Any]) -> list[dict[str, Any]]:
    tests = document.get("tests", [])
    if tests is None:
        return []
    if not isinstance(tests, list):
        raise ResultsFormatError(f"tests must be a list, got {_show(tests)}")
    if len(tests) > MAX_TESTS:
        raise ResultsFormatError(f"results.json has {len(tests)} tests, more than the {MAX_TESTS} allowed")
    for index, test in enumerate(tests):
        if not isinstance(test, dict):
            raise ResultsFormatError(f"tests[{index}] must be an object, got {_show(test)}")
    return tests


def _points(test: dict[str, Any], where: str, points_key: str, max_key: str) -> tuple[float, float]:
    points = _number(test.get(points_key), f"{where}.{points_key}", default=0.0)
    max_points = _number(test.get(max_key), f"{where}.{max_key}", default=0.0)
    if max_points < 0:
        raise ResultsFormatError(f"{where}.{max_key} must not be negative, got {_show(max_points)}")
    if points < 0:
        raise ResultsFormatError(f"{where}.{points_key} must not be negative, got {_show(points)}")
    if points > max_points:
        raise ResultsFormatError(f"{where}.{points_key} ({points:g}) is more than {max_key} ({max_points:g})")
    return points, max_points


class _Names:
    """Makes test names unique (`name [2]`): downstream, tests are looked up by name."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
        self._taken: set[str] = set()

    def unique(self, name: str) -> str:
        candidate, count = name, self._seen.get(name, 0)
        # A test may itself be called "parses [2]": count on until the name is free.
        while candidate in self._taken:
            count += 1
            candidate = f"{name} [{count + 1}]"
        self._seen[name] = count
        self._taken.add(candidate)
        return candidate


def _name(test: dict[str, Any], where: str, index: int, names: _Names) -> str:
    name = _text(test.get("name"), f"{where}.name").strip() or f"test {index + 1}"
    return names.unique(name)


def _visibility(value: Any, where: str, default: str) -> str:
    if value is None:
        return default
    if value not in VISIBILITIES:
        raise ResultsFormatError(
            f"{where} must be one of {', '.join(sorted(VISIBILITIES))}, got {_show(value)}"
        )
    return str(value)


def _test_number(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ResultsFormatError(f'{where} must be a number or text such as "1.2", got {_show(value)}')
    return str(value)[:40]


def _tags(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise ResultsFormatError(f"{where} must be a list of strings")
    return tuple(tag[:100] for tag in value[:50])


def number_key(number: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key of a test number: "1.2" before "1.10", numbers before text."""
    parts: list[tuple[int, int | str]] = []
    for part in number.split("."):
        # isdecimal, not isdigit: "²" is a digit that int() refuses.
        parts.append((0, int(part)) if part.isdecimal() and part.isascii() else (1, part))
    return tuple(parts)


def _gradescope(document: dict[str, Any]) -> AdaptedResult:
    default_visibility = _visibility(document.get("visibility"), "visibility", "visible")
    names = _Names()
    tests: list[AdaptedTest] = []
    for index, test in enumerate(_test_list(document)):
        where = f"tests[{index}]"
        points, max_points = _points(test, where, "score", "max_score")
        status = test.get("status")
        if status is None:
            passed = points >= max_points
        elif status in ("passed", "failed"):
            passed = status == "passed"
        else:
            raise ResultsFormatError(f"{where}.status must be passed or failed, got {_show(status)}")
        tests.append(
            AdaptedTest(
                name=_name(test, where, index, names),
                passed=passed,
                points=points,
                max_points=max_points,
                message=_text(test.get("output"), f"{where}.output"),
                visibility=_visibility(test.get("visibility"), f"{where}.visibility", default_visibility),
                number=_test_number(test.get("number"), f"{where}.number"),
                tags=_tags(test.get("tags"), f"{where}.tags"),
            )
        )
    max_score = math.fsum(t.max_points for t in tests)
    score_given = document.get("score") is not None
    if not tests and not score_given:
        raise ResultsFormatError("results.json has neither tests nor a top-level score")
    summed = math.fsum(t.points for t in tests)
    # Gradescope's top-level score, when present, overrides the sum of the tests; the maximum lives
    # in the assignment's settings, not in the file, so the score is only checked to be a score.
    score = _number(document.get("score"), "score", default=summed)
    if score < 0:
        raise ResultsFormatError(f"score must not be negative, got {score:g}")
    return AdaptedResult(
        tests=tuple(tests),
        score=score,
        max_score=max_score,
        gradable=True,
        message=_text(document.get("output"), "output"),
        format="gradescope",
        score_given=score_given,
    )


def _prairielearn(document: dict[str, Any]) -> AdaptedResult:
    gradable = document.get("gradable", True)
    if not isinstance(gradable, bool):
        raise ResultsFormatError(f"gradable must be true or false, got {_show(gradable)}")
    names = _Names()
    tests: list[AdaptedTest] = []
    for index, test in enumerate(_test_list(document)):
        where = f"tests[{index}]"
        points, max_points = _points(test, where, "points", "max_points")
        parts = [_text(test.get("message"), f"{where}.message"), _text(test.get("output"), f"{where}.output")]
        tests.append(
            AdaptedTest(
                name=_name(test, where, index, names),
                passed=points >= max_points,
                points=points,
                max_points=max_points,
                message="\n".join(p for p in parts if p),
                visibility="visible",  # PrairieLearn has no per-test visibility
            )
        )
    parts = [_text(document.get("message"), "message"), _text(document.get("output"), "output")]
    errors = document.get("format_errors", [])
    if not isinstance(errors, list) or not all(isinstance(e, str) for e in errors):
        raise ResultsFormatError("format_errors must be a list of strings")
    parts.extend(errors)
    message = "\n".join(p for p in parts if p)
    test_max = math.fsum(t.max_points for t in tests)
    # PrairieLearn's score is a fraction; express it in the tests' points when there are any.
    max_score = test_max if test_max > 0 else 1.0
    if not gradable:
        return AdaptedResult(
            tests=tuple(tests),
            score=0.0,
            max_score=max_score,
            gradable=False,
            message=message,
            format="prairielearn",
        )
    if document.get("score") is None:
        if test_max <= 0:
            raise ResultsFormatError("score is required when the tests carry no points")
        fraction = math.fsum(t.points for t in tests) / test_max
    else:
        fraction = _number(document.get("score"), "score")
        if not 0 <= fraction <= 1:
            raise ResultsFormatError(f"score must be a fraction between 0 and 1, got {_show(fraction)}")
    return AdaptedResult(
        tests=tuple(tests),
        score=round(fraction * max_score, 6),
        max_score=max_score,
        gradable=True,
        message=message,
        format="prairielearn",
        score_given=document.get("score") is not None,
    )
