"""A sample issuer and award for the credential tests: what the service would hand the library.

RSA keys are 2048 bits here (the minimum RS256 accepts): generating a 3072-bit key takes about a second,
and the tests are about what is signed, not about key size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from grader.credentials import (
    Achievement,
    Alignment,
    CriterionResult,
    EvidenceItem,
    Image,
    Issuer,
    KeySet,
    Recipient,
    RequirementResult,
    RubricLevel,
    StatusEntry,
    StatusPurpose,
    TrustedKeys,
    build_credential,
    did_document,
    did_web,
)

ISSUED_AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
A_DAY_LATER = ISSUED_AT + timedelta(days=1)
BASE_URL = "https://grader.example.org"
LEARNER_EMAIL = "Ada.Lovelace@Example.org"
REVOCATION_LIST = f"{BASE_URL}/credentials/status/revocation"
SUSPENSION_LIST = f"{BASE_URL}/credentials/status/suspension"


@dataclass(frozen=True)
class IssuerWorld:
    did: str
    keys: KeySet
    issuer: Issuer

    def trusted(self) -> TrustedKeys:
        """What a third party trusts: the published DID document."""
        return TrustedKeys.from_document(did_document(self.did, self.keys.public_keys()))


def make_world() -> IssuerWorld:
    did = did_web(BASE_URL)
    issuer = Issuer(
        id=did,
        name="Example Academy",
        url=BASE_URL,
        email="registrar@example.org",
        image=Image(f"{BASE_URL}/static/issuer.png", "Example Academy"),
    )
    return IssuerWorld(did, KeySet.create(ISSUED_AT - timedelta(days=30), rsa_bits=2048), issuer)


REQUIREMENTS = (
    RequirementResult("python-basics-quiz", "Python basics quiz", score=8.5, max_score=10, pass_mark=0.7),
    RequirementResult(
        "http-toolkit",
        "HTTP toolkit repository",
        score=17.5,
        max_score=20,
        pass_mark=0.6,
        criteria=(
            CriterionResult(
                "tests",
                "Hidden tests",
                (RubricLevel("all", "All pass", points=10), RubricLevel("some", "Some pass", points=5)),
                achieved_level="all",
            ),
            CriterionResult(
                "design",
                "Design",
                (
                    RubricLevel("clear", "Clear", "Small functions with one job", 10),
                    RubricLevel("tangled", "Tangled", points=2),
                ),
                achieved_level="clear",
            ),
        ),
    ),
)

EVIDENCE = (
    EvidenceItem(
        "HTTP toolkit repository",
        description="The graded submission and what graded it",
        facts=(
            ("commit", "9f2c1e0b7d4a8c3e5f6a7b8c9d0e1f2a3b4c5d6e"),
            ("receipt sha256", "3b" * 32),
            ("assessment version", "4"),
            ("rubric version", "2"),
            ("grading image", "sha256:" + "7e" * 32),
            ("hidden tests", "sha256:" + "a1" * 32),
        ),
        graded_by="automatic tests, then two reviewers (double review; they agreed on every criterion)",
        genre="Repository",
    ),
)


def make_credential(
    world: IssuerWorld,
    *,
    email: str = LEARNER_EMAIL,
    valid_from: datetime = ISSUED_AT,
    valid_until: datetime | None = None,
    status_index: int | None = 42,
    requirements: tuple[RequirementResult, ...] = REQUIREMENTS,
) -> dict[str, Any]:
    status = (
        (
            StatusEntry(REVOCATION_LIST, status_index, StatusPurpose.REVOCATION),
            StatusEntry(SUSPENSION_LIST, status_index, StatusPurpose.SUSPENSION),
        )
        if status_index is not None
        else ()
    )
    return build_credential(
        credential_id=f"{BASE_URL}/credentials/0c9d6f4e-2b1a-4c5d-8e7f-123456789abc",
        issuer=world.issuer,
        achievement=Achievement(
            id=f"{BASE_URL}/programs/python-developer",
            name="Python developer micro-degree",
            description="Writes, tests and ships small Python services.",
            criteria_narrative="Pass the Python basics quiz and the HTTP toolkit repository assessment.",
            image=Image(f"{BASE_URL}/static/badges/python-developer.png"),
            alignments=(
                Alignment(
                    "Software testing", "https://esco.example.org/skills/testing", target_framework="ESCO"
                ),
            ),
        ),
        recipient=Recipient(email, salt="b5e2d7f0c1a94e3f"),
        valid_from=valid_from,
        valid_until=valid_until,
        requirements=requirements,
        evidence=EVIDENCE,
        status=status,
    )
