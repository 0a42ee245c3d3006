"""The OpenBadgeCredential document: what a reader of the credential finds in it, in OB 3.0 terms."""

from __future__ import annotations

import copy
import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

import grader.credentials
from grader.credentials.document import identity_hash, identity_matches
from grader.credentials.errors import ContextNotShipped, UnsafeJsonLd
from grader.credentials.linked_data import SHIPPED_CONTEXTS, load_document, safe_expand
from tests.unit.credentials.sample_award import (
    ISSUED_AT,
    LEARNER_EMAIL,
    REVOCATION_LIST,
    SUSPENSION_LIST,
    IssuerWorld,
    make_credential,
)


def test_the_credential_is_an_open_badge_with_its_issuer_and_achievement(world: IssuerWorld) -> None:
    credential = make_credential(world)
    assert credential["@context"] == [
        "https://www.w3.org/ns/credentials/v2",
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
    ]
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert credential["issuer"]["id"] == world.did and credential["issuer"]["type"] == ["Profile"]
    assert credential["issuer"]["email"] == "registrar@example.org"
    assert credential["validFrom"] == "2026-12-01T09:30:00Z"
    achievement = credential["credentialSubject"]["achievement"]
    assert achievement["name"] == "Python developer micro-degree"
    assert achievement["criteria"]["narrative"].startswith("Pass the Python basics quiz")
    assert achievement["alignment"][0]["targetName"] == "Software testing"
    assert achievement["image"]["type"] == "Image"


def test_the_learner_is_a_salted_hash_of_the_email_that_the_email_matches(world: IssuerWorld) -> None:
    identity = make_credential(world)["credentialSubject"]["identifier"][0]
    assert identity["type"] == "IdentityObject" and identity["hashed"] is True
    assert identity["identityType"] == "emailAddress"
    assert LEARNER_EMAIL not in str(make_credential(world))
    assert identity["identityHash"].startswith("sha256$")
    assert identity_matches(identity, "ada.lovelace@example.org ")
    assert not identity_matches(identity, "grace.hopper@example.org")
    assert identity_hash(LEARNER_EMAIL, "another salt") != identity["identityHash"]


def test_each_requirement_has_its_score_pass_mark_and_rubric_levels(world: IssuerWorld) -> None:
    credential = make_credential(world)
    descriptions = {
        item["name"]: item for item in credential["credentialSubject"]["achievement"]["resultDescription"]
    }
    quiz = descriptions["Python basics quiz"]
    assert (quiz["resultType"], quiz["valueMax"], quiz["requiredValue"]) == ("RawScore", "10", "7")
    design = descriptions["HTTP toolkit repository: Design"]
    assert design["resultType"] == "RubricCriterionLevel"
    assert [level["name"] for level in design["rubricCriterionLevel"]] == ["Clear", "Tangled"]
    results = credential["credentialSubject"]["result"]
    by_description = {result["resultDescription"]: result for result in results}
    assert by_description[quiz["id"]]["value"] == "8.5"
    assert by_description[design["id"]]["achievedLevel"] == design["rubricCriterionLevel"][0]["id"]


def test_the_evidence_names_what_was_graded_and_how(world: IssuerWorld) -> None:
    evidence = make_credential(world)["evidence"][0]
    assert evidence["type"] == ["Evidence"]
    assert "- commit: `9f2c1e0b7d4a8c3e5f6a7b8c9d0e1f2a3b4c5d6e`" in evidence["narrative"]
    assert "- hidden tests: `sha256:" in evidence["narrative"]
    assert "two reviewers" in evidence["narrative"]


def test_the_status_entries_point_at_the_revocation_and_suspension_lists(world: IssuerWorld) -> None:
    entries = make_credential(world, status_index=42)["credentialStatus"]
    assert [(entry["statusPurpose"], entry["statusListCredential"]) for entry in entries] == [
        ("revocation", REVOCATION_LIST),
        ("suspension", SUSPENSION_LIST),
    ]
    assert all(
        entry["statusListIndex"] == "42" and entry["type"] == "BitstringStatusListEntry" for entry in entries
    )


def test_valid_until_is_written_only_when_given_and_must_follow_valid_from(world: IssuerWorld) -> None:
    assert "validUntil" not in make_credential(world)
    ends = make_credential(world, valid_until=ISSUED_AT + timedelta(days=365))
    assert ends["validUntil"] == "2027-12-01T09:30:00Z"
    with pytest.raises(ValueError, match="after validFrom"):
        make_credential(world, valid_until=ISSUED_AT)


@pytest.mark.parametrize(
    ("edit", "term", "path"),
    [
        (lambda c: c["credentialSubject"].__setitem__("grade", "A"), "grade", "$.credentialSubject.grade"),
        (lambda c: c["evidence"][0].__setitem__("commitSha", "9f2c"), "commitSha", "$.evidence[0].commitSha"),
        (lambda c: c.__setitem__("type", ["VerifiableCredential", "Diploma"]), "Diploma", "$.type[1]"),
        (lambda c: c.__setitem__("id", "credentials/7"), "credentials/7", "$.id"),
    ],
)
def test_safe_mode_names_any_term_the_contexts_do_not_define(
    world: IssuerWorld, edit: object, term: str, path: str
) -> None:
    credential = copy.deepcopy(make_credential(world))
    edit(credential)  # type: ignore[operator]
    with pytest.raises(UnsafeJsonLd) as raised:
        safe_expand(credential)
    assert raised.value.term == term
    assert raised.value.where == path
    assert term in raised.value.message


def test_contexts_come_only_from_the_package_and_any_other_url_is_refused() -> None:
    assert load_document("https://www.w3.org/ns/credentials/v2")["document"]["@context"]["@protected"] is True
    with pytest.raises(ContextNotShipped, match="never fetched"):
        load_document("https://contexts.example.org/extra.json")


def test_every_shipped_context_is_the_file_its_readme_lists() -> None:
    contexts = Path(grader.credentials.__file__).parent / "contexts"
    readme = (contexts / "README.md").read_text()
    listed = dict(line.split()[::-1] for line in readme.split("```")[1].strip().splitlines())
    shipped = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in contexts.glob("*.jsonld")}
    assert shipped == listed
    assert set(SHIPPED_CONTEXTS.values()) == set(shipped)
