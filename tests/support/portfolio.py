"""A small portfolio for the web tests: two file slots (images, up to two; an optional PDF), two link slots
(one pinned to github.com, one optional) and a statement, in a program of its own; and files to fill it."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from pypdf import PdfWriter

from tests.support.catalogs import write_catalog

SLUG = "showcase"
PROGRAM_SLUG = "portfolio-program"

RUBRIC = """\
id: showcase-review
title: Showcase review
pass_mark: 0.5
criteria:
  - id: complete
    title: Complete and well formed
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
slug: showcase
kind: portfolio
title: Showcase
description: Show the **service** you built.
rubric: showcase-review
attempts: {max: 3, cooldown_seconds: 0}
artifacts:
  - id: screenshot
    title: Screenshot
    description: The service answering a request.
    types: [png, jpeg]
    max_mb: 1
    max_files: 2
  - id: report
    title: Design report
    types: [pdf]
    max_mb: 0.5
    required: false
links:
  - id: repo
    title: Repository
    hosts: [github.com]
  - id: demo
    title: Live demo
    required: false
statements:
  - id: reflection
    title: Reflection
    prompt: What would you test first, and why?
    min_words: 3
    max_words: 40
"""

PROGRAM = """\
slug: portfolio-program
title: Portfolio program
description: One portfolio.
credential:
  name: Portfolio credential
  description: Shows a portfolio.
  criteria: Hand in a portfolio.
requirements:
  - assessment: showcase
"""

FILES = {
    "rubrics/showcase-review.yaml": RUBRIC,
    "assessments/showcase.yaml": PORTFOLIO,
    "programs/portfolio-program.yaml": PROGRAM,
}


def write_portfolio_catalog(root: Path) -> Path:
    """Add the portfolio, its rubric and its program to the catalog folder at `root`."""
    return write_catalog(root, FILES)


def png(width: int = 8, height: int = 6) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def pdf(pages: int = 1) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


REFLECTION = "I would test the error answers first, because clients depend on them."
