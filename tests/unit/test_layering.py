"""The layering of docs/architecture.md holds, and no new module of `grader` escapes its contract."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grader

ROOT = Path(__file__).resolve().parents[2]
EDGES = {"grader.web", "grader.entrypoints"}


def contracts() -> list[dict]:  # type: ignore[type-arg]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]


def test_every_module_of_grader_is_core_or_edge() -> None:
    core = next(c for c in contracts() if c["name"].startswith("the grader core"))
    modules = {f"grader.{info.name}" for info in pkgutil.iter_modules(grader.__path__)}
    unclassified = modules - set(core["source_modules"]) - EDGES
    assert unclassified == set(), f"add {sorted(unclassified)} to the core contract in pyproject.toml"
    assert not EDGES & set(core["source_modules"])


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout
