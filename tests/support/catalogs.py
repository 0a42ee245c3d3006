"""Small, exact catalogs for tests, written to a folder so they go through the real loader."""

from __future__ import annotations

from pathlib import Path

BASICS_QUIZ = """\
slug: basics
kind: quiz
title: HTTP basics
pass_mark: 0.75
shuffle: false
feedback: after_passing
attempts: {max: 3, cooldown_seconds: 0}
pools:
  - id: main
    questions:
      - id: status-created
        type: single_choice
        prompt: Which status code answers a successful POST that created a resource?
        choices:
          - {id: a, text: "200 OK"}
          - {id: b, text: "201 Created"}
          - {id: c, text: "204 No Content"}
        answer: b
        explanation: 201 tells the client a new resource exists, usually with a Location header.
      - id: safe-methods
        type: multiple_choice
        prompt: Which methods are safe?
        choices:
          - {id: get, text: GET}
          - {id: head, text: HEAD}
          - {id: post, text: POST}
          - {id: delete, text: DELETE}
        answers: [get, head]
        partial_credit: right_minus_wrong
      - id: idempotent-put
        type: true_false
        prompt: PUT is idempotent.
        answer: true
      - id: port
        type: numeric
        prompt: Default port of HTTPS?
        answer: 443
        tolerance: 0
      - id: header
        type: short_text
        prompt: Which response header names the media type of the body?
        accept: [Content-Type]
        patterns: ["content[- ]type:?"]
        match: normalised
"""

TIMED_QUIZ = """\
slug: timed
kind: quiz
title: Timed pool quiz
pass_mark: 0.5
time_limit_minutes: 5
feedback: after_last_attempt
attempts: {max: 2, cooldown_seconds: 60}
pools:
  - id: pool
    draw: 2
    questions:
      - {id: t1, type: true_false, prompt: "The sky is green.", answer: false}
      - {id: t2, type: true_false, prompt: "2 + 2 = 4.", answer: true}
      - {id: t3, type: true_false, prompt: "HTTP is stateless.", answer: true}
"""

PROGRAM = """\
slug: test-program
title: Test program
description: Two quizzes.
credential:
  name: Test credential
  description: Shows the learner passed both quizzes.
  criteria: Pass both quizzes.
requirements:
  - assessment: basics
  - assessment: timed
"""

OTHER_PROGRAM = """\
slug: other-program
title: Other program
description: Only the basics quiz.
credential: {name: Other, description: Other credential., criteria: Pass the quiz.}
requirements:
  - assessment: basics
"""


def write_catalog(root: Path, files: dict[str, str] | None = None) -> Path:
    """Write the standard test catalog (or `files`, relative path -> text) under `root`."""
    files = (
        files
        if files is not None
        else {
            "assessments/basics.yaml": BASICS_QUIZ,
            "assessments/timed.yaml": TIMED_QUIZ,
            "programs/test-program.yaml": PROGRAM,
            "programs/other-program.yaml": OTHER_PROGRAM,
        }
    )
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


BASICS_ANSWERS = {
    "status-created": "b",
    "safe-methods": ["get", "head"],
    "idempotent-put": True,
    "port": 443,
    "header": "content-type",
}
