"""Canary tests planted among the hidden tests of an in-process pytest suite: tests that must fail.

The learner's code shares pytest's process, so it can forge any test's report. A canary is a test
whose honest outcome is a failure: one reported as passed proves the reports were forged, or that an
object lied about equality. Each run plants several, made fresh from that run's own hidden tests:

* every test in the box is renamed, real ones and canaries alike, to names drawn from the words of
  the hidden tests' own names; the grader maps the names back outside the box, so knowing the real
  test names (they are shown to learners) tells nothing about which test is which in a run;
* a canary's body is a whole copy of a real test's body (same fixtures, same calls into the
  learner's code), in which one expected value of its last top-level `assert a == b` is replaced by
  a fresh random value of the same type (a string of the same shape, a number of the same number
  of digits, a leaf of the same literal list or dict), from a space no code hits by chance;
* it sits in the same module, at a random place after the test it copies;
* modules are re-printed from their syntax tree (comments and test docstrings dropped), so
  formatting tells copies from originals no more than anything else does.

Templates are only tests that can be run twice without changing what the others see: no `return`
or `yield`, and no fixture of a wider scope than the function. Tests the reference check found slow
(over the suite's `canary_max_seconds`) are templates only when no other test can be one: a canary
costs what its template costs, and one slow copy can add half again to a run.

What remains visible is the shape: a canary repeats a real test with another expected value, so a
learner who compares the test bodies at run time can find the pairs and refuse to forge either of
them (giving up the real test's points too), and a small expected number (an HTTP status) stands out
next to its random stand-in. Canaries are a tripwire that makes forging a gamble, not a proof;
`isolation: process` is the defence by construction (docs/authoring.md).
"""

from __future__ import annotations

import ast
import copy
import random
import re
import string
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeGuard

CANARIES_PER_RUN = 3
TEST_MODULE = re.compile(r"(?:^|/)(?:test_[^/]*|[^/]*_test)\.py\Z")
MIN_DIGITS = 6  # below this, a random number of the same size could be an honest wrong answer
MIN_LENGTH = 8  # likewise for strings


@dataclass(frozen=True)
class PlantedSuite:
    """The hidden test modules as the box gets them, and how to read the box's test names."""

    modules: dict[str, str]  # relative path -> source
    canaries: tuple[tuple[str, str], ...]  # (module path, function name in the box)
    renamed: Mapping[tuple[str, str], str]  # (module path, name in the box) -> the test's real name

    def real_name(self, module: str, function: str) -> str:
        return self.renamed.get((module, function), function)


Function = ast.FunctionDef | ast.AsyncFunctionDef


def _is_test_function(node: ast.stmt) -> TypeGuard[Function]:
    return (
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test")
        and not any("fixture" in ast.unparse(d) for d in node.decorator_list)
    )


def plant_canaries(
    sources: Mapping[str, str],
    rng: random.Random,
    count: int = CANARIES_PER_RUN,
    *,
    slow: Collection[tuple[str, str]] = (),
) -> PlantedSuite:
    """Copy `sources` (relative path -> text of every .py file of the suite: test modules, conftest.py,
    helpers) with every test renamed and `count` canaries planted in the test modules.

    `slow` names tests (module path, function) that are not copied while another test can be: a
    canary reruns its template's fixtures and calls, so copying a slow test costs its whole time again.
    """
    trees: dict[str, ast.Module] = {}
    for path, text in sources.items():
        if TEST_MODULE.search(path):
            try:
                trees[path] = ast.parse(text)
            except SyntaxError:
                continue  # the course team's problem; pytest reports it as a collection error
    if not trees:
        return PlantedSuite(dict(sources), (), {})
    wide = _wide_fixtures(list(sources.values()))
    tests = [
        (path, node) for path, tree in sorted(trees.items()) for node in tree.body if _is_test_function(node)
    ]
    vocabulary = _vocabulary([node.name for _, node in tests])
    taken = {name for tree in trees.values() for name in _bindings(tree)}
    lengths = [len(node.name.split("_")) - 1 for _, node in tests] or [2]
    templates = [(p, n) for p, n in tests if _repeatable(n, wide) and _comparison(n) is not None]
    # A suite whose every template is slow still gets its tripwire, at the cost of a slower run.
    templates = [(p, n) for p, n in templates if (p, n.name) not in slow] or templates
    renamed: dict[tuple[str, str], str] = {}
    canaries: list[Function] = []
    for tree in trees.values():
        _drop_test_docstrings(tree)
    for _ in range(count if templates else 0):
        path, template = rng.choice(templates)
        canary = _from_template(template, rng)
        tree = trees[path]
        tree.body.insert(rng.randint(tree.body.index(template) + 1, len(tree.body)), canary)
        canaries.append(canary)
    planted: list[tuple[str, str]] = []
    for path, tree in sorted(trees.items()):
        for node in tree.body:
            if not _is_test_function(node):
                continue
            fresh = _fresh_name(vocabulary, taken, rng.choice(lengths), rng)
            taken.add(fresh)
            if any(node is canary for canary in canaries):
                planted.append((path, fresh))
            else:
                renamed[(path, fresh)] = node.name
            node.name = fresh
    modules = dict(sources)
    for path, tree in trees.items():
        modules[path] = ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    return PlantedSuite(modules, tuple(planted), renamed)


def _bindings(tree: ast.Module) -> Iterator[str]:
    """Every name bound at the top of a module: a new test name must clash with none."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                yield from (n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            yield from ((alias.asname or alias.name).split(".")[0] for alias in node.names)


def _wide_fixtures(sources: list[str]) -> set[str]:
    """Fixtures whose scope is wider than a function: a canary using one would change what later tests see."""
    names: set[str] = set()
    for text in sources:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and "fixture" in ast.unparse(decorator.func):
                    scope = next((k.value for k in decorator.keywords if k.arg == "scope"), None)
                    if (
                        not (isinstance(scope, ast.Constant) and scope.value == "function")
                        and scope is not None
                    ):
                        names.add(node.name)
    return names


def _repeatable(function: Function, wide_fixtures: set[str]) -> bool:
    """A test that may run twice: no early return, no yield, no fixture of a wider scope."""
    if any(arg.arg in wide_fixtures for arg in function.args.args):
        return False
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Return | ast.Yield | ast.YieldFrom):
            return False
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            pending.extend(ast.iter_child_nodes(node))
    return True


def _vocabulary(names: list[str]) -> list[str]:
    words = sorted({w for name in names for w in name.split("_")[1:] if w.isidentifier()})
    return words or ["result", "value", "case", "check", "works"]


def _fresh_name(vocabulary: list[str], taken: set[str], length: int, rng: random.Random) -> str:
    length = max(1, min(length, 6))
    for _ in range(200):
        name = "test_" + "_".join(rng.choice(vocabulary) for _ in range(length))
        if name not in taken:
            return name
        length = min(length + 1, 8)
    return f"test_{'_'.join(rng.sample(vocabulary, min(3, len(vocabulary))))}_{rng.randrange(10**6)}"


def _drop_test_docstrings(tree: ast.Module) -> None:
    for node in tree.body:
        if _is_test_function(node):
            body = node.body
            if (
                len(body) > 1
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:]


def _comparison(function: Function) -> int | None:
    """Index of the last top-level `assert a == <literal>` whose literal a canary can change."""
    for index in range(len(function.body) - 1, -1, -1):
        statement = function.body[index]
        if (
            isinstance(statement, ast.Assert)
            and isinstance(statement.test, ast.Compare)
            and len(statement.test.ops) == 1
            and isinstance(statement.test.ops[0], ast.Eq)
            and _changeable(statement.test.comparators[0])
        ):
            return index
    return None


def _changeable(expected: ast.expr) -> bool:
    try:
        value = ast.literal_eval(expected)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return isinstance(value, str | int | float | list | dict) and not isinstance(value, bool)


def _same_shape(value: object, rng: random.Random) -> object:
    """A fresh value that looks like `value` and that no code produces by chance."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        digits = max(MIN_DIGITS, len(str(abs(value))))
        fresh = rng.randrange(10 ** (digits - 1), 10**digits)
        return -fresh if value < 0 else fresh
    if isinstance(value, float):
        return round(rng.uniform(10 ** (MIN_DIGITS - 1), 10**MIN_DIGITS), 3) * (-1 if value < 0 else 1)
    if isinstance(value, str):
        shape = value if len(value) >= MIN_LENGTH else value + "x" * (MIN_LENGTH - len(value))
        return "".join(_like(c, rng) for c in shape)
    if isinstance(value, list):
        if not value:
            return [rng.randrange(10 ** (MIN_DIGITS - 1), 10**MIN_DIGITS)]
        index = rng.randrange(len(value))
        return [_same_shape(item, rng) if i == index else item for i, item in enumerate(value)]
    if isinstance(value, dict):
        if not value:
            return {"".join(rng.choices(string.ascii_lowercase, k=MIN_LENGTH)): rng.randrange(10**MIN_DIGITS)}
        key = rng.choice(sorted(value, key=str))
        return {k: (_same_shape(v, rng) if k == key else v) for k, v in value.items()}
    return rng.randrange(10 ** (MIN_DIGITS - 1), 10**MIN_DIGITS)


def _like(char: str, rng: random.Random) -> str:
    if char.isdigit():
        return rng.choice(string.digits)
    if char.islower():
        return rng.choice(string.ascii_lowercase)
    if char.isupper():
        return rng.choice(string.ascii_uppercase)
    return char


def _from_template(template: Function, rng: random.Random) -> Function:
    canary = copy.deepcopy(template)
    index = _comparison(canary)
    assert index is not None
    statement = canary.body[index]
    assert isinstance(statement, ast.Assert) and isinstance(statement.test, ast.Compare)
    expected = ast.literal_eval(statement.test.comparators[0])
    fresh = _same_shape(expected, rng)
    while fresh == expected:
        fresh = _same_shape(expected, rng)
    statement.test.comparators = [ast.parse(repr(fresh), mode="eval").body]
    return canary
