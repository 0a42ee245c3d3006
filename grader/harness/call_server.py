"""Runs each call into the learner's code in a fresh process, for `isolation: process` (runs in the box).

Copied into the learner's own box (never the box of the hidden tests) and run as
`python3 -I _harness/call_server.py MEMORY_BYTES CALL_SECONDS`. It says `{"ready": true}` on the
stdout it started with, then reads one request line at a time on stdin: `{"describe": "module"}`
(the module's public names, and the JSON values of its constants) or `{"call": "module", "function":
"name", "args": [...], "kwargs": {...}}`, and writes one answer line for each. This process never
imports the learner's code: each request is served by a child forked from it, which imports the
module afresh, so no call sees what an earlier call left in memory; the child's own limits (address
space, CPU time) and a wall clock kept here bound each call, and whatever the child started is
killed with it. The learner's prints go to stderr.

The learner's code runs in this box, so nothing here is trusted: the grader outside reads every
answer as untrusted data (size-capped, schema-checked) and only ever hands a JSON value, or an
exception's name, bases and message, to the tests.
"""

import contextlib
import json
import os
import resource
import select
import signal
import sys
import time
from types import ModuleType
from typing import Any

SUBMISSION = "/box/submission"
MAX_DEPTH = 50
MAX_ANSWER = 1_000_000
MEMORY_BYTES = int(sys.argv[1])
CALL_SECONDS = float(sys.argv[2])

answer_fd = os.dup(1)
request_fd = os.dup(0)
os.dup2(2, 1)  # whatever the learner prints goes to stderr, never into an answer
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)  # the learner's code gets an empty stdin
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


def answer(request: dict[str, Any]) -> dict[str, Any]:
    import importlib

    if "describe" in request:
        return {"ok": True, "value": describe(importlib.import_module(str(request["describe"])))}
    module = importlib.import_module(str(request["call"]))
    function = getattr(module, str(request["function"]))
    return {"ok": True, "value": plain(function(*request.get("args", []), **request.get("kwargs", {})))}


def serve_in_child(request: dict[str, Any], write_end: int) -> None:
    """In the forked child: the call, its answer on the pipe, and nothing after."""
    os.setpgid(0, 0)  # its own process group: whatever it starts is killed with it
    for fd in (answer_fd, request_fd):
        os.close(fd)
    # Nobody reads what a call prints, and a flood of it must not fill the box's output limit and
    # end every later call: it goes nowhere.
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    cpu = max(1, int(CALL_SECONDS + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    try:
        reply = answer(request)
    except BaseException as error:  # the learner's exception, SystemExit included, is the call's answer
        reply = {"ok": False, "error": describe_error(error)}
    try:
        encoded = json.dumps(reply)
    except (TypeError, ValueError) as error:
        encoded = json.dumps({"ok": False, "error": describe_error(error)})
    data = memoryview(encoded.encode() + b"\n")
    while data:
        data = data[os.write(write_end, data) :]
    os._exit(0)


def fault(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "fault": kind, "message": message}


def run_one(request: dict[str, Any]) -> dict[str, Any]:
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        serve_in_child(request, write_end)
    os.close(write_end)
    with contextlib.suppress(OSError):  # the child did it first, or is already gone
        os.setpgid(child, child)
    deadline = time.monotonic() + CALL_SECONDS
    received = b""
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_end], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(read_end, 65536)
        if not chunk or len(received) > MAX_ANSWER:
            break
        received += chunk
    os.close(read_end)
    with contextlib.suppress(ProcessLookupError):  # the call is over: nothing it started lives on
        os.killpg(child, signal.SIGKILL)
    _, status = os.waitpid(child, 0)
    if timed_out:
        return fault("timeout", f"the call ran out of time ({CALL_SECONDS:g} s)")
    if os.WIFSIGNALED(status) and not received.endswith(b"\n"):
        number = os.WTERMSIG(status)
        if number == signal.SIGXCPU:
            return fault("timeout", f"the call used more than {CALL_SECONDS:g} s of CPU time")
        name = signal.Signals(number).name if number in signal.valid_signals() else str(number)
        described = signal.strsignal(number) or ""
        return fault("crashed", f"the call crashed: {name} ({described[:1].lower()}{described[1:]})")
    if not received.endswith(b"\n"):
        return fault("no_answer", "the learner's code ended the call without an answer")
    try:
        decoded = json.loads(received)
    except ValueError:
        return fault("no_answer", "the learner's code gave no readable answer")
    return decoded if isinstance(decoded, dict) else fault("no_answer", "the learner's code gave no answer")


def say(message: dict[str, Any]) -> None:
    data = memoryview(json.dumps(message).encode() + b"\n")
    while data:
        data = data[os.write(answer_fd, data) :]


say({"ready": True})
with os.fdopen(request_fd, "rb", buffering=0) as requests:
    pending = b""
    while True:
        while b"\n" not in pending:
            chunk = requests.read(65536)
            if not chunk:
                sys.exit(0)
            pending += chunk
        line, _, pending = pending.partition(b"\n")
        request = json.loads(line)
        if request.get("exit"):
            break
        say(run_one(request))
