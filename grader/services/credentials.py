"""Issued credentials: the signed Open Badges 3.0 document of each award, its status, its lifecycle.

An award (`progress.update_awards`) opens a pending `IssuedCredential` in its own transaction; after the
commit a worker task signs it (`issue`), which writes the document only while the row is still pending, so
a task delivered twice, or re-sent by the reconciler after a worker died mid-issue, issues it once. The
document is built from the database alone: the program's requirements in words, each requirement's
standing result (score, pass mark, rubric levels), and its evidence (receipt, commit, artifact hashes,
assessment and rubric versions, grading image and hidden-test digests), graded by roles, never names.

Its status is two bits in the issuer's Bitstring Status Lists: suspension while a requirement it rests on
no longer passes or is back with a reviewer, lifted when it passes again; revocation by staff, with a
reason, for good. The lists are regenerated from the rows on request, so a change shows in the next fetch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from threading import Lock
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from grader import metrics
from grader.config import Settings
from grader.credentials import (
    Achievement,
    Alignment,
    CriterionResult,
    EvidenceItem,
    Image,
    Issuer,
    KeyAlgorithm,
    KeySet,
    PublicKey,
    Recipient,
    RequirementResult,
    RubricLevel,
    StatusEntry,
    StatusList,
    StatusPurpose,
    build_credential,
    build_status_list_credential,
    data_integrity,
    did_document,
    did_key,
    did_web,
)
from grader.credentials.did import verification_method_id
from grader.credentials.issuing import sign_both
from grader.credentials.linked_data import JsonObject
from grader.credentials.status_list import MINIMUM_BITS
from grader.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from grader.interfaces import TaskQueue
from grader.models import (
    AssessmentVersion,
    AwardStatus,
    CredentialAward,
    CredentialStatus,
    IssuedCredential,
    Requirement,
    Result,
    Review,
    Submission,
    utcnow,
)
from grader.services import audit

log = logging.getLogger(__name__)

# Credentials signed after a commit, waiting for the after-commit hook to hand them to the workers.
_TO_ISSUE = "credentials_to_issue"
# A pending credential this old was lost on its way to a worker (or its worker died): send it again.
PENDING_RESEND_AFTER = timedelta(seconds=60)
MAX_REASON_CHARS = 1000


# ---------------------------------------------------------------- the issuer and its keys


class IssuerNotConfigured(ServiceUnavailable):
    """No key set to sign with (production needs `grader keys create`), or it cannot be read."""


# Keyed by the file and the secret: a key set is only ever handed to a caller who could decrypt it.
_key_cache: dict[tuple[Path, str], tuple[float, KeySet]] = {}
_key_lock = Lock()


def _write_new(path: Path, text: str, *, replace: bool) -> None:
    """Write the key set readable by its owner only; atomically, so no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not replace:
        # O_EXCL: two processes creating the demo's keys at once end with one set, not two.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        return
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    temporary.replace(path)


def create_keys(settings: Settings, now: datetime | None = None) -> KeySet:
    """A new key set (Ed25519 and RSA) at the configured path; refuses to overwrite one."""
    path = settings.resolved_credential_keys_path
    key_set = KeySet.create(now or utcnow())
    try:
        _write_new(path, key_set.to_json(settings.resolved_credential_key_secret), replace=False)
    except FileExistsError:
        raise Conflict(f"{path} already holds the issuer's keys: rotate them instead") from None
    return key_set


def rotate_keys(
    settings: Settings, algorithms: Sequence[KeyAlgorithm], now: datetime | None = None
) -> KeySet:
    """New current keys; the old ones stay in the set (and the DID document) to verify what they signed."""
    key_set = load_keys(settings, create=False)
    moment = now or utcnow()
    for algorithm in algorithms:
        key_set = key_set.rotate(algorithm, moment)
    path = settings.resolved_credential_keys_path
    _write_new(path, key_set.to_json(settings.resolved_credential_key_secret), replace=True)
    return key_set


def revoke_key(settings: Settings, key_id: str, now: datetime | None = None) -> KeySet:
    """Mark a key compromised: nothing it signed verifies from now on."""
    key_set = load_keys(settings, create=False)
    if key_set.find(key_id) is None:
        raise NotFound(f"no key {key_id!r} in the issuer's key set")
    key_set = key_set.revoke(key_id, now or utcnow())
    path = settings.resolved_credential_keys_path
    _write_new(path, key_set.to_json(settings.resolved_credential_key_secret), replace=True)
    return key_set


def load_keys(settings: Settings, *, create: bool | None = None) -> KeySet:
    """The issuer's key set, decrypted once per process and file version.

    Outside production a missing set is created on first use (the demo runs on embedded defaults); in
    production it is an error that names the command to run.
    """
    path = settings.resolved_credential_keys_path
    may_create = (not settings.is_production) if create is None else create
    secret = settings.resolved_credential_key_secret
    cache_key = (path, hashlib.sha256(secret.encode()).hexdigest())
    with _key_lock:
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:
            if not may_create:
                raise IssuerNotConfigured(
                    f"the issuer has no signing keys at {path}: run `grader keys create`"
                ) from None
            try:
                key_set = create_keys(settings)
            except Conflict:
                pass  # another process made them a moment ago: read theirs
            else:
                _key_cache[cache_key] = (path.stat().st_mtime, key_set)
                return key_set
            modified = path.stat().st_mtime
        cached = _key_cache.get(cache_key)
        if cached is not None and cached[0] == modified:
            return cached[1]
        key_set = KeySet.from_json(path.read_text(), secret)
        _key_cache[cache_key] = (modified, key_set)
        return key_set


@dataclass(frozen=True)
class IssuerIdentity:
    """Who signs: the issuer profile, its DID, and the keys behind it."""

    settings: Settings
    keys: KeySet
    did: str

    @property
    def base_url(self) -> str:
        return self.settings.public_url.rstrip("/")

    @property
    def profile(self) -> Issuer:
        return Issuer(
            id=self.did,
            name=self.settings.issuer_name,
            url=self.settings.issuer_url or self.base_url,
            email=self.settings.issuer_email or None,
            image=Image(url=self.settings.issuer_image_url, caption=self.settings.issuer_name)
            if self.settings.issuer_image_url
            else None,
        )

    def did_document(self) -> JsonObject:
        """The issuer's keys as a DID document: every key, retired ones too, under assertionMethod.

        A did:key names one Ed25519 key and resolves to it alone, so the demo's issuer publishes this
        document beside its credentials: that key, plus its RSA keys for the VC-JWTs.
        """
        if self.did.startswith("did:key:"):
            ed25519 = PublicKey.from_multikey(self.did.removeprefix("did:key:"))
            rsa_keys = [key for key in self.keys.public_keys() if key.algorithm is KeyAlgorithm.RS256]
            return did_document(self.did, [ed25519, *rsa_keys])
        return did_document(self.did, self.keys.public_keys())

    def web_did_document(self) -> JsonObject:
        """The document served at /.well-known/did.json (the did:web of the public URL)."""
        return did_document(did_web(self.base_url), self.keys.public_keys())

    def status_list_url(self, purpose: StatusPurpose) -> str:
        return f"{self.base_url}/credentials/status/{purpose}"

    def public_url(self, credential: IssuedCredential) -> str:
        return f"{self.base_url}/credentials/{credential.id}"


def issuer_identity(settings: Settings) -> IssuerIdentity:
    keys = load_keys(settings)
    if settings.issuer_did == "web":
        did = did_web(settings.public_url.rstrip("/"))
    else:
        did = did_key(keys.current(KeyAlgorithm.ED25519).public_key())
    return IssuerIdentity(settings=settings, keys=keys, did=did)


# ---------------------------------------------------------------- opening, and handing to the workers


def _free_status_index(session: Session) -> int:
    taken = set(session.scalars(select(IssuedCredential.status_index)).all())
    if len(taken) >= MINIMUM_BITS:
        raise ServiceUnavailable("the status lists are full: every index is taken")
    while True:
        index = secrets.randbelow(MINIMUM_BITS)
        if index not in taken:
            return index


def open_credential(session: Session, award: CredentialAward) -> IssuedCredential:
    """The pending credential of a (re-)granted award, queued for signing after the commit."""
    for _attempt in range(5):
        credential = IssuedCredential(
            award_id=award.id, status_index=_free_status_index(session), recipient_salt=secrets.token_hex(16)
        )
        try:
            with session.begin_nested():
                session.add(credential)
                session.flush()
        except IntegrityError:
            continue  # another award drew the same index a moment ago; draw again
        session.info.setdefault(_TO_ISSUE, []).append(credential.id)
        return credential
    raise ServiceUnavailable("could not find a free status list index; try again")


def dispatch_on_commit(sessions: sessionmaker[Session], queue: TaskQueue) -> None:
    """Send the credentials opened in a transaction to the signing workers once it has committed.

    Only after the commit: a worker must find the row. A send that fails leaves the row pending, and the
    reconciler sends it again.
    """

    @event.listens_for(sessions, "after_commit")
    def _send(session: Session) -> None:
        for credential_id in session.info.pop(_TO_ISSUE, []):
            try:
                queue.enqueue_issue(credential_id)
            except Exception:
                log.warning("could not send credential %s to the workers", credential_id, exc_info=True)

    @event.listens_for(sessions, "after_rollback")
    def _forget(session: Session) -> None:
        session.info.pop(_TO_ISSUE, None)


def resend_pending(session: Session, queue: TaskQueue, now: datetime | None = None) -> list[str]:
    """Pending credentials older than a minute: their message or their worker was lost."""
    cutoff = (now or utcnow()) - PENDING_RESEND_AFTER
    stuck = session.scalars(
        select(IssuedCredential.id).where(
            IssuedCredential.status == CredentialStatus.PENDING, IssuedCredential.created_at < cutoff
        )
    ).all()
    sent = []
    for credential_id in stuck:
        try:
            queue.enqueue_issue(credential_id)
        except Exception:
            log.warning("reconciler could not send credential %s", credential_id, exc_info=True)
            continue
        sent.append(credential_id)
    return sent


# ---------------------------------------------------------------- signing


def issue(
    session: Session, credential_id: str, identity: IssuerIdentity, now: datetime | None = None
) -> bool:
    """Sign a pending credential; False when it was signed already (a second delivery) or is gone."""
    credential = session.get(IssuedCredential, credential_id)
    if credential is None or credential.status != CredentialStatus.PENDING:
        return False
    moment = now or utcnow()
    document = build_document(session, credential, identity, moment)
    signed = sign_both(document, identity.keys, identity.did, moment)
    # Conditional on still pending: of two workers signing at once, one write lands.
    written = session.execute(
        update(IssuedCredential)
        .where(IssuedCredential.id == credential_id, IssuedCredential.status == CredentialStatus.PENDING)
        .values(
            status=CredentialStatus.SUSPENDED
            if credential.award.status == AwardStatus.SUSPENDED
            else CredentialStatus.ACTIVE,
            document=signed.json_ld,
            jwt=signed.jwt,
            issued_at=moment,
            suspended_at=moment if credential.award.status == AwardStatus.SUSPENDED else None,
        )
    )
    if written.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return False
    award = credential.award
    audit.record(
        session,
        audit.Actions.CREDENTIAL_ISSUED,
        actor="system",
        subject=f"credential {credential.id}",
        after={
            "program": award.program.slug,
            "issuer": identity.did,
            "status_index": credential.status_index,
        },
        reason="signed: eddsa-rdfc-2022 Data Integrity proof and VC-JWT",
        learner_id=award.user_id,
    )
    session.commit()
    metrics.credential_issued()
    return True


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "level"


def _pass_mark(requirement: Requirement, version: AssessmentVersion) -> float:
    """The fraction of the points the requirement asks for: the program's own, else the assessment's."""
    if requirement.min_score is not None:
        return requirement.min_score
    rubric = version.rubric.definition if version.rubric else {}
    return float(rubric.get("pass_mark") or version.definition.get("pass_mark") or 1.0)


def _criteria(result: Result, rubric_definition: dict[str, Any] | None) -> tuple[CriterionResult, ...]:
    """The rubric criteria that have levels, with the one the learner reached."""
    if not rubric_definition:
        return ()
    achieved = {
        c.get("id"): c.get("level") for c in (result.feedback.get("rubric") or {}).get("criteria", [])
    }
    criteria = []
    for criterion in rubric_definition.get("criteria", []):
        levels = criterion.get("levels") or []
        if not levels:
            continue
        level_slugs = {level["label"]: _slug(level["label"]) for level in levels}
        reached = achieved.get(criterion["id"])
        criteria.append(
            CriterionResult(
                slug=_slug(criterion["id"]),
                name=criterion.get("title", criterion["id"]),
                levels=tuple(
                    RubricLevel(
                        slug=level_slugs[level["label"]],
                        name=level["label"],
                        description=level.get("description"),
                        points=level.get("points"),
                    )
                    for level in levels
                ),
                achieved_level=level_slugs.get(reached) if reached else None,
            )
        )
    return tuple(criteria)


def _graded_by(session: Session, result: Result) -> str:
    """How the result was reached, in roles: the tests, a reviewer, both; with two, their agreement."""
    reviews = session.scalars(select(Review).where(Review.result_id == result.id)).all()
    criteria = (result.feedback.get("rubric") or {}).get("criteria", [])
    automatic = bool(result.feedback.get("tests") or result.feedback.get("questions")) or any(
        not c.get("manual") for c in criteria
    )
    reviewers = {review.reviewer_id for review in reviews}
    parts = ["automatic tests"] if automatic else []
    if len(reviewers) == 1:
        parts.append("a reviewer")
    elif len(reviewers) > 1:
        levels = [{row.get("criterion"): row.get("level") for row in review.criteria} for review in reviews]
        shared = set(levels[0]).intersection(*levels[1:])
        agreed = sum(1 for key in shared if len({lv.get(key) for lv in levels}) == 1)
        parts.append(
            f"{len(reviewers)} independent reviewers (same level on {agreed} of {len(shared)} criteria)"
        )
    return " and ".join(parts) or "automatic checks"


def _evidence_facts(result: Result, submission: Submission) -> list[tuple[str, str]]:
    feedback = result.feedback
    facts: list[tuple[str, str]] = [("receipt SHA-256", submission.receipt_sha256)]
    if submission.commit_sha:
        facts.append(("commit", submission.commit_sha))
    handed_in = submission.payload.get("files") if submission.kind == "portfolio" else None
    for artifact in handed_in if isinstance(handed_in, list) else []:
        if isinstance(artifact, dict) and artifact.get("sha256"):
            facts.append((f"artifact {artifact.get('slot', '')} SHA-256", str(artifact["sha256"])))
    version = result.run.assessment_version or submission.assessment_version
    facts.append(("assessment version", f"{version.version} (sha256 {version.content_hash})"))
    rubric = feedback.get("rubric") or {}
    if rubric.get("id"):
        facts.append(
            ("rubric", f"{rubric['id']} v{rubric.get('version')} (sha256 {rubric.get('content_hash')})")
        )
    environment = feedback.get("environment") or {}
    if environment.get("image"):
        facts.append(("grading image", str(environment["image"])))
    if environment.get("tests_sha256"):
        facts.append(("hidden tests SHA-256", str(environment["tests_sha256"])))
    return facts


def build_document(
    session: Session, credential: IssuedCredential, identity: IssuerIdentity, valid_from: datetime
) -> JsonObject:
    """The unsigned OpenBadgeCredential of a credential row, from the award's standing results."""
    from grader.services.progress import requirement_status

    award = credential.award
    program = award.program
    spec = program.definition.get("credential", {})
    base = identity.base_url
    achievement = Achievement(
        id=f"{base}/programs/{program.slug}",
        name=spec.get("name", program.title),
        description=spec.get("description", program.description).strip(),
        criteria_narrative=spec.get("criteria", "").strip() or "Every requirement of the program passed.",
        criteria_url=f"{base}/programs/{program.slug}",
        image=Image(url=f"{base}/programs/{program.slug}/badge.png", caption=f"{program.title} badge"),
        alignments=tuple(
            Alignment(
                target_name=item["name"],
                target_url=item["url"],
                target_description=item.get("description"),
                target_framework=item.get("framework"),
                target_code=item.get("code"),
            )
            for item in spec.get("alignments", [])
        ),
    )
    requirements: list[RequirementResult] = []
    evidence: list[EvidenceItem] = []
    for requirement in program.requirements:
        standing = requirement_status(session, award.user_id, requirement)
        if standing.result_id is None:
            continue
        result = session.get(Result, standing.result_id)
        if result is None:
            continue
        submission = session.get(Submission, result.submission_id)
        assert submission is not None  # a result always belongs to a submission
        version = result.run.assessment_version or submission.assessment_version
        requirements.append(
            RequirementResult(
                slug=requirement.assessment.slug,
                name=requirement.assessment.title,
                score=round(result.score, 4),
                max_score=round(result.max_score, 4),
                pass_mark=_pass_mark(requirement, version),
                criteria=_criteria(result, version.rubric.definition if version.rubric else None),
            )
        )
        evidence.append(
            EvidenceItem(
                id=f"{base}/credentials/{credential.id}#evidence-{requirement.assessment.slug}",
                name=requirement.assessment.title,
                description=f"The {requirement.assessment.kind} graded for this requirement.",
                facts=tuple(_evidence_facts(result, submission)),
                graded_by=_graded_by(session, result),
                genre=requirement.assessment.kind,
            )
        )
    valid_days = spec.get("valid_for_days")
    return build_credential(
        credential_id=credential.urn,
        issuer=identity.profile,
        achievement=achievement,
        recipient=Recipient(email=award.user.email, salt=credential.recipient_salt),
        valid_from=valid_from,
        valid_until=valid_from + timedelta(days=int(valid_days)) if valid_days else None,
        requirements=requirements,
        evidence=evidence,
        status=[
            StatusEntry(identity.status_list_url(purpose), credential.status_index, purpose)
            for purpose in (StatusPurpose.REVOCATION, StatusPurpose.SUSPENSION)
        ],
    )


# ---------------------------------------------------------------- lifecycle


def live_credential(award: CredentialAward) -> IssuedCredential | None:
    return next((c for c in reversed(award.credentials) if c.status != CredentialStatus.REVOKED), None)


def suspend(award: CredentialAward, moment: datetime) -> None:
    credential = live_credential(award)
    if credential is not None and credential.status == CredentialStatus.ACTIVE:
        credential.status, credential.suspended_at = CredentialStatus.SUSPENDED, moment


def reinstate(award: CredentialAward) -> None:
    credential = live_credential(award)
    if credential is not None and credential.status == CredentialStatus.SUSPENDED:
        credential.status, credential.suspended_at = CredentialStatus.ACTIVE, None


def revoke(session: Session, credential_id: str, reason: str, *, actor: str) -> IssuedCredential:
    """Staff withdraw a credential for good, saying why; only new work earns the program again."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("give the reason for the revocation", details={"field": "reason"})
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(
            f"the reason is {len(reason)} characters; at most {MAX_REASON_CHARS}", details={"field": "reason"}
        )
    credential = session.get(IssuedCredential, credential_id)
    if credential is None:
        raise NotFound(f"no credential {credential_id!r}")
    if credential.status == CredentialStatus.REVOKED:
        raise Conflict("this credential is revoked already")
    moment = utcnow()
    before = credential.status
    credential.status, credential.revoked_at, credential.revocation_reason = (
        CredentialStatus.REVOKED,
        moment,
        reason,
    )
    award = credential.award
    award.status, award.revoked_at, award.revocation_reason = AwardStatus.REVOKED, moment, reason
    audit.record(
        session,
        audit.Actions.CREDENTIAL_REVOKED,
        actor=actor,
        subject=f"credential {credential.id}",
        before={"status": before},
        after={"status": CredentialStatus.REVOKED, "program": award.program.slug},
        reason=reason,
        learner_id=award.user_id,
    )
    session.flush()
    metrics.credential_revoked()
    return credential


# ---------------------------------------------------------------- status lists


_status_cache: dict[tuple[str, str], tuple[frozenset[int], str, JsonObject]] = {}


def status_list_credential(session: Session, identity: IssuerIdentity, purpose: StatusPurpose) -> JsonObject:
    """The signed BitstringStatusListCredential of one purpose, as the rows say now.

    Signed again only when its bits or the signing key changed since the last request.
    """
    wanted = CredentialStatus.REVOKED if purpose is StatusPurpose.REVOCATION else CredentialStatus.SUSPENDED
    indices = frozenset(
        session.scalars(select(IssuedCredential.status_index).where(IssuedCredential.status == wanted)).all()
    )
    key = identity.keys.current(KeyAlgorithm.ED25519)
    cache_key = (identity.status_list_url(purpose), identity.did)
    cached = _status_cache.get(cache_key)
    if cached is not None and cached[0] == indices and cached[1] == key.key_id:
        return cached[2]
    bits = StatusList()
    for index in indices:
        bits.set(index)
    moment = utcnow()
    unsigned = build_status_list_credential(
        list_url=identity.status_list_url(purpose),
        issuer_id=identity.did,
        purpose=purpose,
        status_list=bits,
        valid_from=moment,
    )
    method = verification_method_id(identity.did, key.public_key())
    signed = data_integrity.sign(unsigned, key, method, moment)
    _status_cache[cache_key] = (indices, key.key_id, signed)
    return signed


# ---------------------------------------------------------------- reading


def get_credential(session: Session, credential_id: str) -> IssuedCredential:
    credential = session.get(IssuedCredential, credential_id) if _looks_like_id(credential_id) else None
    if credential is None:
        raise NotFound(f"no credential {credential_id!r}")
    return credential


def _looks_like_id(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f-]{36}", text))


def credentials_of(session: Session, user_id: int) -> list[IssuedCredential]:
    return list(
        session.scalars(
            select(IssuedCredential)
            .join(CredentialAward)
            .where(CredentialAward.user_id == user_id)
            .order_by(IssuedCredential.created_at.desc())
        ).all()
    )


def set_hidden_results(
    session: Session, credential: IssuedCredential, user_id: int, hidden: Iterable[str]
) -> IssuedCredential:
    """The learner chooses which results their public page leaves out (the signed document keeps all)."""
    if credential.award.user_id != user_id:
        raise NotFound(f"no credential {credential.id!r}")
    known = {r.assessment.slug for r in credential.award.program.requirements}
    chosen = sorted(set(hidden))
    unknown = [slug for slug in chosen if slug not in known]
    if unknown:
        raise InvalidInput(f"no requirement {unknown[0]!r} in this program", details={"field": "hidden"})
    credential.hidden_results = chosen
    session.flush()
    return credential


def document_json(credential: IssuedCredential) -> str:
    if credential.document is None:
        raise Conflict("the credential is still being signed; try again in a moment")
    return json.dumps(credential.document, indent=2, ensure_ascii=False)


# ---------------------------------------------------------------- what the public page shows


@dataclass(frozen=True)
class ShownResult:
    slug: str
    name: str
    score: str
    max_score: str
    evidence: tuple[tuple[str, str], ...]
    graded_by: str | None


@dataclass(frozen=True)
class PublicView:
    """A credential as anyone holding its link sees it: read off the signed document, not the rows."""

    id: str
    url: str
    status: str
    revocation_reason: str
    name: str
    description: str
    criteria: str
    issuer_name: str
    issuer_id: str
    valid_from: str
    valid_until: str | None
    results: tuple[ShownResult, ...]
    hidden: int


def _facts(narrative: str) -> tuple[tuple[str, str], tuple[tuple[str, str], ...]]:
    """The evidence narrative's `- label: `value`` lines back as pairs; `graded by` apart."""
    graded_by = ("graded by", "")
    facts = []
    for line in narrative.splitlines():
        label, _, value = line.removeprefix("- ").partition(": ")
        if label == "graded by":
            graded_by = (label, value)
        elif value:
            facts.append((label, value.strip("`")))
    return graded_by, tuple(facts)


def public_view(credential: IssuedCredential, identity: IssuerIdentity) -> PublicView:
    document = credential.document
    if document is None:
        raise Conflict("the credential is still being signed; try again in a moment")
    subject = document["credentialSubject"]
    achievement = subject["achievement"]
    descriptions = {d["id"]: d for d in achievement.get("resultDescription", [])}
    evidence = {e.get("id", "").rpartition("#evidence-")[2]: e for e in document.get("evidence", [])}
    shown = []
    hidden = 0
    for result in subject.get("result", []):
        description = descriptions.get(result.get("resultDescription"), {})
        if description.get("resultType") != "RawScore":
            continue
        slug = str(result["resultDescription"]).rpartition("#requirement-")[2]
        if slug in credential.hidden_results:
            hidden += 1
            continue
        graded_by, facts = _facts(evidence.get(slug, {}).get("narrative", ""))
        shown.append(
            ShownResult(
                slug=slug,
                name=description.get("name", slug),
                score=str(result.get("value", "")),
                max_score=str(description.get("valueMax", "")),
                evidence=facts,
                graded_by=graded_by[1] or None,
            )
        )
    issuer = document["issuer"]
    return PublicView(
        id=credential.id,
        url=identity.public_url(credential),
        status=credential.status,
        revocation_reason=credential.revocation_reason,
        name=achievement["name"],
        description=achievement.get("description", ""),
        criteria=achievement.get("criteria", {}).get("narrative", ""),
        issuer_name=issuer.get("name", "") if isinstance(issuer, dict) else "",
        issuer_id=issuer["id"] if isinstance(issuer, dict) else str(issuer),
        valid_from=document["validFrom"],
        valid_until=document.get("validUntil"),
        results=tuple(shown),
        hidden=hidden,
    )
