"""Runs one call into the learner's code, in a box of its own, for `isolation: process` (runs in the box).

Copied into the call's box and run as `python3 -I _harness/call_runner.py`; the request is one JSON
line on stdin: `{"describe": "module"}` (which public names the module has, and the JSON values of
its constants) or `{"call": "module", "function": "name", "args": [...], "kwargs": {...}}`. The answer
is one JSON line on the stdout this script had when it started; the learner's own prints go to stderr.

This process holds the learner's code, so nothing here is trusted: the grader outside reads the
answer as untrusted data (size-capped, schema-checked) and only ever hands a JSON value, or an
exception's name, bases and message, to the tests.
"""

import json
import os
import sys
from types import ModuleType
from typing import Any

SUBMISSION = "/box/submission"
MAX_DEPTH = 50

answer_fd = os.dup(1)
os.dup2(2, 1)  # whatever the learner prints goes to stderr, never into the answer
request = json.loads(sys.stdin.readline())
sys.stdin = open(os.devnull)  # noqa: SIM115 - the learner's code gets an empty stdin
sys.path.append(SUBMISSION)  # after the standard library: a learner file cannot shadow it
sys.dont_write_bytecode = True


def plain(value: Any, depth: int = 0) -> Any:
    """The value as JSON data, or a TypeError naming what cannot cross."""
    if depth > MAX_DEPTH:
        raise TypeError(f"the value is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [plain(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("a returned dict has keys that are not strings")
        return {key: plain(item, depth + 1) for key, item in value.items()}
    raise TypeError(
        f"returned a {type(value).__name__}; only JSON values (None, bool, int, float, str, list, dict) "
        "can be returned to the tests"
    )


def describe_error(error: BaseException) -> dict[str, Any]:
    bases = [cls.__name__ for cls in type(error).__mro__[1:] if cls not in (object, BaseException)]
    return {
        "type": type(error).__name__,
        "module": type(error).__module__,
        "bases": bases,
        "message": str(error)[-2000:],
    }


def describe(module: ModuleType) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if isinstance(value, type):
            names[name] = {"kind": "exception" if issubclass(value, BaseException) else "class"}
        elif callable(value):
            names[name] = {"kind": "function"}
        else:
            try:
                names[name] = {"kind": "value", "value": plain(value)}
            except TypeError:
                names[name] = {"kind": type(value).__name__}
    return {"package": hasattr(module, "__path__"), "names": names}


def run() -> dict[str, Any]:
    import importlib

    if "describe" in request:
        return {"ok": True, "value": describe(importlib.import_module(str(request["describe"])))}
    module = importlib.import_module(str(request["call"]))
    function = getattr(module, str(request["function"]))
    return {"ok": True, "value": plain(function(*request.get("args", []), **request.get("kwargs", {})))}


try:
    reply = run()
except BaseException as error:  # the learner's exception, SystemExit included, is the call's answer
    reply = {"ok": False, "error": describe_error(error)}
try:
    encoded = json.dumps(reply)
except (TypeError, ValueError) as error:
    encoded = json.dumps({"ok": False, "error": describe_error(error)})
os.write(answer_fd, encoded.encode() + b"\n")
os._exit(0)
