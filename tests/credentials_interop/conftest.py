"""Fixtures of the interoperability tests: both issuers once per module, and a credential each signs."""

from __future__ import annotations

import pytest

from grader.credentials.issuing import SignedCredential
from tests.credentials_interop.issuers import PublishingIssuer, make_issuer


@pytest.fixture(scope="module")
def issuers() -> dict[str, PublishingIssuer]:
    return {kind: make_issuer(kind) for kind in ("did:web", "did:key")}


@pytest.fixture(params=["did:web", "did:key"])
def issuer(request: pytest.FixtureRequest, issuers: dict[str, PublishingIssuer]) -> PublishingIssuer:
    return issuers[request.param]


@pytest.fixture
def signed(issuer: PublishingIssuer) -> SignedCredential:
    return issuer.sign(issuer.credential())
