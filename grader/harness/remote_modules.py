"""The learner's modules as seen by hidden tests under `isolation: process` (runs in the test box).

No learner code exists in the box that runs the hidden tests. `import solution` there yields a
stand-in module whose attributes forward each call, as a line of JSON on a private channel, to the
grader outside the box, which runs it in a fresh process in the learner's own box and sends back
plain data: a JSON value, or the name, bases and message of the exception the call raised. So a
forged report, a patched pytest, a shadowed standard module or an object with a rigged `__eq__`
cannot reach the verdict: the only thing the learner's code can hand back is a value.

What crosses, and how it looks to a test:
* functions: `solution.add(2, 3)` returns what the learner's `add` returned, as JSON (tuples become
  lists, dict keys must be strings); arguments must be JSON values too;
* exceptions: a learner exception is raised here as the built-in exception of the same name
  (`ValueError`), or as the stand-in class of the learner's own exception (`solution.EmptyStack`),
  which also derives from the nearest built-in base, so `pytest.raises` works either way;
* module constants that are JSON values (`solution.LIMIT`) are read once, when the module is imported;
* anything else (classes, instances, generators) cannot cross and says so with a TypeError.
A call that runs out of time or memory, or crashes, raises `LearnerCallFailed`, a BaseException, so a
test's `pytest.raises(Exception)` cannot mistake it for the exception it expects.
"""

from __future__ import annotations

import builtins
import importlib.abc
import importlib.machinery
import json
import os
import sys
import types
from typing import Any

MAX_DEPTH = 50


class LearnerCallFailed(BaseException):
    """The learner's code did not answer: it ran out of time or memory, crashed or broke the channel."""


class Channel:
    """Request/answer lines over two file descriptors kept apart from pytest's own capturing."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._reader = os.fdopen(read_fd, "rb", buffering=0)
        self._write_fd = write_fd
        self._pending = b""
        self._count = 0

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self._count += 1
        line = json.dumps({**request, "seq": self._count}, separators=(",", ":")).encode() + b"\n"
        view = memoryview(line)
        while view:
            view = view[os.write(self._write_fd, view) :]
        while b"\n" not in self._pending:
            chunk = self._reader.read(65536)
            if not chunk:
                raise LearnerCallFailed("the grader closed the channel")
            self._pending += chunk
        answer, _, self._pending = self._pending.partition(b"\n")
        decoded = json.loads(answer)
        if not isinstance(decoded, dict):
            raise LearnerCallFailed("the grader sent an unreadable answer")
        return decoded


def to_json_value(value: Any, where: str, depth: int = 0) -> Any:
    """`value` as plain JSON data, or a TypeError saying what cannot cross to the learner's code."""
    if depth > MAX_DEPTH:
        raise TypeError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [to_json_value(item, where, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError(f"{where}: isolation: process passes dicts with string keys only")
        return {key: to_json_value(item, where, depth + 1) for key, item in value.items()}
    raise TypeError(
        f"{where} is a {type(value).__name__}; isolation: process passes only JSON values "
        "(None, bool, int, float, str, list, dict) to the learner's code"
    )


class _RemoteCallable(type):
    """Calling a stand-in class runs the learner's function of that name in its own box."""

    _module: str
    _attribute: str
    _kind: str

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls._kind != "function":
            raise TypeError(
                f"{cls._module}.{cls._attribute} is a {cls._kind}; isolation: process can call the "
                "learner's functions only, not create or use objects"
            )
        return _remote_call(cls._module, cls._attribute, args, kwargs)


class RemoteAttribute(Exception, metaclass=_RemoteCallable):
    """Base of the stand-ins for the learner's functions and exception classes."""

    _module = ""
    _attribute = ""
    _kind = "function"


class RemoteModule(types.ModuleType):
    """A learner module: its functions and exception classes are stand-ins, its constants values."""

    def __init__(self, name: str, description: dict[str, Any]) -> None:
        super().__init__(name)
        self.__file__ = f"<learner module {name}, run in its own box>"
        if description.get("package"):
            self.__path__: list[str] = []
        for attribute, info in description.get("names", {}).items():
            if not isinstance(info, dict) or not isinstance(attribute, str) or attribute.startswith("__"):
                continue  # dunder names (__path__, __spec__) are the import system's, never the learner's
            if info.get("kind") == "value":
                setattr(self, attribute, info.get("value"))
            else:
                stand_in = _RemoteCallable(
                    attribute,
                    (RemoteAttribute,),
                    {"_module": name, "_attribute": attribute, "_kind": str(info.get("kind"))},
                )
                setattr(self, attribute, stand_in)


_CHANNEL: Channel | None = None


def _remote_call(module: str, attribute: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    assert _CHANNEL is not None
    request = {
        "call": module,
        "function": attribute,
        "args": to_json_value(list(args), f"an argument to {module}.{attribute}"),
        "kwargs": to_json_value(kwargs, f"a keyword argument to {module}.{attribute}"),
    }
    answer = _CHANNEL.ask(request)
    if answer.get("ok") is True:
        return answer.get("value")
    if "fault" in answer:
        raise LearnerCallFailed(f"{module}.{attribute}(...): {answer.get('message', answer['fault'])}")
    raise _rebuilt_exception(module, answer.get("error"))


def _rebuilt_exception(module: str, error: Any) -> BaseException:
    error = error if isinstance(error, dict) else {}
    name = str(error.get("type", "Exception"))
    message = str(error.get("message", ""))
    bases = [str(b) for b in error.get("bases", []) if isinstance(b, str)]
    defined_in = str(error.get("module", ""))
    builtin = next(
        (
            candidate
            for candidate in [name, *bases]
            if isinstance(getattr(builtins, candidate, None), type)
            and issubclass(getattr(builtins, candidate), Exception)
        ),
        "Exception",
    )
    if builtin in ("StopIteration", "StopAsyncIteration", "GeneratorExit"):
        # Raised inside the test's own loop (`all(map(f, xs))`) these would end it early and make it
        # pass: as a RuntimeError they fail the test, as the learner's code failed.
        builtin = "RuntimeError"
    builtin_type: type[Exception] = getattr(builtins, builtin)
    owner = sys.modules.get(defined_in) if defined_in else None
    stand_in = getattr(owner, name, None) if isinstance(owner, RemoteModule) else None
    if isinstance(stand_in, _RemoteCallable):
        try:
            combined = type(name, (stand_in, builtin_type), {})
        except TypeError:  # incompatible layouts (e.g. OSError): the stand-in alone
            combined = stand_in
        exception: BaseException = type.__call__(combined, message)
        return exception
    if name == builtin:
        return builtin_type(message)
    return builtin_type(f"{name}: {message}")


class RemoteFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the learner's module names and builds their stand-ins from a description of each."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.names:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=None)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        assert _CHANNEL is not None
        answer = _CHANNEL.ask({"describe": spec.name})
        if answer.get("ok") is not True:
            error = answer.get("error")
            error = error if isinstance(error, dict) else {}
            detail = answer.get("message") or f"{error.get('type', 'Error')}: {error.get('message', '')}"
            raise ImportError(f"the learner's module {spec.name} could not be imported: {detail}")
        value = answer.get("value")
        return RemoteModule(spec.name, value if isinstance(value, dict) else {})

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def install(names: list[str], read_fd: int, write_fd: int) -> None:
    """Serve `names` as stand-in modules over the channel on the two descriptors."""
    global _CHANNEL
    _CHANNEL = Channel(read_fd, write_fd)
    # Last: a module the tests' box has (the standard library, pytest, the course team's helpers)
    # is always the real one; only names nothing else provides are the learner's.
    sys.meta_path.append(RemoteFinder(set(names)))
