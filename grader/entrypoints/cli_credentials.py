"""`grader keys` and `grader credential`: the issuer's signing keys, and credentials checked offline.

`keys create|rotate|revoke|show` manage the encrypted key set the workers sign with; `credential verify`
checks any credential file (JSON-LD with a Data Integrity proof, or a VC-JWT) against a DID document and
status lists given as files or URLs, printing each check; `credential revoke` withdraws an issued one.
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import click

from grader.credentials import KeyAlgorithm, KeySet, verify
from grader.credentials.did import resolve_did_key
from grader.entrypoints.cli_support import friendly_errors, session_factory
from grader.entrypoints.cli_support import settings as load_settings
from grader.errors import InvalidInput
from grader.services import audit, credentials

MAX_FETCH_BYTES = 5 * 1024 * 1024


@click.group()
def keys() -> None:
    """The issuer's signing keys (Ed25519 for Data Integrity, RSA for VC-JWT), encrypted at rest."""


def _print_keys(key_set: KeySet) -> None:
    for key in key_set.keys:
        state = "revoked" if key.revoked_at else "retired" if key.retired_at else "current"
        click.echo(f"{key.algorithm:8} {state:8} created {key.created_at:%Y-%m-%d %H:%M} UTC  {key.key_id}")


@keys.command("create")
@friendly_errors
def keys_create() -> None:
    """Create the key set at GRADER_CREDENTIAL_KEYS_PATH (refuses to overwrite one)."""
    settings = load_settings()
    key_set = credentials.create_keys(settings)
    click.echo(f"created the issuer's keys in {settings.resolved_credential_keys_path}")
    _print_keys(key_set)


@keys.command("rotate")
@click.option(
    "--algorithm",
    "algorithms",
    type=click.Choice([a.value for a in KeyAlgorithm]),
    multiple=True,
    help="Rotate only this key (default: both).",
)
@friendly_errors
def keys_rotate(algorithms: tuple[str, ...]) -> None:
    """New current keys; the old ones stay published so that what they signed still verifies."""
    chosen = [KeyAlgorithm(a) for a in algorithms] or list(KeyAlgorithm)
    key_set = credentials.rotate_keys(load_settings(), chosen)
    click.echo("rotated; the DID document now lists:")
    _print_keys(key_set)


@keys.command("revoke")
@click.argument("key_id")
@friendly_errors
def keys_revoke(key_id: str) -> None:
    """Mark a key compromised: nothing it signed verifies any more."""
    key_set = credentials.revoke_key(load_settings(), key_id)
    click.echo(f"revoked {key_id}")
    _print_keys(key_set)


@keys.command("show")
@friendly_errors
def keys_show() -> None:
    """The keys and the issuer's DID."""
    identity = credentials.issuer_identity(load_settings())
    click.echo(f"issuer DID: {identity.did}")
    _print_keys(identity.keys)


@click.group()
def credential() -> None:
    """Issued credentials: verify one offline, or revoke one."""


def _read_source(source: str) -> bytes:
    """A file, or an http(s) URL fetched with a size cap (a status list the issuer publishes)."""
    if source.startswith(("https://", "http://")):
        try:
            with urllib.request.urlopen(source, timeout=10) as response:
                data: bytes = response.read(MAX_FETCH_BYTES + 1)
        except OSError as exc:
            raise InvalidInput(f"could not fetch {source}: {exc}", details={"field": "source"}) from None
        if len(data) > MAX_FETCH_BYTES:
            raise InvalidInput(f"{source} is over {MAX_FETCH_BYTES // 1024 // 1024} MB")
        return data
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {source}: {exc.strerror}", details={"field": "source"}) from None


def _json(source: str) -> Any:
    try:
        return json.loads(_read_source(source))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput(f"{source} is not JSON", details={"field": "source"}) from None


@credential.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--did", "did_source", help="The issuer's DID document (file or URL); did:key needs none.")
@click.option(
    "--status-list", "status_sources", multiple=True, help="A status list credential (file or URL)."
)
@friendly_errors
def credential_verify(path: Path, did_source: str | None, status_sources: tuple[str, ...]) -> None:
    """Check a credential offline: structure, proof, dates and status, one line each."""
    data = _read_source(str(path))
    keys_input: Any = _json(did_source) if did_source else None
    if keys_input is None:
        issuer = _issuer_of(data)
        if issuer is not None and issuer.startswith("did:key:"):
            keys_input = resolve_did_key(issuer)
    lists = [_json(source) for source in status_sources]
    report = verify(data, keys_input, lists or None)
    for line in report.lines():
        click.echo(line)
    click.echo("verified" if report.verified else "NOT verified")
    sys.exit(0 if report.verified else 1)


def _issuer_of(data: bytes) -> str | None:
    """The issuer id of a JSON-LD credential or of a VC-JWT's payload, if it can be read."""
    text = data.decode("utf-8", errors="replace").strip()
    try:
        if text.startswith("{"):
            document = json.loads(text)
        else:
            payload = text.split(".")[1]
            document = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, IndexError):
        return None
    issuer = document.get("issuer") if isinstance(document, dict) else None
    if isinstance(issuer, dict):
        issuer = issuer.get("id")
    return issuer if isinstance(issuer, str) else None


@credential.command("revoke")
@click.argument("credential_id")
@click.option("--reason", required=True, help="Why, in words: kept in the audit log and shown on its page.")
@friendly_errors
def credential_revoke(credential_id: str, reason: str) -> None:
    """Withdraw an issued credential for good; the revocation status list shows it at once."""
    settings = load_settings()
    with session_factory(settings)() as session:
        revoked = credentials.revoke(session, credential_id, reason, actor=audit.cli_actor())
        session.commit()
        click.echo(f"revoked credential {revoked.id}: {reason}")
