"""Canary tests planted among the hidden tests of an in-process pytest suite: tests that must fail.

The learner's code shares pytest's process, so it can forge any test's report. A canary is a test
whose honest outcome is a failure: one that is reported as passed proves the reports were forged or
that an object lied about equality. A learner who has read this module still cannot tell a canary
from a real test in a given run, because each run plants several, made fresh from that run's own
hidden tests:

* the body is a copy of a real test's body (same fixtures, same calls into the learner's code),
  with its last top-level `assert a == b` comparing `a` against a fresh random value instead, a
  value from a space of at least 2**40 that no code produces by chance;
* the name is drawn from the words of the hidden tests' own names;
* it sits in a hidden test module, at a random place after the test it was copied from;
* the whole module is re-printed from its syntax tree (comments and docstrings of tests dropped),
  so formatting tells the copy from the original no more than anything else does.

What remains visible is the shape: a canary repeats a real test with another expected value, so a
learner who finds near-duplicate tests at run time can refuse to forge either of them (giving up the
real test's points too). Canaries are a tripwire, not a proof; `isolation: process` is the defence
by construction (docs/authoring.md).
"""

from __future__ import annotations

import ast
import copy
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard

CANARIES_PER_RUN = 3
TEST_MODULE = re.compile(r"(?:^|/)(?:test_[^/]*|[^/]*_test)\.py\Z")


@dataclass(frozen=True)
class PlantedSuite:
    """The hidden test modules with canaries added, and the canaries' pytest names."""

    modules: dict[str, str]  # relative path -> source
    canaries: tuple[tuple[str, str], ...]  # (module path, function name)

    def is_canary(self, module: str, function: str) -> bool:
        return (module, function) in set(self.canaries)


def plant_canaries(
    sources: Mapping[str, str], rng: random.Random, count: int = CANARIES_PER_RUN
) -> PlantedSuite:
    """Copy `sources` (relative path -> text) with `count` canaries planted in its test modules."""
    trees: dict[str, ast.Module] = {}
    for path, text in sources.items():
        if TEST_MODULE.search(path):
            try:
                trees[path] = ast.parse(text)
            except SyntaxError:
                continue  # the course team's problem; pytest reports it as a collection error
    templates = [
        (path, node) for path, tree in sorted(trees.items()) for node in tree.body if _is_test_function(node)
    ]
    if not trees:
        return PlantedSuite(dict(sources), ())
    vocabulary = _vocabulary(templates)
    taken = {node.name for _, node in templates}
    lengths = [len(node.name.split("_")) - 1 for _, node in templates] or [2]
    planted: list[tuple[str, str]] = []
    for tree in trees.values():
        _drop_test_docstrings(tree)
    for _ in range(count):
        name = _fresh_name(vocabulary, taken, rng.choice(lengths), rng)
        taken.add(name)
        comparable = [(p, n) for p, n in templates if _last_equality(n) is not None]
        if comparable:
            path, template = rng.choice(comparable)
            canary = _from_template(template, name, rng)
            tree = trees[path]
            after = tree.body.index(template) + 1
            tree.body.insert(rng.randint(after, len(tree.body)), canary)
        else:
            # No test compares with `==`: a canary that needs no learner code still catches forged reports.
            path = rng.choice(sorted(trees))
            canary = _standalone(name, rng)
            trees[path].body.append(canary)
        planted.append((path, name))
    modules = dict(sources)
    for path, tree in trees.items():
        modules[path] = ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    return PlantedSuite(modules, tuple(planted))


def _is_test_function(node: ast.stmt) -> TypeGuard[ast.FunctionDef | ast.AsyncFunctionDef]:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


def _vocabulary(templates: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]) -> list[str]:
    words = sorted({w for _, node in templates for w in node.name.split("_")[1:] if w.isidentifier()})
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


def _last_equality(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int | None:
    """Index of the last top-level `assert a == b` in the function's body."""
    for index in range(len(function.body) - 1, -1, -1):
        statement = function.body[index]
        if (
            isinstance(statement, ast.Assert)
            and isinstance(statement.test, ast.Compare)
            and len(statement.test.ops) == 1
            and isinstance(statement.test.ops[0], ast.Eq)
        ):
            return index
    return None


def _unproducible(example: ast.expr, rng: random.Random) -> ast.Constant:
    """A fresh value of the expected value's kind, from a space too large to be hit by chance."""
    if isinstance(example, ast.Constant) and isinstance(example.value, str):
        return ast.Constant(f"{rng.getrandbits(64):016x}")
    if isinstance(example, ast.Constant) and isinstance(example.value, float):
        return ast.Constant(rng.getrandbits(52) / 7.0 + 1e12)
    return ast.Constant(rng.randrange(10**12, 10**15))


def _from_template(
    template: ast.FunctionDef | ast.AsyncFunctionDef, name: str, rng: random.Random
) -> ast.FunctionDef | ast.AsyncFunctionDef:
    canary = copy.deepcopy(template)
    canary.name = name
    index = _last_equality(canary)
    assert index is not None
    statement = canary.body[index]
    assert isinstance(statement, ast.Assert) and isinstance(statement.test, ast.Compare)
    expected = statement.test.comparators[0]
    statement.test.comparators = [_unproducible(expected, rng)]
    statement.msg = None
    # Whatever followed the comparison would only run after a forged pass.
    canary.body = canary.body[: index + 1]
    return canary


def _standalone(name: str, rng: random.Random) -> ast.FunctionDef:
    first, second = rng.randrange(10**12, 10**15), rng.randrange(10**12, 10**15)
    source = f"def {name}():\n    observed = {first}\n    assert observed == {second + (first == second)}\n"
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.FunctionDef)
    return function
