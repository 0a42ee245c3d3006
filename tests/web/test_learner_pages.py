"""The learner's pages as a learner meets them, through the Flask test client: quizzes (Markdown, labels,
answers kept after an error, the confirm step, Enter that does not hand in, countdowns), attempts and
refusals with their real status, the result page (answers in words, badges, files received, review
comments beside the rubric and the code, reviewers named only when not blind), regrade requests in
the page and the API, live status without a meta refresh, and the starter code download."""

from __future__ import annotations

import io
import itertools
import re
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.models import QuizAttempt, RegradeRequest, ReviewSlot, ReviewTask, Submission, User
from grader.services import review_queue, reviews
from grader.services.reviews import InlineComment, ReviewInput
from rubrics import Review
from tests.conftest import Account, bearer, make_account
from tests.support.catalogs import write_catalog
from tests.support.grading import drain
from tests.support.reviewed import REVIEWED_REPO, hand_in, run_queued, write_repository_catalog
from tests.web.test_pages import csrf_token, log_in

MARKDOWN_QUIZ = """\
slug: markdown-quiz
kind: quiz
title: Markdown quiz
description: |
  Read the **brief** first.

  ```python
  print("brief")
  ```
pass_mark: 0.5
shuffle: false
feedback: after_passing
attempts: {max: 5}
pools:
  - id: main
    questions:
      - id: code
        type: short_text
        prompt: |
          What does this print? <script>alert(1)</script>

          ```python
          print(6 * 7)
          ```
        accept: ["42"]
        explanation: "`6 * 7` is **42**."
      - id: millis
        type: numeric
        prompt: How many milliseconds are in a second?
        answer: 1000
        unit: ms
"""
CLOSED_QUIZ = """\
slug: closed-quiz
kind: quiz
title: Closed quiz
due: "2020-01-01T00:00:00Z"
pools:
  - {id: p, questions: [{id: q, type: true_false, prompt: "Is it closed?", answer: true}]}
"""
EXTRA_PROGRAM = """\
slug: extra-program
title: Extra program
description: Markdown and a closed quiz.
credential: {name: Extra, description: Extra credential., criteria: Pass both.}
requirements:
  - assessment: markdown-quiz
  - assessment: closed-quiz
"""
BRIEF = 'description: "Build the **app**. <script>alert(9)</script>"\n'
APP = "import os\nLIMIT = 1\nx = 2\ny = 3\nz = 4\nw = 5\n"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        secret_key="test-secret-key",
        catalog_path=tmp_path / "catalog",
        submissions_per_hour=100,
        max_archive_bytes=4096,
    )


@pytest.fixture
def policy() -> str:
    return ""


@pytest.fixture
def catalog_dir(settings: Settings, policy: str) -> Path:
    root = write_catalog(settings.catalog_path)
    write_repository_catalog(root)
    write_catalog(
        root,
        {
            "assessments/markdown-quiz.yaml": MARKDOWN_QUIZ,
            "assessments/closed-quiz.yaml": CLOSED_QUIZ,
            "programs/extra-program.yaml": EXTRA_PROGRAM,
            "assessments/reviewed-repo/assessment.yaml": REVIEWED_REPO + BRIEF + policy,
        },
    )
    return root


@pytest.fixture
def learner(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada@example.org", programs=("test-program", "extra-program", "repo-program"))


# ---------------------------------------------------------------- a small DOM: markup as a browser reads it


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def text(self) -> str:
        return " ".join(" ".join(self._strings()).split())

    def _strings(self) -> Iterator[str]:
        for child in self.children:
            if isinstance(child, str):
                yield child
            else:
                yield from child._strings()

    def iter(self) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Elements by tag and attributes (`class_` is one of the classes, `for_` is `for`)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and all(v in n.classes() if k == "class" else n.attrs.get(k) == v for k, v in wanted.items())
        ]

    def find(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag} {attrs}> in the page"
        return found[0]

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def ancestors(self) -> Iterator[Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def dom(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    return builder.root


def assert_accessible_basics(html: str) -> Node:
    """What axe-core's critical and serious rules would find in markup alone."""
    page = dom(html)
    assert 'http-equiv="refresh"' not in html
    assert page.find("html").attrs.get("lang") == "en"
    assert len(page.find_all("main")) == 1 and len(page.find_all("h1")) == 1
    labels = {n.attrs.get("for") for n in page.find_all("label") if n.text()}
    for field in page.find_all("input") + page.find_all("textarea") + page.find_all("select"):
        if field.attrs.get("type") in ("hidden", "submit", "button") or "hidden" in field.attrs:
            continue
        wrapped = any(a.tag == "label" for a in field.ancestors())
        assert wrapped or field.attrs.get("id") in labels, f"a field without a label: {field.attrs}"
    for header in page.find_all("th"):
        assert header.text(), "an empty table header"
    for table in page.find_all("table"):
        # Wide tables scroll inside their own container, which can be reached with the keyboard.
        holder = next(a for a in table.ancestors() if a.tag == "div")
        assert "table-wrap" in holder.classes() and holder.attrs.get("tabindex") == "0"
        assert holder.attrs.get("role") == "region"
    for element in page.iter():
        assert "style" not in element.attrs, "inline styles are refused by the Content-Security-Policy"
        if element.tag == "script":
            assert element.attrs.get("src") and not element.text(), "inline scripts are refused"
    levels = [int(n.tag[1]) for n in page.iter() if re.fullmatch(r"h[1-6]", n.tag)]
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels)), f"headings skip: {levels}"
    return page


def start(client: FlaskClient, slug: str, program: str = "test-program") -> str:
    page = client.get(f"/programs/{program}").get_data(as_text=True)
    response = client.post(f"/assessments/{slug}/attempts", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302, response.get_data(as_text=True)
    return str(response.headers["Location"])


def count(loaded: sessionmaker[Session], model: type) -> int:
    with loaded() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# ---------------------------------------------------------------- taking a quiz


def test_the_quiz_form_labels_every_answer_and_enter_does_not_hand_it_in(
    client: FlaskClient, learner: Account
) -> None:
    log_in(client, learner)
    html = client.get(start(client, "basics")).get_data(as_text=True)
    page = assert_accessible_basics(html)
    form = page.find("form", id="quiz-form")
    # The form's first submit button is disabled: Enter in a text answer submits nothing (HTML's
    # implicit submission goes to the default button, and a disabled default button does nothing).
    buttons = [n for n in form.iter() if n.tag == "button" and n.attrs.get("type", "submit") == "submit"]
    assert "disabled" in buttons[0].attrs and "hidden" in buttons[0].attrs
    assert buttons[-1].text() == "Hand in answers" and "disabled" not in buttons[-1].attrs
    port = page.find("input", name="q_port")
    label = page.find("label", for_=port.attrs["id"] or "")
    assert label.text() == "Your answer to question 4"
    assert page.find(id=port.attrs["aria-describedby"] or "").text() == "Default port of HTTPS?"
    assert page.find("label", for_=page.find("input", name="q_header").attrs["id"] or "").text()


def test_prompts_and_briefs_render_markdown_and_escape_html(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    url = start(client, "markdown-quiz", "extra-program")
    html = client.get(url).get_data(as_text=True)
    page = assert_accessible_basics(html)
    assert "<strong>brief</strong>" in html and '<code class="language-python">print(6 * 7)' in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    brief = page.find("section", class_="brief")
    assert brief.attrs.get("tabindex") == "0" and brief.attrs.get("role") == "region"
    assert brief.attrs.get("aria-label")
    millis = page.find("input", name="q_millis")
    assert page.find("label", for_=millis.attrs["id"] or "").text().endswith("(in ms)")
    form = {"csrf_token": csrf_token(html), "q_code": "42", "q_millis": "1000"}
    done = client.post(url, data=form)
    drain(queue, loaded)
    result = client.get(done.headers["Location"]).get_data(as_text=True)
    # Explanations are Markdown too; the learner's number is shown as typed, not 1000.0.
    assert "<code>6 * 7</code> is <strong>42</strong>" in result
    answer = dom(result).find("dl", class_="answer").text()
    assert "Your answer 42" in answer and "1000 ms" in result and "1000.0" not in result


def test_answers_of_every_type_survive_an_error_and_the_question_is_named(
    client: FlaskClient, learner: Account
) -> None:
    log_in(client, learner)
    url = start(client, "basics")
    html = client.get(url).get_data(as_text=True)
    response = client.post(
        url,
        data={
            "csrf_token": csrf_token(html),
            "q_status-created": "b",
            "q_safe-methods": ["get", "head"],
            "q_idempotent-put": "false",
            "q_port": "four hundred and forty-three",
            "q_header": "Content-Type",
        },
    )
    assert response.status_code == 400
    page = dom(response.get_data(as_text=True))
    alert = page.find(role="alert").text()
    assert "Default port of HTTPS?" in alert and "must be a number" in alert and "answers." not in alert
    checked = {(n.attrs["name"], n.attrs["value"]) for n in page.find_all("input") if "checked" in n.attrs}
    assert checked == {
        ("q_status-created", "b"),
        ("q_safe-methods", "get"),
        ("q_safe-methods", "head"),
        ("q_idempotent-put", "false"),
    }
    assert page.find("input", name="q_port").attrs["value"] == "four hundred and forty-three"
    assert page.find("input", name="q_port").attrs.get("aria-invalid") == "true"
    assert page.find("input", name="q_header").attrs["value"] == "Content-Type"
    # A true answer is kept too (the confirm step re-shows the form with what was given).
    kept = dom(
        client.post(url, data={"csrf_token": csrf_token(html), "q_idempotent-put": "true"}).get_data(
            as_text=True
        )
    )
    assert "checked" in kept.find("input", name="q_idempotent-put", value="true").attrs
    assert "checked" not in kept.find("input", name="q_idempotent-put", value="false").attrs


def test_unanswered_questions_are_asked_about_before_handing_in(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    url = start(client, "basics")
    html = client.get(url).get_data(as_text=True)
    answers = {"csrf_token": csrf_token(html), "q_status-created": "b", "q_port": "443", "q_header": "x"}
    asked = client.post(url, data=answers)
    assert asked.status_code == 200 and count(loaded, Submission) == 0  # nothing handed in yet
    page = dom(asked.get_data(as_text=True))
    confirm = page.find("section", id="confirm")
    assert "2 questions have no answer yet" in confirm.text()
    assert "Which methods are safe?" in confirm.text() and "PUT is idempotent." in confirm.text()
    assert page.find("input", name="q_port").attrs["value"] == "443"  # kept
    assert page.find("button", name="confirm_unanswered").text() == "Hand in anyway"
    handed = client.post(url, data={**answers, "confirm_unanswered": "1"})
    assert handed.status_code == 302 and count(loaded, Submission) == 1
    assert '<script src="/static/learner.js"' in html


def test_a_timed_attempt_shows_its_deadline_in_utc_with_a_countdown_hook(
    client: FlaskClient, learner: Account
) -> None:
    log_in(client, learner)
    page = dom(client.get(start(client, "timed")).get_data(as_text=True))
    deadline = page.find("p", class_="deadline")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", deadline.attrs["data-deadline"] or "")
    assert " UTC" in deadline.text() and "in 5 minutes" in deadline.text()
    assert deadline.attrs.get("role") == "timer"
    # Back on the program page, the drawn attempt is continued, not drawn again.
    row = next(
        r
        for r in dom(client.get("/programs/test-program").get_data(as_text=True)).find_all("tr")
        if "Timed" in r.text()
    )
    assert "Continue the quiz" in row.text() and "Take the quiz" not in row.text()


def test_attempts_left_and_the_cooldown_are_shown_and_no_button_while_the_quiz_cannot_be_taken(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    before = dom(client.get("/programs/test-program").get_data(as_text=True))
    timed_row = next(r for r in before.find_all("tr") if "Timed pool quiz" in r.text())
    assert "0 of 2 used" in timed_row.text() and "wait 1 minute between attempts" in timed_row.text()
    assert "Take the quiz" in timed_row.text() and "2 attempts left" in timed_row.text()
    url = start(client, "timed")
    form = client.get(url).get_data(as_text=True)
    ids = re.findall(r'name="q_(t\d)"', form)
    client.post(url, data={"csrf_token": csrf_token(form), **{f"q_{i}": "true" for i in ids}})
    after = dom(client.get("/programs/test-program").get_data(as_text=True))
    timed_row = next(r for r in after.find_all("tr") if "Timed pool quiz" in r.text())
    assert "Take the quiz" not in timed_row.text()
    assert "There is a wait of 1 minute between attempts" in timed_row.text()
    assert "You can take it again at" in timed_row.text() and " UTC" in timed_row.text()
    # Forcing it anyway is refused with the real status, and the page says when.
    refused = client.post("/assessments/timed/attempts", data={"csrf_token": csrf_token(form)})
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert "You can try again in" in refused.get_data(as_text=True)
    assert count(loaded, QuizAttempt) == 1


def test_all_attempts_used_is_said_and_refused_with_409(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    for _ in range(3):
        url = start(client, "basics")
        form = client.get(url).get_data(as_text=True)
        client.post(url, data={"csrf_token": csrf_token(form), "q_port": "80", "confirm_unanswered": "1"})
    page = client.get("/programs/test-program").get_data(as_text=True)
    row = next(r for r in dom(page).find_all("tr") if "HTTP basics" in r.text())
    assert "All 3 attempts are used." in row.text() and "Take the quiz" not in row.text()
    refused = client.post("/assessments/basics/attempts", data={"csrf_token": csrf_token(page)})
    assert refused.status_code == 409 and "attempts" in refused.get_data(as_text=True)


def test_a_quiz_past_its_due_date_says_so_and_is_refused_with_409(
    client: FlaskClient, learner: Account
) -> None:
    log_in(client, learner)
    page = client.get("/programs/extra-program").get_data(as_text=True)
    row = next(r for r in dom(page).find_all("tr") if "Closed quiz" in r.text())
    assert "closed on 2020-01-01" in row.text() and "Take the quiz" not in row.text()
    refused = client.post("/assessments/closed-quiz/attempts", data={"csrf_token": csrf_token(page)})
    assert refused.status_code == 409 and "closed on 2020-01-01" in refused.get_data(as_text=True)


def test_pages_of_a_program_the_learner_is_not_enrolled_in_are_403(
    client: FlaskClient, loaded: sessionmaker[Session]
) -> None:
    outsider = make_account(loaded, "out@example.org", programs=("test-program",))
    log_in(client, outsider)
    assert client.get("/programs/repo-program").status_code == 403
    assert client.get("/assessments/reviewed-repo/submit").status_code == 403
    assert client.get("/assessments/reviewed-repo/starter.zip").status_code == 403
    page = client.get("/programs/test-program").get_data(as_text=True)
    refused = client.post("/assessments/markdown-quiz/attempts", data={"csrf_token": csrf_token(page)})
    assert refused.status_code == 403 and "not enrolled" in refused.get_data(as_text=True)


# ---------------------------------------------------------------- results


def test_a_quiz_result_in_words_with_a_pass_badge_unlike_a_fail(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    url = start(client, "basics")
    form = client.get(url).get_data(as_text=True)
    passed = client.post(
        url,
        data={
            "csrf_token": csrf_token(form),
            "q_status-created": "b",
            "q_safe-methods": ["get", "head"],
            "q_idempotent-put": "true",
            "q_port": "443",
            "q_header": "content-type",
        },
    )
    url = start(client, "basics")
    form = client.get(url).get_data(as_text=True)
    failed = client.post(
        url, data={"csrf_token": csrf_token(form), "q_status-created": "a", "confirm_unanswered": "1"}
    )
    drain(queue, loaded)
    good = client.get(passed.headers["Location"]).get_data(as_text=True)
    assert_accessible_basics(good)
    answers = [n.text() for n in dom(good).find_all("dl", class_="answer")]
    assert "Your answer 201 Created" in answers[0] and "Correct answer 201 Created" in answers[0]
    assert "Your answer GET; HEAD" in answers[1] and "Your answer true" in answers[2]
    assert "Your answer 443" in answers[3] and "443.0" not in good and "['get', 'head']" not in good
    bad = client.get(failed.headers["Location"]).get_data(as_text=True)
    assert "Your answer 200 OK" in dom(bad).find("dl", class_="answer").text()
    good_badge = dom(good).find("span", class_="badge")
    bad_badge = dom(bad).find("span", class_="badge")
    assert good_badge.text() == "passed" and bad_badge.text() == "not passed"
    assert good_badge.classes() != bad_badge.classes()
    home = dom(client.get("/").get_data(as_text=True))
    assert {b.text() for b in home.find_all("span", class_="badge")} == {"passed", "not passed"}
    assert "5 / 5" in home.text() and "5.0" not in home.text()


def test_the_status_page_has_no_meta_refresh_and_its_status_json_follows_grading(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    url = start(client, "basics")
    form = client.get(url).get_data(as_text=True)
    location = client.post(
        url, data={"csrf_token": csrf_token(form), "q_port": "443", "confirm_unanswered": "1"}
    ).headers["Location"]
    waiting = client.get(location).get_data(as_text=True)
    page = assert_accessible_basics(waiting)
    live = page.find("section", id="live-status")
    assert live.attrs["data-status-url"] == f"{location}/status.json"
    assert "number 1 in the queue" in live.text() and page.find("a", class_="check-again")
    status = client.get(f"{location}/status.json")
    assert status.status_code == 200 and status.get_json() == {
        "id": location.rsplit("/", 1)[1],
        "status": "queued",
        "label": "queued",
        "queue_position": 1,
        "eta_seconds": None,  # nothing graded yet in this queue: no pace to go by
        "has_result": False,
        "done": False,
    }
    drain(queue, loaded)
    assert client.get(f"{location}/status.json").get_json()["done"] is True
    assert "live-status" not in client.get(location).get_data(as_text=True)
    other = make_account(loaded, "bob@example.org", programs=("test-program",))
    client.post("/logout", data={"csrf_token": csrf_token(waiting)})
    log_in(client, other)
    stranger = client.get(f"{location}/status.json")
    assert stranger.status_code == 404 and stranger.get_json()["error"]["code"] == "not_found"


# ---------------------------------------------------------------- repositories: hand-in page and starter code


def test_the_repository_page_offers_the_starter_code_and_says_its_limits_in_human_units(
    client: FlaskClient, learner: Account
) -> None:
    log_in(client, learner)
    html = client.get("/assessments/reviewed-repo/submit").get_data(as_text=True)
    page = assert_accessible_basics(html)
    assert "<strong>app</strong>" in html and "&lt;script&gt;alert(9)" in html
    facts = page.find("dl", class_="facts").text()
    assert "up to 4 KB" in facts and "1 minute" in facts and "512 MB of memory" in facts
    assert "0 of 3 used, 3 left" in facts and "bytes" not in facts
    link = page.find("a", href="/assessments/reviewed-repo/starter.zip")
    assert "starter code" in link.text()
    download = client.get("/assessments/reviewed-repo/starter.zip")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    assert download.headers["Content-Disposition"] == 'attachment; filename="reviewed-repo-starter.zip"'
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Security-Policy"].startswith("sandbox; default-src 'none'")
    with zipfile.ZipFile(io.BytesIO(download.data)) as archive:
        assert archive.namelist() == ["reviewed-repo-starter/app.py"]
        assert archive.read("reviewed-repo-starter/app.py") == b"x = 0\n"
    assert client.get("/assessments/basics/starter.zip").status_code == 404


def test_a_repository_hand_in_that_goes_wrong_names_the_field_keeps_the_input_and_has_its_status(
    client: FlaskClient, learner: Account
) -> None:
    log_in(client, learner)
    html = client.get("/assessments/reviewed-repo/submit").get_data(as_text=True)
    nothing = client.post(
        "/assessments/reviewed-repo/submit", data={"csrf_token": csrf_token(html), "ref": "main"}
    )
    assert nothing.status_code == 400
    page = dom(nothing.get_data(as_text=True))
    assert "Problem with the git URL" in page.find(role="alert").text()
    assert page.find("input", name="ref").attrs["value"] == "main"
    bad_url = client.post(
        "/assessments/reviewed-repo/submit",
        data={"csrf_token": csrf_token(html), "git_url": "http://example.org/x.git"},
    )
    assert bad_url.status_code == 400
    assert dom(bad_url.get_data(as_text=True)).find("input", name="git_url").attrs["value"] == (
        "http://example.org/x.git"
    )
    big = client.post(
        "/assessments/reviewed-repo/submit",
        data={"csrf_token": csrf_token(html), "archive": (io.BytesIO(b"x" * 5000), "big.zip")},
        content_type="multipart/form-data",
    )
    assert big.status_code == 413
    text = dom(big.get_data(as_text=True)).find(role="alert").text()
    assert "Problem with the archive" in text and "4 KB" in text and "4096" not in text


# ---------------------------------------------------------------- the learner's side of review


def reviewer(loaded: sessionmaker[Session], name: str) -> User:
    account = make_account(loaded, f"{name}@example.org", role="reviewer", reviews=("repo-program",))
    with loaded() as session:
        user = session.get(User, account.id)
        assert user is not None
        session.expunge(user)
        return user


def review_it(loaded: sessionmaker[Session], who: User, given: ReviewInput) -> None:
    with loaded() as session:
        task = session.scalars(
            select(ReviewTask).where(ReviewTask.status.in_(["open", "claimed"])).order_by(ReviewTask.id)
        ).first()
        assert task is not None
        review_queue.claim(session, who, task.id)
        if task.slot == ReviewSlot.REGRADE:
            reviews.answer_regrade(session, who, task.id, "Agreed: the split is **clear**.", given)
        else:
            reviews.submit(session, who, task.id, given)
        session.commit()


COMMENTED = ReviewInput(
    reviews=(Review("design", level="weak", comment="Split the **modules**. <script>alert(2)</script>"),),
    comment="Well organised overall. <img src=x onerror=alert(3)>",
    inline=(InlineComment("app.py", 2, "Name this *constant* after what it limits."),),
)


@pytest.fixture
def waiting(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> str:
    submission_id = hand_in(client, learner, {"app.py": APP, "README.md": "# App\n"})
    run_queued(queue, loaded, settings)
    log_in(client, learner)
    return submission_id


def test_a_submission_waiting_for_review_says_so_lists_its_files_and_is_linked(
    client: FlaskClient, waiting: str
) -> None:
    html = client.get(f"/submissions/{waiting}").get_data(as_text=True)
    page = assert_accessible_basics(html)
    assert page.find("span", class_="badge").text() == "waiting for review"
    assert page.find("h2", id="result-title").text() == "Waiting for a reviewer"
    files = page.find("section", aria_labelledby="files-title").text()
    assert "app.py" in files and "README.md" in files and "44 bytes" in files
    rubric = page.find("table", class_="rubric").text()
    assert "automatic" in rubric and "awaiting review" in rubric
    for url in ("/", "/programs/repo-program"):
        links = dom(client.get(url).get_data(as_text=True)).find_all("a", href=f"/submissions/{waiting}")
        assert links, f"{url} does not link to the submission waiting for review"
    assert "waiting for review" in dom(client.get("/").get_data(as_text=True)).text()


def test_the_result_shows_review_comments_beside_the_rubric_and_the_code_and_who_graded(
    client: FlaskClient, waiting: str, loaded: sessionmaker[Session]
) -> None:
    review_it(loaded, reviewer(loaded, "rui"), COMMENTED)
    html = client.get(f"/submissions/{waiting}").get_data(as_text=True)
    page = assert_accessible_basics(html)
    design = page.find("tr", id="criterion-design")
    assert "weak" in design.text() and "reviewer rui" in design.text()
    assert "<strong>modules</strong>" in html and "<script>alert(2)</script>" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    tests_row = page.find("tr", id="criterion-tests")
    assert "automatic" in tests_row.text()
    comments = page.find("section", aria_labelledby="review-title").text()
    assert "Well organised overall." in comments and "rui" in comments
    assert "<img" not in html and "onerror" not in html.replace("&lt;img src=x onerror", "")
    note = page.find("article", class_="inline-note")
    assert "app.py , line 2" in note.text() or "app.py, line 2" in note.text()
    excerpt = note.find("pre", class_="excerpt")
    lines = [n.text() for n in excerpt.find_all("span") if "line" in n.classes()]
    assert [line.split(" ", 1)[0] for line in lines] == ["1", "2", "3", "4"]
    commented = next(n for n in excerpt.find_all("span") if "commented" in n.classes())
    assert "LIMIT = 1" in commented.text()
    assert "z = 4" not in excerpt.text()
    assert "<em>constant</em>" in html


@pytest.mark.parametrize("policy", ["review: {blind: true}\n"])
def test_a_blind_review_does_not_name_the_reviewer(
    client: FlaskClient, waiting: str, loaded: sessionmaker[Session], learner: Account
) -> None:
    review_it(loaded, reviewer(loaded, "rui"), COMMENTED)
    html = client.get(f"/submissions/{waiting}").get_data(as_text=True)
    page = assert_accessible_basics(html)
    assert "rui" not in page.find("main").text()
    assert "a reviewer" in page.find("tr", id="criterion-design").text()
    assert "Your reviewer" in page.find("section", aria_labelledby="review-title").text()
    review = client.get(f"/api/v1/submissions/{waiting}", headers=bearer(learner)).get_json()
    (entry,) = review["result"]["feedback"]["review"]["reviews"]
    assert entry["reviewer"] is None and "reviewer_id" not in entry


def test_the_api_names_the_reviewer_when_not_blind(
    client: FlaskClient, waiting: str, loaded: sessionmaker[Session], learner: Account
) -> None:
    review_it(loaded, reviewer(loaded, "rui"), COMMENTED)
    view = client.get(f"/api/v1/submissions/{waiting}", headers=bearer(learner)).get_json()
    (entry,) = view["result"]["feedback"]["review"]["reviews"]
    assert entry["reviewer"] == "rui" and "reviewer_id" not in entry


def test_a_regrade_request_from_the_page_keeps_the_reason_on_error_and_shows_the_answer(
    client: FlaskClient, waiting: str, loaded: sessionmaker[Session]
) -> None:
    review_it(loaded, reviewer(loaded, "rui"), COMMENTED)
    html = client.get(f"/submissions/{waiting}").get_data(as_text=True)
    page = dom(html)
    form = page.find("form", id="regrade-design")
    assert form.attrs["action"] == f"/submissions/{waiting}/regrade-requests"
    label = page.find("label", for_="reason-design").text()
    assert label == "Why should \u201cDesign\u201d be looked at again?"
    assert not page.find_all("form", id="regrade-tests")  # automatic criteria are not regraded
    short = client.post(
        f"/submissions/{waiting}/regrade-requests",
        data={"csrf_token": csrf_token(html), "criterion": "design", "reason": "why?"},
    )
    assert short.status_code == 400
    again = dom(short.get_data(as_text=True))
    assert again.find("textarea", id="reason-design").text() == "why?"
    assert "Problem with the reason" in again.find("p", class_="field-error").text()
    assert count(loaded, RegradeRequest) == 0
    reason = "The modules are split by concern: <b>see</b> app.py."
    sent = client.post(
        f"/submissions/{waiting}/regrade-requests",
        data={"csrf_token": csrf_token(html), "criterion": "design", "reason": reason},
    )
    assert sent.status_code == 302 and sent.headers["Location"].endswith(f"/submissions/{waiting}#regrades")
    after = client.get(f"/submissions/{waiting}").get_data(as_text=True)
    section = dom(after).find("section", id="regrades")
    assert "waiting for an answer" in section.text() and "&lt;b&gt;see&lt;/b&gt;" in after
    assert not dom(after).find_all("form", id="regrade-design")  # one request at a time
    twice = client.post(
        f"/submissions/{waiting}/regrade-requests",
        data={"csrf_token": csrf_token(after), "criterion": "design", "reason": reason},
    )
    assert twice.status_code == 409 and "already waiting" in twice.get_data(as_text=True)
    strong = ReviewInput(reviews=(Review("design", level="strong"),), comment="Looked again.")
    review_it(loaded, reviewer(loaded, "sam"), strong)
    answered = client.get(f"/submissions/{waiting}").get_data(as_text=True)
    section = dom(answered).find("section", id="regrades")
    assert "answered" in section.text() and "the score was changed" in section.text()
    assert "<strong>clear</strong>" in answered
    assert dom(answered).find("span", class_="badge").text() == "passed"


def test_regrade_requests_through_the_api(
    client: FlaskClient, waiting: str, loaded: sessionmaker[Session], learner: Account
) -> None:
    url = f"/api/v1/submissions/{waiting}/regrade-requests"
    early = client.post(
        url, json={"criterion": "design", "reason": "Please look again at it."}, headers=bearer(learner)
    )
    assert early.status_code == 409 and early.get_json()["error"]["details"]["field"] == "submission"
    review_it(loaded, reviewer(loaded, "rui"), COMMENTED)
    cases = [
        ({"reason": "Please look again at it."}, 400, "criterion"),
        ({"criterion": "tests", "reason": "Please look again at it."}, 400, "criterion"),
        ({"criterion": "design", "reason": "why?"}, 400, "reason"),
        ({"criterion": "design", "reason": 5}, 400, "reason"),
        ({"criterion": "design", "reason": "Please look again.", "extra": 1}, 400, "extra"),
    ]
    for body, status, field in cases:
        response = client.post(url, json=body, headers=bearer(learner))
        assert response.status_code == status, body
        assert response.get_json()["error"]["details"]["field"] == field, body
    assert client.post(url, data="x", headers=bearer(learner)).status_code == 400
    assert client.post(url, json={"criterion": "design", "reason": "Please look again."}).status_code == 401
    other = make_account(loaded, "bob@example.org", programs=("repo-program",))
    stranger = client.post(
        url, json={"criterion": "design", "reason": "Please look again."}, headers=bearer(other)
    )
    assert stranger.status_code == 404
    assert client.get(url, headers=bearer(other)).status_code == 404
    created = client.post(
        url, json={"criterion": "design", "reason": "Please look again."}, headers=bearer(learner)
    )
    assert created.status_code == 201 and created.headers["Location"].endswith(url)
    body = created.get_json()
    assert body["criterion"] == "design" and body["criterion_title"] == "Design" and body["status"] == "open"
    duplicate = client.post(
        url, json={"criterion": "design", "reason": "Please look again."}, headers=bearer(learner)
    )
    assert duplicate.status_code == 409 and duplicate.get_json()["error"]["details"]["field"] == "criterion"
    listed = client.get(url, headers=bearer(learner))
    assert listed.status_code == 200
    assert [(r["id"], r["status"], r["reply"]) for r in listed.get_json()["regrade_requests"]] == [
        (body["id"], "open", None)
    ]
    review_it(loaded, reviewer(loaded, "sam"), ReviewInput(reviews=(Review("design", level="weak"),)))
    (answered,) = client.get(url, headers=bearer(learner)).get_json()["regrade_requests"]
    assert answered["status"] == "answered" and answered["changed"] is False
    assert answered["reply"] == "Agreed: the split is **clear**."


def test_badge_and_text_colours_meet_contrast() -> None:
    css = (Path(__file__).parents[2] / "grader/web/static/style.css").read_text()
    variables = dict(re.findall(r"--([a-z]+):\s*(#[0-9a-f]{6})", css))

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    def contrast(a: str, b: str) -> float:
        high, low = sorted((luminance(a), luminance(b)), reverse=True)
        return (high + 0.05) / (low + 0.05)

    for name in ("passed", "failed", "pending", "neutral"):
        rule = re.search(r"\.badge\." + name + r"[^{]*\{([^}]*)\}", css)
        assert rule, name
        background = re.search(r"background:\s*(#[0-9a-f]{6})", rule.group(1))
        colour = re.search(r"color:\s*(?:var\(--([a-z]+)\)|(#[0-9a-f]{6}))", rule.group(1))
        assert background and colour
        text = variables[colour.group(1)] if colour.group(1) else colour.group(2)
        assert contrast(text, background.group(1)) >= 4.5, name
    assert contrast(variables["muted"], variables["bg"]) >= 4.5
    assert ".visually-hidden" in css and ":focus-visible" in css
