"""A worker composition root for tests: the real worker app, whose credential signing takes its time.

`celery -A tests.support.slow_signing_worker worker` touches `<GRADER_DATA_DIR>/signing-<credential id>`
when it starts signing and then holds for GRADER_TEST_SIGN_DELAY seconds, so a test can kill it mid-issue.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

from grader.credentials.issuing import SignedCredential, sign_both
from grader.credentials.keys import KeySet
from grader.credentials.linked_data import JsonObject
from grader.services import credentials
from workers.main import app

__all__ = ["app"]


def _slow_sign(
    credential: JsonObject, key_set: KeySet, controller: str, created: datetime
) -> SignedCredential:
    marker_dir = Path(os.environ["GRADER_DATA_DIR"])
    identifier = str(credential["id"]).removeprefix("urn:uuid:")
    (marker_dir / f"signing-{identifier}").touch()
    time.sleep(float(os.environ.get("GRADER_TEST_SIGN_DELAY", "5")))
    return sign_both(credential, key_set, controller, created)


credentials.sign_both = _slow_sign  # type: ignore[assignment]
