"""Fixtures of the credential tests: an issuer with its key set per module, a credential signed both ways."""

from __future__ import annotations

import pytest

from grader.credentials.issuing import SignedCredential, sign_both
from tests.unit.credentials.sample_award import ISSUED_AT, IssuerWorld, make_credential, make_world


@pytest.fixture(scope="module")
def world() -> IssuerWorld:
    return make_world()


@pytest.fixture(scope="module")
def signed(world: IssuerWorld) -> SignedCredential:
    return sign_both(make_credential(world), world.keys, world.did, ISSUED_AT)
