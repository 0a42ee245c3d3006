"""`grader keys` and `grader credential verify|revoke` as a person runs them: each check in words,
exit 0 only for a credential that verifies, and a sentence (never a traceback) for bad input."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from grader.credentials import (
    KeyAlgorithm,
    StatusList,
    StatusPurpose,
    build_status_list_credential,
    data_integrity,
    did_document,
)
from grader.credentials.did import verification_method_id
from grader.credentials.issuing import SignedCredential, sign_both
from grader.credentials.keys import KeySet
from grader.entrypoints.cli import main
from tests.unit.credentials.sample_award import ISSUED_AT, IssuerWorld


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def files(tmp_path: Path, world: IssuerWorld, signed: SignedCredential) -> dict[str, Path]:
    written = {
        "credential": tmp_path / "credential.json",
        "jwt": tmp_path / "credential.jwt",
        "did": tmp_path / "did.json",
    }
    written["credential"].write_text(json.dumps(signed.json_ld))
    written["jwt"].write_text(signed.jwt)
    written["did"].write_text(json.dumps(did_document(world.did, world.keys.public_keys())))
    return written


def status_list_file(tmp_path: Path, world: IssuerWorld, purpose: StatusPurpose, *indices: int) -> Path:
    bits = StatusList()
    for index in indices:
        bits.set(index)
    url = f"{world.did.replace('did:web:', 'https://')}/credentials/status/{purpose}"
    unsigned = build_status_list_credential(
        list_url=url, issuer_id=world.did, purpose=purpose, status_list=bits, valid_from=ISSUED_AT
    )
    key = world.keys.current(KeyAlgorithm.ED25519)
    signed = data_integrity.sign(
        unsigned, key, verification_method_id(world.did, key.public_key()), ISSUED_AT
    )
    path = tmp_path / f"{purpose}.json"
    path.write_text(json.dumps(signed))
    return path


def test_a_credential_and_its_jwt_verify_with_every_check_printed(files: dict[str, Path]) -> None:
    for form in ("credential", "jwt"):
        result = run("credential", "verify", str(files[form]), "--did", str(files["did"]))
        assert result.exit_code == 0, result.output
        for check in ("structure: passed", "proof: passed", "dates: passed", "status:"):
            assert check in result.output
        assert result.output.rstrip().endswith("verified")


def tampered_forms(signed: SignedCredential, world: IssuerWorld) -> dict[str, Any]:
    score = copy.deepcopy(signed.json_ld)
    score["credentialSubject"]["result"][0]["value"] = "99"
    subject = copy.deepcopy(signed.json_ld)
    subject["credentialSubject"]["identifier"][0]["identityHash"] = "sha256$" + "0" * 64
    stranger = KeySet.create(ISSUED_AT, rsa_bits=2048)
    unsigned = {k: v for k, v in signed.json_ld.items() if k != "proof"}
    resigned = sign_both(unsigned, stranger, world.did, ISSUED_AT).json_ld
    return {"a changed score": score, "a swapped subject": subject, "re-signed by an unknown key": resigned}


def test_each_tampered_form_fails_with_its_reason(
    tmp_path: Path, files: dict[str, Path], signed: SignedCredential, world: IssuerWorld
) -> None:
    for name, document in tampered_forms(signed, world).items():
        path = tmp_path / "tampered.json"
        path.write_text(json.dumps(document))
        result = run("credential", "verify", str(path), "--did", str(files["did"]))
        assert result.exit_code == 1, name
        assert "proof: FAILED" in result.output or "proof: failed" in result.output.lower(), (
            name,
            result.output,
        )
        assert "NOT verified" in result.output


def test_a_proof_by_a_key_rotated_out_and_then_revoked_fails(
    tmp_path: Path, world: IssuerWorld, signed: SignedCredential
) -> None:
    old = world.keys.current(KeyAlgorithm.ED25519).key_id
    later = world.keys.rotate(KeyAlgorithm.ED25519, ISSUED_AT + timedelta(days=1)).revoke(
        old, ISSUED_AT + timedelta(days=2)
    )
    did = tmp_path / "did.json"
    did.write_text(json.dumps(did_document(world.did, later.public_keys())))
    path = tmp_path / "credential.json"
    path.write_text(json.dumps(signed.json_ld))
    result = run("credential", "verify", str(path), "--did", str(did))
    assert result.exit_code == 1 and "revoked" in result.output


def test_the_status_lists_given_decide_revoked_and_suspended(
    tmp_path: Path, files: dict[str, Path], signed: SignedCredential, world: IssuerWorld
) -> None:
    entries = signed.json_ld["credentialStatus"]
    entries = entries if isinstance(entries, list) else [entries]
    index = int(entries[0]["statusListIndex"])
    clear = [status_list_file(tmp_path, world, purpose) for purpose in StatusPurpose]
    args = ["credential", "verify", str(files["credential"]), "--did", str(files["did"])]
    fine = run(*args, *[item for path in clear for item in ("--status-list", str(path))])
    assert fine.exit_code == 0 and "not revoked" in fine.output, fine.output
    revoked = status_list_file(tmp_path, world, StatusPurpose.REVOCATION, index)
    result = run(*args, "--status-list", str(revoked), "--status-list", str(clear[1]))
    assert result.exit_code == 1 and "revoked" in result.output


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not json at all {", "structure: failed"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"[1, 2]", "neither JSON-LD nor a VC-JWT"),
    ],
)
def test_a_file_that_is_no_credential_gets_a_sentence_not_a_traceback(
    tmp_path: Path, files: dict[str, Path], content: bytes, says: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    result = run("credential", "verify", str(path), "--did", str(files["did"]))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert says.lower() in result.output.lower(), result.output


def test_a_missing_file_and_a_did_that_is_not_json_are_named(tmp_path: Path, files: dict[str, Path]) -> None:
    missing = run("credential", "verify", str(tmp_path / "nowhere.json"))
    assert missing.exit_code == 1 and "cannot read" in missing.output
    not_json = tmp_path / "did.txt"
    not_json.write_text("hello")
    result = run("credential", "verify", str(files["credential"]), "--did", str(not_json))
    assert result.exit_code == 1 and "is not JSON" in result.output


def test_keys_are_created_once_rotated_keeping_the_old_and_shown(tmp_path: Path) -> None:
    env = {
        "GRADER_DATA_DIR": str(tmp_path / "var"),
        "GRADER_CREDENTIAL_KEY_SECRET": "a-secret-of-enough-length",
    }
    created = run("keys", "create", env=env)
    assert created.exit_code == 0 and created.output.count("current") == 2
    again = run("keys", "create", env=env)
    assert again.exit_code == 1 and "rotate them instead" in again.output
    rotated = run("keys", "rotate", "--algorithm", "Ed25519", env=env)
    assert rotated.exit_code == 0 and "retired" in rotated.output and rotated.output.count("current") == 2
    shown = run("keys", "show", env=env)
    assert "issuer DID: did:key:z6Mk" in shown.output and shown.output.count("Ed25519") == 2
    stored = (tmp_path / "var" / "keys" / "issuer-keys.json").read_text()
    assert "PRIVATE KEY" in stored and "ENCRYPTED" in stored  # never in the clear
    wrong = run("keys", "show", env={**env, "GRADER_CREDENTIAL_KEY_SECRET": "another-secret-entirely"})
    assert wrong.exit_code == 1 and "Traceback" not in wrong.output


def test_production_refuses_to_start_without_the_key_secret(tmp_path: Path) -> None:
    env = {"GRADER_ENV": "production", "GRADER_SECRET_KEY": "s", "GRADER_DATA_DIR": str(tmp_path)}
    result = run("keys", "show", env=env)
    assert result.exit_code == 2 and "GRADER_CREDENTIAL_KEY_SECRET must be set in production" in result.output
