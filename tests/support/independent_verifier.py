"""The independent Open Badges 3.0 verifier (tests/verifier, Node.js) as one Python call for the tests.

`verify_independently` hands a credential (JSON-LD with its proof, or a VC-JWT), the issuer's DID
document and any status list credentials to `node tests/verifier/verify.mjs` as files, and returns its
verdict. The verifier is Digital Bazaar's libraries and jose, not this project's code, and it fetches
nothing. If Node.js or the verifier's packages are missing the test fails, saying how to install them:
a credential test must not go green without an outside opinion.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERIFIER_DIR = ROOT / "tests" / "verifier"
SCRIPT = VERIFIER_DIR / "verify.mjs"
MINIMUM_NODE = 20
# One verification is about half a second on the 2-core machine; this only catches a hung process.
TIMEOUT_SECONDS = 60
SET_UP = "run `make verifier` (part of `make test`), which runs `npm ci` in tests/verifier"


@dataclass(frozen=True)
class IndependentVerdict:
    """What the independent verifier said: verified or not, why not, and the status it read."""

    verified: bool
    format: str
    errors: tuple[str, ...]
    revoked: bool | None
    suspended: bool | None
    verification_method: str | None
    documents: Mapping[str, str] = field(default_factory=dict)

    def says(self, fragment: str) -> bool:
        """Does any of its reasons contain `fragment` (case-insensitive)?"""
        return any(fragment.lower() in error.lower() for error in self.errors)


class VerifierFault(Exception):
    """The verifier did not give a verdict (usage error, crash, timeout): a fault, never a rejection."""


@cache
def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            f"Node.js is not installed; the independent verifier needs Node.js {MINIMUM_NODE}: {SET_UP}"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    major = int(version.strip().lstrip("v").split(".")[0])
    if major < MINIMUM_NODE:
        pytest.fail(f"Node.js {version.strip()} is too old; the verifier needs {MINIMUM_NODE} or later")
    return node


@cache
def _check_installed() -> None:
    """Every package the verifier pins is installed at its pinned version."""
    pinned = json.loads((VERIFIER_DIR / "package.json").read_text("utf-8"))["dependencies"]
    for name, version in pinned.items():
        manifest = VERIFIER_DIR / "node_modules" / name / "package.json"
        if not manifest.is_file():
            pytest.fail(f"the independent verifier's package {name} is not installed: {SET_UP}")
        installed = json.loads(manifest.read_text("utf-8")).get("version")
        if installed != version:
            pytest.fail(
                f"tests/verifier has {name} {installed} installed, not the pinned {version}: {SET_UP}"
            )


def _write(directory: Path, name: str, content: Mapping[str, Any] | str | Path) -> Path:
    if isinstance(content, Path):
        return content
    path = directory / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


def verify_independently(
    credential: Mapping[str, Any] | str | Path,
    did_document: Mapping[str, Any] | Path | None = None,
    status_lists: Sequence[Mapping[str, Any] | Path] = (),
    *,
    now: datetime | None = None,
    contexts: Path | None = None,
) -> IndependentVerdict:
    """The independent verifier's verdict on a credential: a JSON-LD object, a VC-JWT string or a file.

    `did_document` is the issuer's (needed for did:web; a did:key resolves from its name, but its JWT's
    embedded RSA key is trusted only when a document given lists it). `now` defaults to the clock;
    `contexts` replaces the project's context folder (grader/credentials/contexts).
    """
    node = _node()
    _check_installed()
    with tempfile.TemporaryDirectory(prefix="independent-verifier-") as folder:
        directory = Path(folder)
        suffix = "jwt" if isinstance(credential, str) else "json"
        arguments = [node, str(SCRIPT), str(_write(directory, f"credential.{suffix}", credential))]
        if did_document is not None:
            arguments += ["--did-document", str(_write(directory, "did.json", did_document))]
        for number, status_list in enumerate(status_lists):
            arguments += ["--status-list", str(_write(directory, f"status-{number}.json", status_list))]
        if now is not None:
            arguments += ["--now", now.astimezone(UTC).isoformat()]
        if contexts is not None:
            arguments += ["--contexts", str(contexts)]
        try:
            finished = subprocess.run(
                arguments, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, cwd=VERIFIER_DIR
            )
        except subprocess.TimeoutExpired as error:
            raise VerifierFault(f"the independent verifier did not answer in {TIMEOUT_SECONDS} s") from error
    if finished.returncode not in (0, 1):
        raise VerifierFault(
            f"the independent verifier exited {finished.returncode}: {finished.stderr.strip()[-2000:]}"
        )
    try:
        report = json.loads(finished.stdout)
    except json.JSONDecodeError as error:
        raise VerifierFault(f"the independent verifier printed no JSON: {finished.stdout[:500]!r}") from error
    if report["verified"] != (finished.returncode == 0):
        raise VerifierFault(f"the verifier's exit {finished.returncode} contradicts its report {report}")
    return IndependentVerdict(
        verified=report["verified"],
        format=report["format"],
        errors=tuple(report["errors"]),
        revoked=report["status"]["revocation"],
        suspended=report["status"]["suspension"],
        verification_method=report.get("verificationMethod"),
        documents={entry["url"]: entry["source"] for entry in report.get("documents", [])},
    )
