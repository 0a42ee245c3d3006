"""Credential signing speed: credentials issued per second in each proof format, and verification time.

One issuer (an Ed25519 key and an RSA key of the default 3,072 bits), one credential of a program with two
requirements (one with two rubric criteria), evidence and two status entries: the size of what the service
issues. For each format it times, in this one process:

  * issue: build the OpenBadgeCredential (with its safe-mode expansion) and sign it, N times;
  * verify: the whole `verify()` (structure and safe mode, proof, dates, status against both lists), N times.

Prints credentials per second for issuing and p50/p95 for verifying, per format, and both formats together
(what issuing one award costs: the builder once, both proofs).

    .venv/bin/python bench/credential_signing.py [--count 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from grader.credentials import (
    Achievement,
    CriterionResult,
    EvidenceItem,
    Issuer,
    KeyAlgorithm,
    KeySet,
    Recipient,
    RequirementResult,
    RubricLevel,
    StatusEntry,
    StatusList,
    StatusPurpose,
    TrustedKeys,
    build_credential,
    build_status_list_credential,
    data_integrity,
    did_document,
    did_web,
    vc_jwt,
    verify,
)
from grader.credentials.did import verification_method_id
from grader.credentials.issuing import sign_both

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BASE = "https://grader.example.org"


def credential(did: str, number: int) -> dict[str, Any]:
    return build_credential(
        credential_id=f"{BASE}/credentials/{number}",
        issuer=Issuer(did, "Example Academy", BASE, "registrar@example.org"),
        achievement=Achievement(
            f"{BASE}/programs/python-developer",
            "Python developer micro-degree",
            "Writes, tests and ships small Python services.",
            "Pass the quiz and the repository assessment.",
        ),
        recipient=Recipient(f"learner{number}@example.org"),
        valid_from=NOW,
        requirements=(
            RequirementResult("quiz", "Python basics quiz", 8.5, 10, 0.7),
            RequirementResult(
                "repository",
                "HTTP toolkit repository",
                17.5,
                20,
                0.6,
                criteria=tuple(
                    CriterionResult(
                        slug,
                        slug.title(),
                        (RubricLevel("good", "Good", points=10), RubricLevel("poor", "Poor")),
                        "good",
                    )
                    for slug in ("tests", "design")
                ),
            ),
        ),
        evidence=(
            EvidenceItem(
                "HTTP toolkit repository", facts=(("commit", "9f2c" * 10), ("receipt sha256", "3b" * 32))
            ),
        ),
        status=(
            StatusEntry(f"{BASE}/status/revocation", number, StatusPurpose.REVOCATION),
            StatusEntry(f"{BASE}/status/suspension", number, StatusPurpose.SUSPENSION),
        ),
    )


def timed(count: int, action: Callable[[int], object]) -> list[float]:
    durations = []
    for number in range(count):
        started = time.perf_counter()
        action(number)
        durations.append(time.perf_counter() - started)
    return durations


def percentile(durations: list[float], share: float) -> float:
    ordered = sorted(durations)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    count = parser.parse_args().count

    keys = KeySet.create(NOW - timedelta(days=1))
    did = did_web(BASE)
    trusted = TrustedKeys.from_document(did_document(did, keys.public_keys()))
    ed25519_key, rsa_key = keys.current(KeyAlgorithm.ED25519), keys.current(KeyAlgorithm.RS256)
    ed25519_method = verification_method_id(did, ed25519_key.public_key())
    rsa_method = verification_method_id(did, rsa_key.public_key())
    lists = [
        data_integrity.sign(
            build_status_list_credential(
                list_url=f"{BASE}/status/{purpose}",
                issuer_id=did,
                purpose=purpose,
                status_list=StatusList(),
                valid_from=NOW,
            ),
            ed25519_key,
            ed25519_method,
            NOW,
        )
        for purpose in StatusPurpose
    ]
    later = NOW + timedelta(days=1)
    # Contexts loaded and resolved, code paths warm, as in a running worker.
    for number in range(10):
        warm = sign_both(credential(did, number), keys, did, NOW)
        verify(warm.json_ld, trusted, status_list=lists, now=later)
        verify(warm.jwt, trusted, status_list=lists, now=later)

    issue_ld = timed(
        count, lambda n: data_integrity.sign(credential(did, n), ed25519_key, ed25519_method, NOW)
    )
    issue_jwt = timed(count, lambda n: vc_jwt.sign(credential(did, n), rsa_key, kid=rsa_method))
    issue_both = timed(count, lambda n: sign_both(credential(did, n), keys, did, NOW))
    sample = sign_both(credential(did, 1), keys, did, NOW)
    verify_ld = timed(count, lambda n: verify(sample.json_ld, trusted, status_list=lists, now=later))
    verify_jwt = timed(count, lambda n: verify(sample.jwt, trusted, status_list=lists, now=later))
    assert verify(sample.json_ld, trusted, status_list=lists, now=later).verified
    assert verify(sample.jwt, trusted, status_list=lists, now=later).verified

    print(f"credential signing, {count} credentials per figure, RSA {rsa_key.private_key.key_size} bits")
    for label, durations in (
        ("issue, Data Integrity eddsa-rdfc-2022", issue_ld),
        ("issue, VC-JWT RS256", issue_jwt),
        ("issue, both formats (one award)", issue_both),
    ):
        rate, p50 = count / sum(durations), statistics.median(durations) * 1000
        print(f"  {label:40} {rate:7.1f} credentials/s   p50 {p50:6.1f} ms")
    for label, durations in (("verify, Data Integrity", verify_ld), ("verify, VC-JWT", verify_jwt)):
        print(
            f"  {label:40} p50 {statistics.median(durations) * 1000:6.1f} ms   "
            f"p95 {percentile(durations, 0.95) * 1000:6.1f} ms   (structure, proof, dates, both status lists)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
