"""Runs the hidden pytest tests inside the sandbox and records what each phase of each test reported.

This file is copied into the box by the grader and run as `python3 -I _harness/pytest_runner.py OUT`
(in-process: the learner's files are in the box) or `... OUT --isolated CONFIG` (`isolation: process`:
no learner file is in the box; `remote_modules` serves the learner's module names over the channel
that stdin and stdout carry, see that module). It owns pytest's configuration (an empty ini of its
own, no plugin autoloading, no cache) and writes one JSON document to OUT.

In-process it is a witness, not a judge: the learner's code runs in this process and could lie, so
the grader outside the box believes a test passed only if its call phase reported a pass, checks the
expected test ids, and checks that every canary planted among the tests failed.
"""

import json
import os
import sys
from typing import Any

OUT = sys.argv[1]
ROOT = "/box"
MAX_MESSAGE = 2000


def receive_learner_files(folder: str) -> None:
    """Ask the grader for the learner's files on stdout and write what stdin brings into `folder`.

    The answer is a JSON line listing `[path, size]` pairs, then the files' bytes one after the other;
    "late" instead means the grader gave up waiting and runs the tests in another box, so this one ends.
    """
    os.write(1, b"learner-files\n")
    with os.fdopen(os.dup(0), "rb") as channel:
        header = channel.readline()
        if header.strip() == b"late":
            os._exit(0)
        for name, size in json.loads(header):
            path = os.path.join(folder, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                left = size
                while left:
                    chunk = channel.read(min(left, 1 << 16))
                    if not chunk:
                        raise SystemExit("the learner's files ended early")
                    handle.write(chunk)
                    left -= len(chunk)
    # As when the files come in the job: the learner's code finds nothing to read on stdin.
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
sys.dont_write_bytecode = True
if "--isolated" in sys.argv:
    with open(sys.argv[sys.argv.index("--isolated") + 1], encoding="utf-8") as config:
        learner_modules = json.load(config)["modules"]
    # The channel keeps descriptors of its own: pytest captures 0, 1 and 2 around every test.
    channel_in, channel_out = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    sys.path.insert(0, os.path.join(ROOT, "_harness"))
    import remote_modules

    sys.path.pop(0)  # the tests' own modules must not find the harness's
    remote_modules.install(learner_modules, channel_in, channel_out)
else:
    if "--learner-files-on-channel" in sys.argv:
        # Started while the learner's repository is still being fetched: pytest is imported first, then
        # the files are asked for. No learner code has run yet, so the one request is the harness's.
        import pytest

        receive_learner_files(os.path.join(ROOT, "submission"))
    # After the standard library and pytest: a learner file cannot shadow what the harness imports.
    sys.path.append(os.path.join(ROOT, "submission"))

import pytest  # noqa: E402


class Collector:
    def __init__(self) -> None:
        self.tests: dict[str, dict[str, Any]] = {}
        self.errors: list[dict[str, str]] = []
        self.skipped: list[dict[str, str]] = []

    def pytest_runtest_logreport(self, report: Any) -> None:
        entry = self.tests.setdefault(report.nodeid, {"message": "", "duration": 0.0})
        entry["duration"] += float(report.duration)
        # One outcome per phase: a test that never reports its call phase has not passed.
        entry[report.when] = report.outcome
        if report.failed and not entry["message"]:
            entry["message"] = str(report.longreprtext)[-MAX_MESSAGE:]

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.errors.append({"nodeid": report.nodeid, "message": str(report.longreprtext)[-MAX_MESSAGE:]})
        elif report.skipped:
            # A module skipped as a whole (pytest.importorskip) reports no tests: that is no tampering.
            self.skipped.append({"nodeid": report.nodeid, "message": str(report.longreprtext)[-MAX_MESSAGE:]})


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
        # One module that fails to collect (a learner's syntax error) must not stop the others.
        "--continue-on-collection-errors",
        os.path.join(ROOT, "tests"),
    ],
    plugins=[collector],
)
with open(OUT, "w", encoding="utf-8") as handle:
    json.dump(
        {
            "exit_status": int(status),
            "tests": collector.tests,
            "collection_errors": collector.errors,
            "skipped_collectors": collector.skipped,
        },
        handle,
    )
