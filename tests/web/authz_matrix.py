"""The authorisation matrix as a table: each route of the app, the request that reaches its check, and the
status each kind of user gets.

The seven columns of `expect`, in the order of `WHO`:

    anonymous         nobody logged in, no token
    learner           Ada: owns every object the paths point at (enrolled in repo-program, test-program and
                      portfolio-program)
    other_learner     Bob: enrolled in the same programs, owns none of it
    outside_reviewer  Olga: reviews other-program, which shares nothing with Ada's repository hand-ins
    reviewer          Rui: reviews repo-program; wrote the review, holds the claim on the waiting task
    staff             Stella: staff of repo-program (reviews and runs it); holds the regrade task
    admin             an admin

A cell is a status code, or `login`: a page's 302 to the login form (anonymous only; an API's 401 is
written `401` and must carry `WWW-Authenticate`). Any other 302 or 303 must not go to the login form,
except `out`: the 303 to the login form after logging out.

Path parameters and bodies name objects of the world by `{key}` (the test module's `World.ids`):
`waiting` is Ada's repository hand-in waiting for review, `reviewed` the one Rui reviewed (its `design`
criterion has a regrade request, `regrade_task`, which Stella holds), `failed_run` the grading run of a
third hand-in that ended in error, `quiz` her timed quiz result and `attempt` its attempt, `task` the
waiting hand-in's review task, `review` Rui's review, `entry` his comment bank entry, `token` Ada's API
token, `portfolio_item` the file in Ada's draft of the `showcase` portfolio (every required slot filled;
Bob has no draft), `credential` Ada's signed credential of repo-program. Each cell runs on its own copy of
the world; `setup` changes that copy first.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from grader.models import User
from grader.services import review_queue
from tests.support.portfolio import REFLECTION, png

WHO = ("anonymous", "learner", "other_learner", "outside_reviewer", "reviewer", "staff", "admin")
LOGIN = "login"
LOGGED_OUT = "out"

CSV = b"email,name\nnew.learner@example.org,New Learner\n"
STRONG_FORM = {"c-design-level": "strong", "c-style-level": "strong"}
STRONG_JSON = {
    "criteria": [{"criterion": "design", "level": "strong"}, {"criterion": "style", "level": "strong"}]
}
REASON = "The design section explains each step."


def open_task(session: Session, ids: Mapping[str, str]) -> None:
    """Rui gives his claim back: the waiting task is free, for the routes that claim or assign it."""
    reviewer = session.get(User, int(ids["reviewer_id"]))
    assert reviewer is not None
    review_queue.release(session, reviewer, int(ids["task"]))


@dataclass(frozen=True)
class Route:
    method: str
    rule: str
    expect: str
    at: Mapping[str, str] = field(default_factory=dict)
    query: str = ""
    form: Mapping[str, Any] | None = None
    json: Any = None
    files: Mapping[str, tuple[bytes, str]] = field(default_factory=dict)
    setup: Callable[[Session, Mapping[str, str]], None] | None = None

    @property
    def is_api(self) -> bool:
        return self.rule.startswith("/api/")

    @property
    def cells(self) -> dict[str, str]:
        statuses = self.expect.split()
        assert len(statuses) == len(WHO), f"{self.method} {self.rule}: {len(statuses)} cells"
        return dict(zip(WHO, statuses, strict=True))

    def path(self, ids: Mapping[str, str]) -> str:
        def value(match: re.Match[str]) -> str:
            return self.at[match.group(1)].format_map(ids)

        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", value, self.rule)
        return path + (f"?{self.query.format_map(ids)}" if self.query else "")


def _r(method: str, rule: str, expect: str, **kwargs: Any) -> Route:
    return Route(method, rule, expect, **kwargs)


WAITING = {"submission_id": "{waiting}"}
REVIEWED = {"submission_id": "{reviewed}"}
TASK = {"task_id": "{task}"}
REPO_PROGRAM = {"slug": "repo-program"}
REPO = {"slug": "reviewed-repo"}
LEARNER = {"user_id": "{learner_id}"}
ARCHIVE = {"archive": (b"", "app.zip")}  # the test module fills in a real zip
PORTFOLIO = {"slug": "showcase"}
CREDENTIAL = {"credential_id": "{credential}"}

#            anonymous learner other outsider reviewer staff admin
ROUTES: tuple[Route, ...] = (
    # ------------------------------------------------------------ login, logout, the account page
    _r("GET", "/login", "200 200 200 200 200 200 200"),
    _r(
        "POST",
        "/login",
        "302 302 302 302 302 302 302",
        form={"email": "{learner_email}", "password": "correct horse battery"},
    ),
    _r("POST", "/logout", "out out out out out out out"),
    _r("GET", "/account", "login 200 200 200 200 200 200"),
    _r("POST", "/account/tokens", "login 201 201 201 201 201 201", form={"name": "laptop"}),
    _r(
        "POST",
        "/account/tokens/<int:token_id>/revoke",
        "login 303 404 404 404 404 404",
        at={"token_id": "{token}"},
    ),
    _r(
        "POST",
        "/account/password",
        "login 303 303 303 303 303 303",
        form={
            "current_password": "correct horse battery",
            "new_password": "a brand new passphrase",
            "new_password_again": "a brand new passphrase",
        },
    ),
    _r("POST", "/account/logout-everywhere", "login out out out out out out"),
    # ------------------------------------------------------------ learner pages
    # Another learner's objects are not found (404): their ids tell nothing. Reviewers of the program see
    # its hand-ins (queries.get_submission_for); an outsider does not, as 404 too.
    _r("GET", "/", "login 200 200 200 200 200 200"),
    _r("GET", "/programs/<slug>", "login 200 200 403 403 403 403", at=REPO_PROGRAM),
    # Admins may try any assessment without enrolling (submissions._check_enrolled); the program page is
    # a learner's own progress, so there it is 403 for everyone not enrolled, admins too.
    _r("POST", "/assessments/<slug>/attempts", "login 302 302 403 403 403 302", at={"slug": "basics"}),
    _r("GET", "/attempts/<attempt_id>", "login 200 404 404 404 404 404", at={"attempt_id": "{attempt}"}),
    _r("POST", "/attempts/<attempt_id>", "login 200 404 404 404 404 404", at={"attempt_id": "{attempt}"}),
    _r("GET", "/assessments/<slug>/starter.zip", "login 200 200 403 403 403 200", at=REPO),
    _r("GET", "/assessments/<slug>/submit", "login 200 200 403 403 403 200", at=REPO),
    _r("POST", "/assessments/<slug>/submit", "login 302 302 403 403 403 302", at=REPO, files=ARCHIVE),
    # The portfolio page: enrolled learners (and admins, who may try anything) see their own draft.
    _r("GET", "/assessments/<slug>/portfolio", "login 200 200 403 403 403 200", at=PORTFOLIO),
    _r(
        "POST",
        "/assessments/<slug>/portfolio",
        "login 303 303 403 403 403 303",
        at=PORTFOLIO,
        form={"action": "save", "statements.reflection": REFLECTION},
    ),
    _r("GET", "/submissions/<submission_id>", "login 200 404 404 200 200 200", at=WAITING),
    _r("GET", "/submissions/<submission_id>/status.json", "login 200 404 404 200 200 200", at=WAITING),
    _r(
        "POST",
        "/submissions/<submission_id>/regrade-requests",
        "login 302 404 404 404 404 404",
        at=REVIEWED,
        form={"criterion": "style", "reason": REASON},
    ),
    # ------------------------------------------------------------ reviewer pages
    # Learners are refused by role (403). An outsider is refused before learning anything of a task (403,
    # review_queue.require_holder), not told 404: a task id is not a learner's object, and the 403 is the
    # check that stands between them. Rui holds the waiting task's claim, so the program's staff and the
    # admin, who may review it, are told who holds it (409) until it is released (`open_task`).
    _r("GET", "/review", "login 403 403 200 200 200 200"),
    _r("POST", "/review/next", "login 403 403 302 302 302 302"),
    _r("GET", "/review/tasks/<int:task_id>", "login 403 403 403 200 409 409", at=TASK),
    _r(
        "GET",
        "/review/tasks/<int:task_id>/download",
        "login 403 403 403 200 409 409",
        at=TASK,
        query="path=app.py",
    ),
    # A portfolio's pictures, for the task's holder only; the world's task is a repository's: 404.
    _r(
        "GET",
        "/review/tasks/<int:task_id>/picture",
        "login 403 403 403 404 409 409",
        at=TASK,
        query="file=screenshot/1",
    ),
    _r(
        "POST", "/review/tasks/<int:task_id>/claim", "login 403 403 403 302 302 302", at=TASK, setup=open_task
    ),
    # Release asks only "do you hold it?" (review_queue.release): the outsider's 409 says no more than the
    # 403 of the other task routes does (that the task exists), and changes nothing.
    _r("POST", "/review/tasks/<int:task_id>/release", "login 403 403 409 302 409 409", at=TASK),
    _r(
        "POST",
        "/review/tasks/<int:task_id>/assign",
        "login 403 403 403 403 302 302",
        at=TASK,
        form={"reviewer": "{reviewer_id}"},
        setup=open_task,
    ),
    _r(
        "POST",
        "/review/tasks/<int:task_id>/draft",
        "login 403 403 403 302 409 409",
        at=TASK,
        form=STRONG_FORM,
    ),
    _r(
        "POST",
        "/review/tasks/<int:task_id>/submit",
        "login 403 403 403 302 409 409",
        at=TASK,
        form=STRONG_FORM,
    ),
    _r(
        "POST",
        "/review/tasks/<int:task_id>/regrade-answer",
        "login 403 403 403 409 302 409",
        at={"task_id": "{regrade_task}"},
        form={**STRONG_FORM, "reply": "The steps are named; the score stands."},
    ),
    # The regrade task goes to a reviewer other than the first (Rui) and Stella holds it.
    # A review is edited by its author (Rui) or the program's staff; for an outsider it does not exist
    # (reviews.editable_review), so 404 here.
    _r(
        "GET",
        "/review/reviews/<int:review_id>/edit",
        "login 403 403 404 200 200 200",
        at={"review_id": "{review}"},
    ),
    _r(
        "POST",
        "/review/reviews/<int:review_id>/edit",
        "login 403 403 404 302 302 302",
        at={"review_id": "{review}"},
        form={**STRONG_FORM, "reason": "Scored against the wrong level."},
    ),
    _r(
        "GET",
        "/review/comment-bank/<rubric_slug>",
        "login 403 403 403 200 200 200",
        at={"rubric_slug": "reviewed"},
    ),
    _r(
        "POST",
        "/review/comment-bank/<rubric_slug>",
        "login 403 403 403 302 302 302",
        at={"rubric_slug": "reviewed"},
        form={"text": "Say why."},
    ),
    _r(
        "POST",
        "/review/comment-bank/entries/<int:entry_id>",
        "login 403 403 403 302 302 302",
        at={"entry_id": "{entry}"},
        form={"text": "Name every step."},
    ),
    _r(
        "POST",
        "/review/comment-bank/entries/<int:entry_id>/use",
        "login 403 403 403 302 302 302",
        at={"entry_id": "{entry}"},
    ),
    # ------------------------------------------------------------ staff pages
    # Staff of some program or admins only (access.staff_scope): 403 for learners, the outsider and Rui,
    # who reviews but does not run the program. Accounts, roles and the catalog load: admins only.
    _r("GET", "/staff", "login 403 403 403 403 200 200"),
    _r("GET", "/staff/accounts", "login 403 403 403 403 403 200"),
    _r(
        "POST",
        "/staff/accounts",
        "login 403 403 403 403 403 302",
        form={
            "email": "new@example.org",
            "name": "New",
            "role": "learner",
            "password": "a long enough password",
        },
    ),
    _r("GET", "/staff/accounts/<int:user_id>", "login 403 403 403 403 403 200", at=LEARNER),
    _r(
        "POST",
        "/staff/accounts/<int:user_id>/role",
        "login 403 403 403 403 403 302",
        at=LEARNER,
        form={"role": "reviewer"},
    ),
    _r(
        "POST",
        "/staff/accounts/<int:user_id>/active",
        "login 403 403 403 403 403 302",
        at=LEARNER,
        form={"active": "0"},
    ),
    _r("POST", "/staff/accounts/<int:user_id>/tokens/revoke", "login 403 403 403 403 403 302", at=LEARNER),
    _r(
        "POST",
        "/staff/accounts/<int:user_id>/programs",
        "login 403 403 403 403 403 302",
        at={"user_id": "{reviewer_id}"},
        form={"program": "test-program", "role": "reviewer"},
    ),
    _r(
        "POST",
        "/staff/accounts/<int:user_id>/programs/<slug>/remove",
        "login 403 403 403 403 403 302",
        at={"user_id": "{reviewer_id}", "slug": "repo-program"},
    ),
    _r("GET", "/staff/programs/<slug>", "login 403 403 403 403 302 302", at=REPO_PROGRAM),
    _r("GET", "/staff/programs/<slug>/enrolments", "login 403 403 403 403 200 200", at=REPO_PROGRAM),
    _r(
        "POST",
        "/staff/programs/<slug>/enrolments",
        "login 403 403 403 403 200 200",
        at=REPO_PROGRAM,
        form={"email": "new.learner@example.org", "name": "New Learner"},
    ),
    _r(
        "POST",
        "/staff/programs/<slug>/enrolments/import",
        "login 403 403 403 403 200 200",
        at=REPO_PROGRAM,
        files={"file": (CSV, "learners.csv")},
    ),
    _r(
        "POST",
        "/staff/programs/<slug>/enrolments/import/confirm",
        "login 403 403 403 403 200 200",
        at=REPO_PROGRAM,
        form={"file": base64.b64encode(CSV).decode(), "digest": hashlib.sha256(CSV).hexdigest()},
    ),
    _r(
        "POST",
        "/staff/programs/<slug>/team",
        "login 403 403 403 403 302 302",
        at=REPO_PROGRAM,
        form={"email": "{outsider_email}", "role": "reviewer"},
    ),
    _r(
        "POST",
        "/staff/programs/<slug>/team/<int:user_id>/remove",
        "login 403 403 403 403 302 302",
        at={"slug": "repo-program", "user_id": "{reviewer_id}"},
    ),
    _r(
        "POST",
        "/staff/programs/<slug>/learners/<int:user_id>/tokens/revoke",
        "login 403 403 403 403 302 302",
        at={"slug": "repo-program", "user_id": "{learner_id}"},
    ),
    _r("GET", "/staff/programs/<slug>/gradebook", "login 403 403 403 403 200 200", at=REPO_PROGRAM),
    _r("GET", "/staff/catalog", "login 403 403 403 403 200 200"),
    _r("POST", "/staff/catalog/load", "login 403 403 403 403 403 200"),
    _r("GET", "/staff/queues", "login 403 403 403 403 200 200"),
    _r("POST", "/staff/runs/<run_id>/retry", "login 403 403 403 403 302 302", at={"run_id": "{failed_run}"}),
    _r("GET", "/staff/regrade", "login 403 403 403 403 302 302", query="assessment=reviewed-repo"),
    _r("GET", "/staff/assessments/<slug>/regrade", "login 403 403 403 403 200 200", at=REPO),
    _r(
        "POST",
        "/staff/assessments/<slug>/regrade",
        "login 403 403 403 403 200 200",
        at=REPO,
        form={"reason": "The hidden tests were fixed.", "confirm": "yes"},
    ),
    _r("GET", "/staff/agreement", "login 403 403 403 403 200 200"),
    # ------------------------------------------------------------ the learners' API
    _r("GET", "/api/v1/openapi.json", "200 200 200 200 200 200 200"),  # the same public document for all
    # Operations (docs/operations.md): for orchestrators and Prometheus, no login; /metrics asks for a
    # token only when GRADER_METRICS_TOKEN is set (not in this world).
    _r("GET", "/healthz", "200 200 200 200 200 200 200"),
    _r("GET", "/readyz", "200 200 200 200 200 200 200"),
    _r("GET", "/metrics", "200 200 200 200 200 200 200"),
    _r("GET", "/api/v1/me", "401 200 200 200 200 200 200"),
    _r("GET", "/api/v1/assessments/<slug>", "401 200 200 200 200 200 200", at=REPO),
    _r(
        "POST",
        "/api/v1/assessments/<slug>/attempts",
        "401 201 201 403 403 403 201",
        at={"slug": "basics"},
        json={},
    ),
    _r("GET", "/api/v1/programs/<slug>/progress", "401 200 200 403 403 403 403", at=REPO_PROGRAM),
    _r(
        "POST",
        "/api/v1/submissions",
        "401 202 202 403 403 403 202",
        form={"assessment": "reviewed-repo"},
        files=ARCHIVE,
    ),
    _r("GET", "/api/v1/submissions/<submission_id>", "401 200 404 404 200 200 200", at=WAITING),
    # A portfolio draft is its learner's own: Ada's item is not found from anyone else's draft (404),
    # and only her draft is complete, so the others' hand-in is refused for its first empty slot (400).
    _r("GET", "/api/v1/assessments/<slug>/portfolio", "401 200 200 403 403 403 200", at=PORTFOLIO),
    _r(
        "POST",
        "/api/v1/assessments/<slug>/portfolio/files",
        "401 201 201 403 403 403 201",
        at=PORTFOLIO,
        form={"slot": "screenshot"},
        files={"file": (png(9, 9), "second.png")},
    ),
    _r(
        "DELETE",
        "/api/v1/assessments/<slug>/portfolio/items/<int:item_id>",
        "401 204 404 403 403 403 404",
        at={**PORTFOLIO, "item_id": "{portfolio_item}"},
    ),
    _r(
        "PUT",
        "/api/v1/assessments/<slug>/portfolio/links/<slot_id>",
        "401 200 200 403 403 403 200",
        at={**PORTFOLIO, "slot_id": "repo"},
        json={"url": "https://github.com/ada/other"},
    ),
    _r(
        "PUT",
        "/api/v1/assessments/<slug>/portfolio/statements/<slot_id>",
        "401 200 200 403 403 403 200",
        at={**PORTFOLIO, "slot_id": "reflection"},
        json={"text": REFLECTION},
    ),
    _r("POST", "/api/v1/assessments/<slug>/portfolio/submit", "401 202 400 403 403 403 400", at=PORTFOLIO),
    _r(
        "GET",
        "/api/v1/submissions/<submission_id>/regrade-requests",
        "401 200 404 404 200 200 200",
        at=REVIEWED,
    ),
    _r(
        "POST",
        "/api/v1/submissions/<submission_id>/regrade-requests",
        "401 201 404 404 404 404 404",
        at=REVIEWED,
        json={"criterion": "style", "reason": REASON},
    ),
    _r(
        "POST",
        "/api/v1/submissions/<submission_id>/reviews",
        "401 403 403 403 200 200 200",
        at=WAITING,
        json=STRONG_JSON,
        setup=open_task,
    ),
    _r("GET", "/api/v1/tokens", "401 200 200 200 200 200 200"),
    _r("POST", "/api/v1/tokens", "401 201 201 201 201 201 201", json={"name": "laptop"}),
    _r("GET", "/api/v1/tokens/<int:token_id>", "401 200 404 404 404 404 404", at={"token_id": "{token}"}),
    _r("DELETE", "/api/v1/tokens/<int:token_id>", "401 204 404 404 404 404 404", at={"token_id": "{token}"}),
    # Staff of the assessment's program, or admins: the audit log (narrowed to the assessments of the
    # programs they run), due dates, publication. Fixed here: any reviewer, of any program, could do all
    # three for every assessment (deadlines.require_staff allowed the reviewer role).
    _r("GET", "/api/v1/audit", "401 403 403 403 403 200 200"),
    _r(
        "POST",
        "/api/v1/assessments/<slug>/extensions",
        "401 403 403 403 403 201 201",
        at=REPO,
        json={"learner": "{learner_email}", "due": "2031-01-01T00:00:00Z", "reason": "Ill."},
    ),
    _r("POST", "/api/v1/assessments/<slug>/publish", "401 403 403 403 403 200 200", at=REPO),
    # ------------------------------------------------------------ the reviewers' API
    _r("GET", "/api/v1/review/queue", "401 403 403 200 200 200 200"),
    _r("POST", "/api/v1/review/next", "401 403 403 200 200 200 200"),
    _r("GET", "/api/v1/review/tasks/<int:task_id>", "401 403 403 403 200 409 409", at=TASK),
    _r(
        "GET",
        "/api/v1/review/tasks/<int:task_id>/files",
        "401 403 403 403 200 409 409",
        at=TASK,
        query="path=app.py",
    ),
    _r(
        "POST",
        "/api/v1/review/tasks/<int:task_id>/claim",
        "401 403 403 403 200 200 200",
        at=TASK,
        setup=open_task,
    ),
    _r(
        "POST", "/api/v1/review/tasks/<int:task_id>/release", "401 403 403 409 200 409 409", at=TASK
    ),  # as above
    _r(
        "POST",
        "/api/v1/review/tasks/<int:task_id>/assign",
        "401 403 403 403 403 200 200",
        at=TASK,
        json={"reviewer": "{reviewer_email}"},
        setup=open_task,
    ),
    _r(
        "PUT",
        "/api/v1/review/tasks/<int:task_id>/draft",
        "401 403 403 403 200 409 409",
        at=TASK,
        json=STRONG_JSON,
    ),
    _r(
        "POST",
        "/api/v1/review/tasks/<int:task_id>/review",
        "401 403 403 403 201 409 409",
        at=TASK,
        json=STRONG_JSON,
    ),
    _r(
        "POST",
        "/api/v1/review/tasks/<int:task_id>/regrade-answer",
        "401 403 403 403 409 200 409",
        at={"task_id": "{regrade_task}"},
        json={"reply": "The steps are named; the score stands."},
    ),
    _r(
        "POST",
        "/api/v1/review/reviews/<int:review_id>/versions",
        "401 403 403 404 201 201 201",
        at={"review_id": "{review}"},
        json={**STRONG_JSON, "reason": "Scored against the wrong level."},
    ),
    _r(
        "GET",
        "/api/v1/review/comment-bank/<rubric_slug>",
        "401 403 403 403 200 200 200",
        at={"rubric_slug": "reviewed"},
    ),
    _r(
        "POST",
        "/api/v1/review/comment-bank/<rubric_slug>",
        "401 403 403 403 201 201 201",
        at={"rubric_slug": "reviewed"},
        json={"text": "Say why."},
    ),
    _r(
        "PUT",
        "/api/v1/review/comment-bank/entries/<int:entry_id>",
        "401 403 403 403 200 200 200",
        at={"entry_id": "{entry}"},
        json={"text": "Name every step."},
    ),
    _r(
        "POST",
        "/api/v1/review/comment-bank/entries/<int:entry_id>/use",
        "401 403 403 403 200 200 200",
        at={"entry_id": "{entry}"},
    ),
    # ------------------------------------------------------------ the staff API
    _r("GET", "/api/v1/staff/users", "401 403 403 403 403 403 200"),
    _r(
        "POST",
        "/api/v1/staff/users",
        "401 403 403 403 403 403 201",
        json={
            "email": "new@example.org",
            "name": "New",
            "role": "learner",
            "password": "a long enough password",
        },
    ),
    _r("GET", "/api/v1/staff/users/<int:user_id>", "401 403 403 403 403 403 200", at=LEARNER),
    _r(
        "PATCH",
        "/api/v1/staff/users/<int:user_id>",
        "401 403 403 403 403 403 200",
        at=LEARNER,
        json={"role": "reviewer"},
    ),
    _r("DELETE", "/api/v1/staff/users/<int:user_id>/tokens", "401 403 403 403 403 200 200", at=LEARNER),
    _r("GET", "/api/v1/staff/programs/<slug>/staff", "401 403 403 403 403 200 200", at=REPO_PROGRAM),
    _r(
        "POST",
        "/api/v1/staff/programs/<slug>/staff",
        "401 403 403 403 403 200 200",
        at=REPO_PROGRAM,
        json={"email": "{outsider_email}", "role": "reviewer"},
    ),
    _r(
        "DELETE",
        "/api/v1/staff/programs/<slug>/staff/<int:user_id>",
        "401 403 403 403 403 204 204",
        at={"slug": "repo-program", "user_id": "{reviewer_id}"},
    ),
    _r("GET", "/api/v1/staff/programs/<slug>/enrolments", "401 403 403 403 403 200 200", at=REPO_PROGRAM),
    _r(
        "POST",
        "/api/v1/staff/programs/<slug>/enrolments",
        "401 403 403 403 403 201 201",
        at=REPO_PROGRAM,
        json={"email": "new.learner@example.org", "name": "New Learner"},
    ),
    _r("GET", "/api/v1/staff/programs/<slug>/gradebook", "401 403 403 403 403 200 200", at=REPO_PROGRAM),
    _r("GET", "/api/v1/staff/queues", "401 403 403 403 403 200 200"),
    _r(
        "POST",
        "/api/v1/staff/runs/<run_id>/retry",
        "401 403 403 403 403 202 202",
        at={"run_id": "{failed_run}"},
    ),
    _r("GET", "/api/v1/staff/assessments/<slug>/regrade", "401 403 403 403 403 200 200", at=REPO),
    _r(
        "POST",
        "/api/v1/staff/assessments/<slug>/regrade",
        "401 403 403 403 403 202 202",
        at=REPO,
        json={"reason": "The hidden tests were fixed.", "confirm": True},
    ),
    _r("GET", "/api/v1/staff/catalog", "401 403 403 403 403 200 200"),
    _r("POST", "/api/v1/staff/catalog/load", "401 403 403 403 403 403 200"),
    _r("GET", "/api/v1/staff/agreement", "401 403 403 403 403 200 200"),
    # ------------------------------------------------------------ credential files and the verify page
    # Public: the badge image is every credential's achievement image, a credential's id is the capability
    # its holder shares, and anyone may verify a credential (the form carries the CSRF token of the session).
    _r("GET", "/programs/<slug>/badge.png", "200 200 200 200 200 200 200", at=REPO_PROGRAM),
    _r(
        "GET",
        "/credentials/<credential_id>/badge.png",
        "200 200 200 200 200 200 200",
        at={"credential_id": "{credential}"},
    ),
    # The certificate names the holder: theirs, and their program's staff's (Stella runs repo-program).
    _r(
        "GET",
        "/credentials/<credential_id>/certificate.pdf",
        "login 200 403 403 403 200 200",
        at={"credential_id": "{credential}"},
    ),
    _r("GET", "/verify", "200 200 200 200 200 200 200"),
    # The form's values are format strings too: "{{}}" sends "{}", which the page reports as no credential.
    _r("POST", "/verify", "200 200 200 200 200 200 200", form={"text": "{{}}"}),
    # ------------------------------------------------------------ credentials: issuer, public pages, API
    # What a verifier fetches is public: the issuer's DID documents, the status lists, a credential's page.
    # `credential` is Ada's signed credential of repo-program, which Stella runs.
    _r("GET", "/.well-known/did.json", "200 200 200 200 200 200 200"),
    _r("GET", "/credentials/issuer.json", "200 200 200 200 200 200 200"),
    _r("GET", "/credentials/status/<purpose>", "200 200 200 200 200 200 200", at={"purpose": "revocation"}),
    _r("GET", "/credentials/<credential_id>", "200 200 200 200 200 200 200", at=CREDENTIAL),
    # The learner's own page and downloads: anyone else's credential is not found. The program's staff
    # (and admins) list and revoke its credentials; reviewers and learners are refused by role (403).
    _r("GET", "/me/credentials", "login 200 200 200 200 200 200"),
    _r(
        "GET",
        "/me/credentials/<credential_id>/credential.json",
        "login 200 404 404 404 404 404",
        at=CREDENTIAL,
    ),
    _r(
        "GET",
        "/me/credentials/<credential_id>/credential.jwt",
        "login 200 404 404 404 404 404",
        at=CREDENTIAL,
    ),
    _r(
        "POST",
        "/me/credentials/<credential_id>/shown",
        "login 303 404 404 404 404 404",
        at=CREDENTIAL,
        form={"shown": "reviewed-repo"},
    ),
    _r("GET", "/staff/programs/<slug>/credentials", "login 403 403 403 403 200 200", at=REPO_PROGRAM),
    _r(
        "POST",
        "/staff/credentials/<credential_id>/revoke",
        "login 403 403 403 403 303 303",
        at=CREDENTIAL,
        form={"reason": "Copied work."},
    ),
    # The API: the holder and the program's staff read it; revoking is for staff (the holder: 403).
    _r("GET", "/api/v1/credentials", "401 200 200 200 200 200 200"),
    _r("GET", "/api/v1/credentials/<credential_id>", "401 200 404 404 404 200 200", at=CREDENTIAL),
    _r(
        "POST",
        "/api/v1/credentials/<credential_id>/revoke",
        "401 403 404 404 404 200 200",
        at=CREDENTIAL,
        json={"reason": "Copied work."},
    ),
)
