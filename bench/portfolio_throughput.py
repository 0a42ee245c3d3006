"""Portfolio upload and check throughput: a portfolio of 10 files totalling 20 MB, on both stores.

Each round fills a fresh draft file by file (every file checked by content and stored), hands it in,
then runs the worker's checks on it (each file read back from the store and checked again), on the
local folder and on a real SeaweedFS S3 server on loopback. Prints per-phase times (p50 and max over
the rounds) and the throughput in MB/s.

    .venv/bin/python bench/portfolio_throughput.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader.catalog.loader import read_catalog
from grader.config import Settings
from grader.db import make_engine, make_session_factory, session_scope
from grader.interfaces import RecordingQueue
from grader.kinds.base import SubmissionRequest
from grader.kinds.portfolio import PortfolioGrader
from grader.migrate import upgrade
from grader.models import User
from grader.services import accounts, portfolios, submissions
from grader.services.catalog import load_catalog
from grader.services.grading import load_job
from grader.storage import file_store
from tests.storage.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedServer
from tests.support.catalogs import write_catalog

MB = 1024 * 1024
BUCKET = "bench-portfolios"
RUBRIC = """\
id: bench-review
title: Bench review
pass_mark: 0.5
criteria:
  - id: checks
    title: Checks
    auto: {kind: tests_passed, tests: ["checks/*"]}
    max_points: 2
  - id: evidence
    title: Evidence
    manual: true
    levels:
      - {label: missing, points: 0}
      - {label: shown, points: 4}
"""
PORTFOLIO = """\
slug: bench-portfolio
kind: portfolio
title: Bench portfolio
description: Ten files.
rubric: bench-review
artifacts:
  - id: images
    title: Images
    types: [png, jpeg]
    max_mb: 5
    max_files: 4
  - id: archives
    title: Archives
    types: [zip]
    max_mb: 5
    max_files: 3
  - id: notes
    title: Notes
    types: [text, markdown]
    max_mb: 5
    max_files: 3
"""
PROGRAM = """\
slug: bench-program
title: Bench program
description: One portfolio.
credential:
  name: Bench credential
  description: A portfolio.
  criteria: Hand one in.
requirements:
  - assessment: bench-portfolio
"""


def sample_files(round_no: int = 0) -> list[tuple[str, str, bytes]]:
    """Ten files, 20 MB in all: noisy PNGs (they do not compress), stored ZIPs and plain text."""
    files: list[tuple[str, str, bytes]] = []
    for index in range(4):
        image = Image.frombytes("RGB", (800, 800), os.urandom(800 * 800 * 3))
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=1)
        files.append(("images", f"screen-{index}.png", out.getvalue()))
    for index in range(3):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for member in range(8):
                archive.writestr(f"sheet-{member}.csv", os.urandom(256 * 1024).hex()[: 256 * 1024])
        files.append(("archives", f"model-{index}.zip", out.getvalue()))
    used = sum(len(data) for _, _, data in files)
    line = f"Round {round_no}: demand for item A rose by twelve percent in the third quarter.\n"
    each = max(1, (20 * MB - used) // 3)
    for index in range(3):
        files.append(("notes", f"notes-{index}.md", (line * (each // len(line) + 1))[:each].encode()))
    return files


@contextmanager
def store_settings(kind: str) -> Iterator[Settings]:
    with tempfile.TemporaryDirectory(prefix="bench-portfolio-") as scratch:
        yield from _settings_in(kind, Path(scratch))


def _settings_in(kind: str, root: Path) -> Iterator[Settings]:
    settings = Settings(
        data_dir=root / "var", secret_key="bench", catalog_path=root / "catalog", submissions_per_hour=1000
    )
    if kind == "local":
        yield settings
        return
    server = SeaweedServer(root / "seaweedfs")
    server.start()
    try:
        server.client().create_bucket(Bucket=BUCKET, ACL="private")
        yield settings.with_overrides(
            store="s3",
            s3_endpoint=server.endpoint,
            s3_bucket=BUCKET,
            s3_access_key_id=ACCESS_KEY,
            s3_secret_access_key=SECRET_KEY,
        )
    finally:
        server.stop()


def prepare(settings: Settings) -> sessionmaker[Session]:
    engine = make_engine(settings)
    upgrade(engine)
    factory = make_session_factory(engine)
    catalog = write_catalog(
        settings.catalog_path,
        {
            "rubrics/bench-review.yaml": RUBRIC,
            "assessments/bench-portfolio.yaml": PORTFOLIO,
            "programs/bench-program.yaml": PROGRAM,
        },
    )
    with session_scope(factory) as session:
        load_catalog(session, read_catalog(catalog))
    return factory


def one_round(
    settings: Settings, factory: sessionmaker[Session], round_no: int
) -> tuple[float, float, float]:
    """Upload, hand-in and check times of one learner's portfolio (files of its own, never stored before)."""
    store, queue = file_store(settings), RecordingQueue()
    with session_scope(factory) as session:
        user = accounts.create_user(
            session, email=f"bench{round_no}@example.org", name="Bench", password="bench-password-1"
        )
        accounts.enroll(session, user.id, "bench-program")
        user_id = user.id
    marked = sample_files(round_no)
    started = time.perf_counter()
    with session_scope(factory) as session:
        user = session.get(User, user_id)
        assert user is not None
        for slot, name, data in marked:
            portfolios.add_file(session, store, user, "bench-portfolio", slot, name, data)
        draft_id = portfolios.draft_view(session, user, "bench-portfolio").draft_id
    uploaded = time.perf_counter()
    with session_scope(factory) as session:
        user = session.get(User, user_id)
        assert user is not None
        submissions.submit(
            session, queue, settings, user, SubmissionRequest(assessment="bench-portfolio", draft_id=draft_id)
        )
    handed_in = time.perf_counter()
    run_id, _ = queue.sent[0]
    with session_scope(factory) as session:
        job = load_job(session, run_id)
    grade = PortfolioGrader(settings).grade(job)
    checked = time.perf_counter()
    failed = [c for c in grade.feedback["checks"] if not c["passed"]]
    if failed:
        raise SystemExit(f"a check failed in the bench: {failed}")
    return uploaded - started, handed_in - uploaded, checked - handed_in


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    files = sample_files()
    total = sum(len(data) for _, _, data in files)
    print(f"portfolio: {len(files)} files, {total / MB:.1f} MB; {args.rounds} rounds per store")
    for kind in ("local", "s3"):
        with store_settings(kind) as settings:
            factory = prepare(settings)
            one_round(settings, factory, 0)  # warm-up: imports, first connections
            rounds = [one_round(settings, factory, n) for n in range(1, args.rounds + 1)]
        for phase, times in zip(("upload", "hand-in", "checks"), zip(*rounds, strict=True), strict=True):
            p50 = statistics.median(times)
            print(
                f"{kind:5} {phase:8} p50 {p50 * 1000:7.1f} ms  max {max(times) * 1000:7.1f} ms"
                + (f"  {total / MB / p50:6.1f} MB/s" if phase != "hand-in" else "")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
