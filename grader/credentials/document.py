"""The Open Badges 3.0 `OpenBadgeCredential` document, built from plain dataclasses.

The service fills these dataclasses from an award (program, requirements, results, evidence); this module
knows nothing of the database. Every term written here is defined by the VC 2.0 or OB 3.0.3 contexts,
which `build_credential` proves by expanding its output in JSON-LD safe mode before returning it.

How the pieces map onto OB 3.0:
- the program is the `Achievement` (criteria in words, alignment to skills, image, achievementType);
- the learner is `credentialSubject.identifier`: an `IdentityObject` whose `identityHash` is
  `sha256$` + hex(SHA-256(normalised email + salt)), `hashed: true`, with the salt, which the learner
  keeps to prove the credential is theirs;
- each requirement is a `ResultDescription` on the achievement (score range and pass mark, plus one per
  rubric criterion with its levels) and a `Result` on the subject (the score, the level achieved, the
  status);
- each requirement's evidence is an `Evidence` entry whose narrative lists what was graded (commit, receipt
  and artifact hashes, versions, image and test-bundle digests) and how (tests, reviewers as roles).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from grader.credentials.dates import format_datetime
from grader.credentials.linked_data import CREDENTIALS_V2, OPEN_BADGES_V3, JsonObject, safe_expand

CREDENTIAL_CONTEXT = [CREDENTIALS_V2, OPEN_BADGES_V3]
IDENTITY_HASH_PREFIX = "sha256$"


class ResultStatus(StrEnum):
    """OB 3.0's ResultStatusType values that a graded requirement can have."""

    COMPLETED = "Completed"
    FAILED = "Failed"
    IN_PROGRESS = "InProgress"
    ON_HOLD = "OnHold"
    PROVISIONAL = "Provisional"


@dataclass(frozen=True)
class Image:
    url: str
    caption: str | None = None


@dataclass(frozen=True)
class Issuer:
    """The issuer profile: `id` is the issuer's DID (did:web in production, did:key in the demo)."""

    id: str
    name: str
    url: str
    email: str | None = None
    image: Image | None = None


@dataclass(frozen=True)
class Alignment:
    """A skill or competency the achievement aligns to, as the catalog declares it."""

    target_name: str
    target_url: str
    target_description: str | None = None
    target_framework: str | None = None
    target_code: str | None = None
    target_type: str | None = None


@dataclass(frozen=True)
class Achievement:
    """The program whose credential this is."""

    id: str
    name: str
    description: str
    criteria_narrative: str
    criteria_url: str | None = None
    image: Image | None = None
    alignments: tuple[Alignment, ...] = ()
    achievement_type: str = "MicroCredential"


@dataclass(frozen=True)
class RubricLevel:
    slug: str
    name: str
    description: str | None = None
    points: float | None = None


@dataclass(frozen=True)
class CriterionResult:
    """One rubric criterion of a requirement: its levels and the one the learner achieved."""

    slug: str
    name: str
    levels: tuple[RubricLevel, ...]
    achieved_level: str | None = None


@dataclass(frozen=True)
class RequirementResult:
    """One requirement of the program, graded: score, pass mark, criteria, and how it was graded."""

    slug: str
    name: str
    score: float
    max_score: float
    pass_mark: float
    status: ResultStatus = ResultStatus.COMPLETED
    criteria: tuple[CriterionResult, ...] = ()


@dataclass(frozen=True)
class EvidenceItem:
    """What a requirement's result rests on. `facts` are (label, value) pairs such as ("commit", sha)."""

    name: str
    description: str | None = None
    facts: tuple[tuple[str, str], ...] = ()
    graded_by: str | None = None
    id: str | None = None
    genre: str | None = None
    audience: str | None = None


class StatusPurpose(StrEnum):
    REVOCATION = "revocation"
    SUSPENSION = "suspension"


@dataclass(frozen=True)
class StatusEntry:
    """A credential's place in one Bitstring Status List."""

    list_url: str
    index: int
    purpose: StatusPurpose

    def to_json(self) -> JsonObject:
        return {
            "id": f"{self.list_url}#{self.index}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": str(self.purpose),
            "statusListIndex": str(self.index),
            "statusListCredential": self.list_url,
        }


@dataclass(frozen=True)
class Recipient:
    """The learner: an email, hashed with a salt before it reaches the credential."""

    email: str
    salt: str = field(default_factory=lambda: secrets.token_hex(16))


def normalise_email(email: str) -> str:
    return email.strip().lower()


def identity_hash(email: str, salt: str) -> str:
    digest = hashlib.sha256((normalise_email(email) + salt).encode("utf-8")).hexdigest()
    return IDENTITY_HASH_PREFIX + digest


def identity_matches(identity: JsonObject, email: str) -> bool:
    """Does a hashed `IdentityObject` of a credential name this email? (for an employer holding both)"""
    salt = identity.get("salt")
    return (
        identity.get("hashed") is True
        and isinstance(salt, str)
        and secrets.compare_digest(str(identity.get("identityHash", "")), identity_hash(email, salt))
    )


def _number(value: float) -> str:
    # OB 3.0 writes result values as text; 7.0 and 7 are the same score and read better as "7".
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _image(image: Image) -> JsonObject:
    written: JsonObject = {"id": image.url, "type": "Image"}
    if image.caption:
        written["caption"] = image.caption
    return written


def _alignment(alignment: Alignment) -> JsonObject:
    written: JsonObject = {
        "type": ["Alignment"],
        "targetName": alignment.target_name,
        "targetUrl": alignment.target_url,
    }
    optional = {
        "targetDescription": alignment.target_description,
        "targetFramework": alignment.target_framework,
        "targetCode": alignment.target_code,
        "targetType": alignment.target_type,
    }
    return written | {key: value for key, value in optional.items() if value}


def _profile(issuer: Issuer) -> JsonObject:
    profile: JsonObject = {"id": issuer.id, "type": ["Profile"], "name": issuer.name, "url": issuer.url}
    if issuer.email:
        profile["email"] = issuer.email
    if issuer.image:
        profile["image"] = _image(issuer.image)
    return profile


def _result_descriptions(achievement_id: str, requirement: RequirementResult) -> list[JsonObject]:
    descriptions: list[JsonObject] = [
        {
            "id": f"{achievement_id}#requirement-{requirement.slug}",
            "type": ["ResultDescription"],
            "name": requirement.name,
            "resultType": "RawScore",
            "valueMin": "0",
            "valueMax": _number(requirement.max_score),
            "requiredValue": _number(requirement.pass_mark * requirement.max_score),
        }
    ]
    for criterion in requirement.criteria:
        criterion_id = f"{achievement_id}#requirement-{requirement.slug}-criterion-{criterion.slug}"
        levels = []
        for level in criterion.levels:
            written: JsonObject = {
                "id": f"{criterion_id}-level-{level.slug}",
                "type": ["RubricCriterionLevel"],
                "name": level.name,
            }
            if level.description:
                written["description"] = level.description
            if level.points is not None:
                written["points"] = _number(level.points)
            levels.append(written)
        descriptions.append(
            {
                "id": criterion_id,
                "type": ["ResultDescription"],
                "name": f"{requirement.name}: {criterion.name}",
                "resultType": "RubricCriterionLevel",
                "rubricCriterionLevel": levels,
            }
        )
    return descriptions


def _results(achievement_id: str, requirement: RequirementResult) -> list[JsonObject]:
    requirement_id = f"{achievement_id}#requirement-{requirement.slug}"
    results: list[JsonObject] = [
        {
            "type": ["Result"],
            "resultDescription": requirement_id,
            "value": _number(requirement.score),
            "status": str(requirement.status),
        }
    ]
    for criterion in requirement.criteria:
        if criterion.achieved_level is None:
            continue
        if criterion.achieved_level not in {level.slug for level in criterion.levels}:
            raise ValueError(f"criterion {criterion.slug} has no level {criterion.achieved_level}")
        criterion_id = f"{requirement_id}-criterion-{criterion.slug}"
        results.append(
            {
                "type": ["Result"],
                "resultDescription": criterion_id,
                "achievedLevel": f"{criterion_id}-level-{criterion.achieved_level}",
            }
        )
    return results


def _evidence(item: EvidenceItem) -> JsonObject:
    lines = [f"- {label}: `{value}`" for label, value in item.facts]
    if item.graded_by:
        lines.append(f"- graded by: {item.graded_by}")
    written: JsonObject = {"type": ["Evidence"], "name": item.name}
    optional = {
        "id": item.id,
        "description": item.description,
        "narrative": "\n".join(lines) or None,
        "genre": item.genre,
        "audience": item.audience,
    }
    return written | {key: value for key, value in optional.items() if value}


def build_credential(
    *,
    credential_id: str,
    issuer: Issuer,
    achievement: Achievement,
    recipient: Recipient,
    valid_from: datetime,
    valid_until: datetime | None = None,
    requirements: Sequence[RequirementResult] = (),
    evidence: Sequence[EvidenceItem] = (),
    status: Sequence[StatusEntry] = (),
    subject_id: str | None = None,
) -> JsonObject:
    """An unsigned OpenBadgeCredential; raises `UnsafeJsonLd` if any part of it is not a defined term."""
    if valid_until is not None and valid_until <= valid_from:
        raise ValueError("validUntil must come after validFrom")
    achievement_json: JsonObject = {
        "id": achievement.id,
        "type": ["Achievement"],
        "achievementType": achievement.achievement_type,
        "name": achievement.name,
        "description": achievement.description,
        "criteria": {"narrative": achievement.criteria_narrative},
    }
    if achievement.criteria_url:
        achievement_json["criteria"]["id"] = achievement.criteria_url
    if achievement.image:
        achievement_json["image"] = _image(achievement.image)
    if achievement.alignments:
        achievement_json["alignment"] = [_alignment(alignment) for alignment in achievement.alignments]
    descriptions = [
        item for requirement in requirements for item in _result_descriptions(achievement.id, requirement)
    ]
    if descriptions:
        achievement_json["resultDescription"] = descriptions

    subject: JsonObject = {
        "type": ["AchievementSubject"],
        "identifier": [
            {
                "type": "IdentityObject",
                "identityHash": identity_hash(recipient.email, recipient.salt),
                "identityType": "emailAddress",
                "hashed": True,
                "salt": recipient.salt,
            }
        ],
        "achievement": achievement_json,
    }
    if subject_id:
        subject = {"id": subject_id} | subject
    results = [item for requirement in requirements for item in _results(achievement.id, requirement)]
    if results:
        subject["result"] = results

    credential: JsonObject = {
        "@context": list(CREDENTIAL_CONTEXT),
        "id": credential_id,
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": _profile(issuer),
        "validFrom": format_datetime(valid_from),
    }
    if valid_until is not None:
        credential["validUntil"] = format_datetime(valid_until)
    credential |= {"name": achievement.name, "credentialSubject": subject}
    if evidence:
        credential["evidence"] = [_evidence(item) for item in evidence]
    if status:
        entries = [entry.to_json() for entry in status]
        credential["credentialStatus"] = entries[0] if len(entries) == 1 else entries
    safe_expand(credential)
    return credential
