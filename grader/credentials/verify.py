"""Verifying a credential offline: structure, proof, dates and status, each with its outcome in words.

`verify` takes what a person would hand in (the JSON-LD text or object with its Data Integrity proof, or the
VC-JWT) and the issuer's keys (our `TrustedKeys`, a DID or controller document, or nothing for a did:key
issuer, whose key is in its name), and never raises for a bad credential: every problem is a failed
check with its reason, so the CLI and the verification page can show all of them.

The checks, in order:
- structure: OB 3.0 and VC 2.0 shape (contexts, types, issuer profile, validFrom, the subject and its
  achievement) and JSON-LD safe mode (every term defined by the shipped contexts);
- proof: the signature, by a key of the issuer listed for assertions; a revoked key is refused outright,
  and a retired key for anything dated after its retirement;
- dates: validFrom reached, validUntil not passed, a proof not created in the future;
- status: each credentialStatus entry read from the status list given (itself verified), revoked or
  suspended when its bit is set; "not checked" when no list was given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from grader.credentials import data_integrity, vc_jwt
from grader.credentials.dates import format_datetime, parse_datetime, utc_now
from grader.credentials.did import TrustedKeys, resolve_did_key
from grader.credentials.document import StatusPurpose
from grader.credentials.errors import MalformedCredential
from grader.credentials.keys import PublicKey
from grader.credentials.linked_data import (
    CREDENTIALS_V2,
    MAX_NESTING,
    OPEN_BADGES_V3,
    JsonObject,
    nesting,
    safe_expand,
)
from grader.credentials.status_list import read_entries, read_status

# A verification page reads uploads; this bounds what a single credential may be.
MAX_CREDENTIAL_BYTES = 1_000_000


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.outcome} - {self.detail}"


@dataclass(frozen=True)
class VerificationReport:
    proof_format: str
    checks: tuple[Check, ...]
    credential: JsonObject | None = field(default=None, repr=False)

    @property
    def verified(self) -> bool:
        """True when nothing failed and both the structure and the proof passed."""
        by_name = {check.name: check.outcome for check in self.checks}
        return (
            all(check.outcome is not Outcome.FAILED for check in self.checks)
            and by_name.get("structure") is Outcome.PASSED
            and by_name.get("proof") is Outcome.PASSED
        )

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)

    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.outcome is Outcome.FAILED]

    def lines(self) -> list[str]:
        verdict = "verified" if self.verified else "NOT verified"
        return [f"{self.proof_format}: {verdict}", *(f"  {check}" for check in self.checks)]


KeysInput = TrustedKeys | Mapping[str, Any] | None
StatusInput = Mapping[str, Any] | str | Sequence[Mapping[str, Any] | str] | None

DATA_INTEGRITY_FORMAT = "Data Integrity proof (eddsa-rdfc-2022)"
JWT_FORMAT = "VC-JWT (RS256)"


def _not_checked(reason: str, *names: str) -> list[Check]:
    return [Check(name, Outcome.NOT_CHECKED, reason) for name in names]


def _read(credential: str | bytes | Mapping[str, Any]) -> tuple[str, JsonObject | str]:
    proof_format, read = _parse(credential)
    if not isinstance(read, str) and nesting(read) > MAX_NESTING:
        raise MalformedCredential(
            f"the credential nests deeper than {MAX_NESTING} levels", details={"field": "file"}
        )
    return proof_format, read


def _parse(credential: str | bytes | Mapping[str, Any]) -> tuple[str, JsonObject | str]:
    if isinstance(credential, Mapping):
        return DATA_INTEGRITY_FORMAT, dict(credential)
    if len(credential) > MAX_CREDENTIAL_BYTES:
        raise MalformedCredential(
            f"the credential is over {MAX_CREDENTIAL_BYTES} bytes", details={"field": "file"}
        )
    text = credential.decode("utf-8", errors="strict") if isinstance(credential, bytes) else credential
    text = text.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise MalformedCredential(
                f"the credential is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})",
                details={"field": "file"},
            ) from error
        except RecursionError as error:
            raise MalformedCredential(
                f"the credential nests deeper than {MAX_NESTING} levels", details={"field": "file"}
            ) from error
        return DATA_INTEGRITY_FORMAT, parsed
    if text.count(".") == 2:
        return JWT_FORMAT, text
    raise MalformedCredential("the credential is neither JSON-LD nor a VC-JWT", details={"field": "file"})


def check_structure(credential: JsonObject) -> Check:
    """OB 3.0 / VC 2.0 shape, then JSON-LD safe mode."""
    problems = _structure_problems(credential)
    if problems:
        return Check("structure", Outcome.FAILED, "; ".join(problems))
    try:
        safe_expand({key: value for key, value in credential.items() if key != "proof"})
    except MalformedCredential as error:
        return Check("structure", Outcome.FAILED, error.message)
    return Check(
        "structure", Outcome.PASSED, "an OpenBadgeCredential (OB 3.0, VC 2.0); JSON-LD safe mode holds"
    )


def _types(node: Any) -> list[str]:
    if not isinstance(node, dict):
        return []
    value = node.get("type")
    return [str(item) for item in value] if isinstance(value, list) else [str(value)] if value else []


def _structure_problems(credential: JsonObject) -> list[str]:
    problems = []
    contexts = credential.get("@context")
    if not isinstance(contexts, list) or contexts[:2] != [CREDENTIALS_V2, OPEN_BADGES_V3]:
        problems.append(f"@context must begin with {CREDENTIALS_V2} and {OPEN_BADGES_V3}")
    elif not all(isinstance(context, str) for context in contexts):
        problems.append("@context must list context URLs, not embedded contexts")
    types = _types(credential)
    if "VerifiableCredential" not in types or not {"OpenBadgeCredential", "AchievementCredential"} & set(
        types
    ):
        problems.append("type must include VerifiableCredential and OpenBadgeCredential")
    if not isinstance(credential.get("id"), str):
        problems.append("the credential has no id")
    issuer = credential.get("issuer")
    if (
        not isinstance(issuer, dict)
        or not isinstance(issuer.get("id"), str)
        or "Profile" not in _types(issuer)
    ):
        problems.append("issuer must be a Profile with an id")
    if "validFrom" not in credential:
        problems.append("validFrom is missing")
    subject = credential.get("credentialSubject")
    if not isinstance(subject, dict) or "AchievementSubject" not in _types(subject):
        problems.append("credentialSubject must be an AchievementSubject")
        return problems
    if "id" not in subject and not subject.get("identifier"):
        problems.append("credentialSubject needs an id or an identifier")
    achievement = subject.get("achievement")
    if not isinstance(achievement, dict) or "Achievement" not in _types(achievement):
        problems.append("credentialSubject.achievement must be an Achievement")
    else:
        missing = [name for name in ("id", "name", "description", "criteria") if name not in achievement]
        if missing:
            problems.append(f"the achievement lacks {', '.join(missing)}")
    return problems


def _issuer_id(credential: JsonObject) -> str | None:
    issuer = credential.get("issuer")
    value = issuer.get("id") if isinstance(issuer, dict) else issuer
    return value if isinstance(value, str) else None


def trusted_keys_for(issuer_id: str, keys: KeysInput) -> TrustedKeys:
    """The keys to trust for `issuer_id`; `MalformedCredential` saying why there are none."""
    if keys is None:
        if issuer_id.startswith("did:key:"):
            return TrustedKeys.from_document(resolve_did_key(issuer_id))
        raise MalformedCredential(
            f"no keys were given for the issuer {issuer_id}, and only a did:key resolves offline by itself"
        )
    if not isinstance(keys, TrustedKeys | Mapping):
        raise MalformedCredential("the issuer's keys must be a DID document or controller document object")
    trusted = keys if isinstance(keys, TrustedKeys) else TrustedKeys.from_document(keys)
    if trusted.controller != issuer_id:
        raise MalformedCredential(
            f"the keys given belong to {trusted.controller}, but the credential's issuer is {issuer_id}"
        )
    return trusted


def _lifecycle_problem(
    method_id: str, key: PublicKey, valid_from: datetime | None, created: datetime | None
) -> str:
    if key.revoked_at is not None:
        return (
            f"key {method_id} was revoked on {format_datetime(key.revoked_at)}: nothing it signed is trusted"
        )
    if key.retired_at is not None:
        for label, moment in (("validFrom", valid_from), ("proof creation", created)):
            if moment is not None and moment > key.retired_at:
                return (
                    f"key {method_id} was retired on {format_datetime(key.retired_at)}, "
                    f"before the credential's {label} ({format_datetime(moment)}): "
                    "a rotated-out key signs nothing new"
                )
    return ""


def _valid_from(credential: JsonObject) -> datetime | None:
    try:
        return parse_datetime(credential.get("validFrom"), "validFrom")
    except MalformedCredential:
        return None


def _check_data_integrity(credential: JsonObject, keys: KeysInput) -> tuple[Check, datetime | None]:
    issuer_id = _issuer_id(credential)
    if issuer_id is None:
        return Check(
            "proof", Outcome.FAILED, "the credential names no issuer whose key could verify it"
        ), None
    try:
        trusted = trusted_keys_for(issuer_id, keys)
        proof = data_integrity.read_proof(credential)
        method_id = str(proof.get("verificationMethod", ""))
        public_key = trusted.find(method_id)
        if public_key is None:
            return Check(
                "proof",
                Outcome.FAILED,
                f"the proof is signed by {method_id or 'no key'}, "
                f"which is not an assertion key of {issuer_id}",
            ), None
        result = data_integrity.verify(credential, public_key)
    except MalformedCredential as error:
        return Check("proof", Outcome.FAILED, error.message), None
    if not result.valid:
        return Check("proof", Outcome.FAILED, result.reason), result.created
    problem = _lifecycle_problem(method_id, public_key, _valid_from(credential), result.created)
    if problem:
        return Check("proof", Outcome.FAILED, problem), result.created
    return Check("proof", Outcome.PASSED, result.reason), result.created


def _check_jwt(token: str, keys: KeysInput) -> tuple[Check, JsonObject | None]:
    try:
        _, payload = vc_jwt.read_unverified(token)
        issuer_id = payload.get("iss") if isinstance(payload.get("iss"), str) else _issuer_id(payload)
        if not isinstance(issuer_id, str):
            return Check("proof", Outcome.FAILED, "the JWT names no issuer (iss)"), None
        trusted = trusted_keys_for(issuer_id, keys)
        result = vc_jwt.verify(token, trusted)
    except MalformedCredential as error:
        return Check("proof", Outcome.FAILED, error.message), None
    credential = {name: value for name, value in payload.items() if name not in vc_jwt.JWT_CLAIMS}
    if not result.valid:
        return Check("proof", Outcome.FAILED, result.reason), credential
    public_key = trusted.find(str(result.key_id))
    if public_key is not None:
        problem = _lifecycle_problem(str(result.key_id), public_key, _valid_from(credential), None)
        if problem:
            return Check("proof", Outcome.FAILED, problem), credential
    return Check("proof", Outcome.PASSED, result.reason), credential


def check_dates(credential: JsonObject, now: datetime, proof_created: datetime | None = None) -> Check:
    try:
        valid_from = parse_datetime(credential.get("validFrom"), "validFrom")
        valid_until = (
            parse_datetime(credential["validUntil"], "validUntil") if "validUntil" in credential else None
        )
    except MalformedCredential as error:
        return Check("dates", Outcome.FAILED, error.message)
    if valid_from > now:
        return Check("dates", Outcome.FAILED, f"not valid before {format_datetime(valid_from)}")
    if valid_until is not None and valid_until <= now:
        return Check("dates", Outcome.FAILED, f"expired on {format_datetime(valid_until)}")
    if proof_created is not None and proof_created > now:
        return Check(
            "dates",
            Outcome.FAILED,
            f"the proof claims to be created in the future, {format_datetime(proof_created)}",
        )
    until = f" until {format_datetime(valid_until)}" if valid_until else ", with no end date"
    return Check("dates", Outcome.PASSED, f"valid from {format_datetime(valid_from)}{until}")


def _status_lists(status_list: StatusInput) -> list[Mapping[str, Any] | str]:
    if status_list is None:
        return []
    if isinstance(status_list, Mapping | str):
        return [status_list]
    return list(status_list)


def _verified_list(
    raw: Mapping[str, Any] | str, issuer_id: str, keys: KeysInput, now: datetime
) -> JsonObject:
    """A status list credential whose proof and issuer hold; `MalformedCredential` saying why not."""
    if isinstance(raw, str):
        token_check, payload = _check_jwt(raw.strip(), keys)
        if token_check.outcome is not Outcome.PASSED or payload is None:
            raise MalformedCredential(f"the status list does not verify: {token_check.detail}")
        if _issuer_id(payload) != issuer_id:
            raise MalformedCredential(
                f"the status list is issued by {_issuer_id(payload)}, not by {issuer_id}"
            )
        return payload
    listed = dict(raw)
    if _issuer_id(listed) != issuer_id:
        raise MalformedCredential(
            f"the status list {listed.get('id')} is issued by {_issuer_id(listed)}, not by {issuer_id}"
        )
    proof_check, _ = _check_data_integrity(listed, keys)
    if proof_check.outcome is not Outcome.PASSED:
        raise MalformedCredential(f"the status list {listed.get('id')} does not verify: {proof_check.detail}")
    dates = check_dates(listed, now)
    if dates.outcome is Outcome.FAILED:
        raise MalformedCredential(f"the status list {listed.get('id')} is not current: {dates.detail}")
    return listed


def check_status(credential: JsonObject, keys: KeysInput, status_list: StatusInput, now: datetime) -> Check:
    try:
        entries = read_entries(credential)
    except MalformedCredential as error:
        return Check("status", Outcome.FAILED, error.message)
    if not entries:
        return Check("status", Outcome.NOT_CHECKED, "the credential has no credentialStatus")
    lists = _status_lists(status_list)
    if not lists:
        return Check(
            "status", Outcome.NOT_CHECKED, "no status list was given to check credentialStatus against"
        )
    issuer_id = _issuer_id(credential) or ""
    by_url: dict[str, JsonObject] = {}
    for raw in lists:
        if not isinstance(raw, Mapping | str):
            return Check("status", Outcome.FAILED, "a status list must be a credential object or a VC-JWT")
        try:
            listed = _verified_list(raw, issuer_id, keys, now)
        except MalformedCredential as error:
            return Check("status", Outcome.FAILED, error.message)
        by_url[str(listed.get("id"))] = listed
    findings, unchecked = [], []
    for entry in entries:
        listed_credential = by_url.get(entry.list_url)
        if listed_credential is None:
            unchecked.append(f"{entry.purpose} ({entry.list_url}): no list given")
            continue
        try:
            reading = read_status(entry, listed_credential)
        except (MalformedCredential, IndexError) as error:
            message = error.message if isinstance(error, MalformedCredential) else str(error)
            return Check("status", Outcome.FAILED, message)
        if reading.is_set:
            word = "revoked" if entry.purpose is StatusPurpose.REVOCATION else "suspended"
            return Check("status", Outcome.FAILED, f"{word}: bit {entry.index} of {entry.list_url} is set")
        findings.append(f"not {'revoked' if entry.purpose is StatusPurpose.REVOCATION else 'suspended'}")
    detail = "; ".join(findings + [f"not checked: {item}" for item in unchecked])
    return Check("status", Outcome.NOT_CHECKED if unchecked else Outcome.PASSED, detail)


def verify(
    credential: str | bytes | Mapping[str, Any],
    keys_or_did_document: KeysInput = None,
    status_list: StatusInput = None,
    now: datetime | None = None,
) -> VerificationReport:
    """Every check of the credential (JSON-LD with a Data Integrity proof, or a VC-JWT), in words."""
    moment = now or utc_now()
    try:
        proof_format, read = _read(credential)
    except (MalformedCredential, UnicodeDecodeError) as error:
        reason = error.message if isinstance(error, MalformedCredential) else "the file is not UTF-8 text"
        checks = [Check("structure", Outcome.FAILED, reason)]
        return VerificationReport(
            "unreadable",
            tuple(checks + _not_checked("the credential could not be read", "proof", "dates", "status")),
        )
    if not isinstance(read, dict) and not isinstance(read, str):
        checks = [Check("structure", Outcome.FAILED, "the credential must be a JSON object")]
        return VerificationReport(
            proof_format,
            tuple(checks + _not_checked("the credential could not be read", "proof", "dates", "status")),
        )
    created: datetime | None = None
    if isinstance(read, str):
        proof, payload = _check_jwt(read, keys_or_did_document)
        document = payload
    else:
        proof, created = _check_data_integrity(read, keys_or_did_document)
        document = read
    if document is None:
        checks = [Check("structure", Outcome.FAILED, "the JWT payload could not be read"), proof]
        return VerificationReport(
            proof_format, tuple(checks + _not_checked("the credential could not be read", "dates", "status"))
        )
    structure = check_structure(document)
    dates = check_dates(document, moment, created)
    status = check_status(document, keys_or_did_document, status_list, moment)
    return VerificationReport(proof_format, (structure, proof, dates, status), document)
