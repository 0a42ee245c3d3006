"""Runs the hidden pytest tests inside the sandbox and records each test's outcome.

This file is copied into the box by the grader and run as `python3 -I _harness/pytest_runner.py OUT`.
It owns pytest's configuration (an empty ini of its own, no plugin autoloading, no cache), puts the
learner's folder on sys.path, and writes one JSON document to OUT. It is a witness, not a judge: the
learner's code runs in this process and could lie, so the grader outside the box checks the expected
test ids and a canary test that must fail before believing anything written here.
"""

import json
import os
import sys
from typing import Any

OUT = sys.argv[1]
ROOT = "/box"
MAX_MESSAGE = 2000

os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
sys.path.insert(0, os.path.join(ROOT, "submission"))
sys.dont_write_bytecode = True

import pytest  # noqa: E402


class Collector:
    def __init__(self) -> None:
        self.tests: dict[str, dict[str, Any]] = {}
        self.errors: list[dict[str, str]] = []

    def pytest_runtest_logreport(self, report: Any) -> None:
        entry = self.tests.setdefault(report.nodeid, {"outcome": "passed", "message": "", "duration": 0.0})
        entry["duration"] += float(report.duration)
        if report.failed:
            entry["outcome"] = "failed" if report.when == "call" else "error"
            entry["message"] = str(report.longreprtext)[-MAX_MESSAGE:]
        elif report.skipped and entry["outcome"] == "passed":
            entry["outcome"] = "skipped"

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.errors.append({"nodeid": report.nodeid, "message": str(report.longreprtext)[-MAX_MESSAGE:]})


collector = Collector()
status = pytest.main(
    [
        "-c",
        os.path.join(ROOT, "_harness", "pytest.ini"),
        "--rootdir",
        ROOT,
        "-p",
        "no:cacheprovider",
        "-q",
        "--no-header",
        "-rN",
        os.path.join(ROOT, "tests"),
    ],
    plugins=[collector],
)
with open(OUT, "w", encoding="utf-8") as handle:
    json.dump(
        {"exit_status": int(status), "tests": collector.tests, "collection_errors": collector.errors}, handle
    )
