"""`grader demo --smoke` on a fresh data folder: the embedded stack grades a learner's quizzes,
repositories and portfolios, a reviewer scores what needs review, and both sample credentials are earned."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.independent_verifier import verify_independently

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.node
def test_demo_smoke_passes_on_a_fresh_data_folder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader.entrypoints.cli",
            "demo",
            "--smoke",
            "--catalog",
            str(ROOT / "examples/catalog"),
        ],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "smoke OK" in result.stdout
    assert "graded python-web-fundamentals" in result.stdout
    assert "graded supply-chain-fundamentals" in result.stdout
    assert "graded wsgi-todo-api" in result.stdout and "23/23 visible tests passed" in result.stdout
    # isolation: process, and a Gradescope autograder whose hidden tests hold its total back
    assert "graded http-toolkit" in result.stdout and "12/12 visible tests passed" in result.stdout
    assert "graded access-log-report" in result.stdout and "total held back" in result.stdout
    # the reviewer's side: the repository's manual criteria scored through the API, a final pass
    assert (
        "reviewed wsgi-todo-api as reviewer@example.org" in result.stdout and "passed=True" in result.stdout
    )
    # portfolios handed in through the API, checked, reviewed; both sample credentials earned
    assert (
        "18/18 automatic checks passed" in result.stdout and "16/16 automatic checks passed" in result.stdout
    )
    assert "reviewed deployed-web-service-writeup as reviewer@example.org" in result.stdout
    kept = tmp_path / "var" / "smoke" / "credentials"
    issuer = json.loads((kept / "issuer-did.json").read_text())
    for program in ("python-web-developer", "supply-chain-management"):
        awarded = re.search(
            rf"credential awarded: {program} (http://127\.0\.0\.1:\d+/credentials/\S+)", result.stdout
        )
        assert awarded is not None, f"no credential line for {program}"
        document = json.loads((kept / f"{program}.json").read_text())
        assert awarded.group(1).endswith(document["id"].removeprefix("urn:uuid:"))
        achievement = document["credentialSubject"]["achievement"]
        assert {a["targetFramework"] for a in achievement["alignment"]} == {"SFIA 8"}
        # checked by `grader credential verify` inside the smoke, and here by a verifier we did not write
        for proof_form in (document, (kept / f"{program}.jwt").read_text()):
            verdict = verify_independently(proof_form, issuer)
            assert verdict.verified, verdict.errors
    developer = json.loads((kept / "python-web-developer.json").read_text())
    assert developer["validUntil"] > developer["validFrom"]  # valid for three years, from the catalog
    assert result.stdout.count("NOT verified") == 0 and result.stdout.count("\n  verified") >= 4
    assert (tmp_path / "var" / "grader.db").exists()  # embedded defaults: SQLite under ./var
