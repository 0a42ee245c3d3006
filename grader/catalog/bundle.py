"""What a repository assessment carries into grading: its files, and the tests its reference produced.

Both travel inside the stored assessment version (the database is the only thing web and worker
hosts share with the catalog), so they are plain JSON there:

* the bundle maps a path relative to the assessment folder to its text, or to `{"base64": ...}`
  for a binary file (a compiled checker, a data set, an image a grader compares against);
* the expected tests (`expected_tests.json`, written by `grader catalog check`) list, per suite,
  each test id the reference solution reported and its maximum. They pin the test set: a test that
  does not report in a learner's run counts as failed with its points, and a test that appears
  only in a learner's run counts for nothing. The same file keeps the self-check that pinned them
  (when, on which backend, how many tests the reference passed and the starter failed), so the staff
  pages can show it from the loaded catalog.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

EXPECTED_FORMAT = 2


@dataclass(frozen=True)
class Bundle:
    """The assessment's files, keyed by path relative to its folder."""

    files: Mapping[str, bytes]

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any] | None) -> Bundle:
        files: dict[str, bytes] = {}
        for path, value in (stored or {}).items():
            if isinstance(value, str):
                files[path] = value.encode()
            elif isinstance(value, Mapping) and isinstance(value.get("base64"), str):
                files[path] = base64.b64decode(value["base64"])
        return cls(files)

    def to_stored(self) -> dict[str, Any]:
        stored: dict[str, Any] = {}
        for path, content in sorted(self.files.items()):
            try:
                stored[path] = content.decode("utf-8")
            except UnicodeDecodeError:
                stored[path] = {"base64": base64.b64encode(content).decode()}
        return stored

    def under(self, folder: str) -> dict[str, bytes]:
        """The files below `folder`, keyed by their path inside it."""
        prefix = folder.rstrip("/") + "/"
        return {
            path.removeprefix(prefix): data for path, data in self.files.items() if path.startswith(prefix)
        }

    def digest(self, folder: str | None = None) -> str:
        """SHA-256 over the paths and contents below `folder` (or all): the identity of a grader's files."""
        hasher = hashlib.sha256()
        files = self.files if folder is None else self.under(folder)
        for path, data in sorted(files.items()):
            hasher.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
        return hasher.hexdigest()


@dataclass(frozen=True)
class ExpectedTest:
    id: str
    max_points: float
    # Slower in the reference check than its suite's `canary_max_seconds`: never copied into a canary
    # while a faster test can be (grader/harness/canaries.py), so a run does not pay for it twice.
    slow: bool = False


@dataclass(frozen=True)
class SelfCheck:
    """The reference/starter run that pinned the tests: when, where, and what it found."""

    checked_at: datetime
    backend: str
    reference_passed: int  # tests the reference solution passed (all of them, or the check fails)
    starter_failed: int  # tests (or suite totals) the starter code failed (at least one)

    def to_file_data(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "backend": self.backend,
            "reference_passed": self.reference_passed,
            "starter_failed": self.starter_failed,
        }

    def same_outcome(self, other: SelfCheck | None) -> bool:
        """The same findings on the same backend, whenever they were made."""
        return other is not None and (self.backend, self.reference_passed, self.starter_failed) == (
            other.backend,
            other.reference_passed,
            other.starter_failed,
        )

    @classmethod
    def from_file_data(cls, data: Any) -> SelfCheck:
        counts = [data.get(key) if isinstance(data, dict) else None for key in _SELF_CHECK_COUNTS]
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("checked_at"), str)
            or not isinstance(data.get("backend"), str)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts)
        ):
            raise ValueError(
                "self_check needs checked_at (ISO 8601), backend, reference_passed and starter_failed"
            )
        try:
            checked_at = datetime.fromisoformat(data["checked_at"])
        except ValueError:
            raise ValueError("self_check.checked_at must be an ISO 8601 date and time") from None
        if checked_at.tzinfo is None:
            raise ValueError("self_check.checked_at needs a time zone")
        return cls(checked_at, data["backend"], data["reference_passed"], data["starter_failed"])


_SELF_CHECK_COUNTS = ("reference_passed", "starter_failed")


@dataclass(frozen=True)
class ExpectedTests:
    """Per suite id, the tests the reference solution reported, in the order it reported them."""

    suites: Mapping[str, tuple[ExpectedTest, ...]]
    # Command suites whose reference run gave a top-level score: only theirs may override the tests.
    totals: frozenset[str] = frozenset()
    # The check that recorded them; None in files written before checks were recorded.
    self_check: SelfCheck | None = None

    def same_tests(self, other: ExpectedTests) -> bool:
        return (self.suites, self.totals) == (other.suites, other.totals)

    def for_suite(self, suite_id: str) -> tuple[ExpectedTest, ...] | None:
        return self.suites.get(suite_id)

    def to_file_data(self) -> dict[str, Any]:
        return {
            "format": EXPECTED_FORMAT,
            "suites": {
                suite: [
                    {"id": test.id, "max_points": test.max_points, **({"slow": True} if test.slow else {})}
                    for test in tests
                ]
                for suite, tests in self.suites.items()
            },
            **({"totals": sorted(self.totals)} if self.totals else {}),
            **({"self_check": self.self_check.to_file_data()} if self.self_check else {}),
        }

    @classmethod
    def from_file_data(cls, data: Any, pytest_suites: Mapping[str, str]) -> ExpectedTests:
        """Read expected_tests.json; raise ValueError saying what is wrong.

        `pytest_suites` maps each pytest suite id to its folder: the first format was a bare list of
        pytest ids, which belong to the suite whose folder they start with.
        """
        if isinstance(data, list):
            if not all(isinstance(item, str) for item in data):
                raise ValueError("expected a JSON list of test ids")
            suites: dict[str, list[ExpectedTest]] = {}
            for test_id in data:
                owner = next(
                    (s for s, path in pytest_suites.items() if test_id.startswith(path.rstrip("/") + "/")),
                    None,
                )
                if owner is not None:
                    suites.setdefault(owner, []).append(ExpectedTest(test_id, 1.0))
            return cls({suite: tuple(tests) for suite, tests in suites.items()})
        if not isinstance(data, dict) or data.get("format") != EXPECTED_FORMAT:
            raise ValueError(f'expected {{"format": {EXPECTED_FORMAT}, "suites": {{...}}}}')
        raw_suites = data.get("suites")
        if not isinstance(raw_suites, dict):
            raise ValueError("suites must map each suite id to its list of tests")
        parsed: dict[str, tuple[ExpectedTest, ...]] = {}
        for suite, tests in raw_suites.items():
            if not isinstance(tests, list):
                raise ValueError(f"suites.{suite} must be a list of tests")
            items = []
            for index, test in enumerate(tests):
                if (
                    not isinstance(test, dict)
                    or not isinstance(test.get("id"), str)
                    or isinstance(test.get("max_points"), bool)
                    or not isinstance(test.get("max_points"), int | float)
                    or test["max_points"] < 0
                ):
                    raise ValueError(f"suites.{suite}[{index}] needs an id and a max_points of 0 or more")
                if not isinstance(test.get("slow", False), bool):
                    raise ValueError(f"suites.{suite}[{index}].slow must be true or false")
                items.append(ExpectedTest(test["id"], float(test["max_points"]), test.get("slow", False)))
            parsed[str(suite)] = tuple(items)
        totals = data.get("totals", [])
        if not isinstance(totals, list) or not all(isinstance(t, str) for t in totals):
            raise ValueError("totals must list the suites whose reference run gave a score")
        self_check = None if data.get("self_check") is None else SelfCheck.from_file_data(data["self_check"])
        return cls(parsed, frozenset(totals), self_check)
