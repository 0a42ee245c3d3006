"""What the viewer's speed-ups must not change: earlier attempts read in one query, diffs and file texts
cached by content hash (a new version is never shown an old diff, redaction still applies per viewer),
lexers looked up once per name, and every cache bounded. Timing is for bench/viewer_render.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.services import viewer
from grader.services.content_cache import ContentCache
from grader.web import code
from tests.conftest import Account, make_account
from tests.support.reviewed import REVIEWED_REPO, write_repository_catalog
from tests.web.test_pages import csrf_token, log_in
from tests.web.test_review_pages import claim, graded, reviewer, tasks, text


@pytest.fixture
def policy() -> str:
    return ""


@pytest.fixture
def catalog_dir(settings: Settings, policy: str) -> Path:
    root = write_repository_catalog(settings.catalog_path)
    if policy:
        (root / "assessments/reviewed-repo/assessment.yaml").write_text(REVIEWED_REPO + policy)
    return root


@pytest.fixture
def learner(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "zelda.quigley@example.org", programs=("repo-program",))


@pytest.fixture(autouse=True)
def cold_caches() -> Iterator[None]:
    code.clear_cache()
    viewer.clear_cache()
    yield
    code.clear_cache()
    viewer.clear_cache()


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def attempt(number: int) -> dict[str, str]:
    return {"app.py": f"def answer():\n    return {40 + number}\n", "README.md": "# App\n"}


def test_earlier_attempts_show_their_latest_result_newest_first_in_one_query(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    for number in (1, 2, 3):
        graded(client, learner, queue, loaded, settings, attempt(number))
    first, second, third = tasks(loaded)
    log_in(client, reviewer(loaded, "rui"))
    claim(client, first.id)
    token = csrf_token(client.get(f"/review/tasks/{first.id}").get_data(as_text=True))
    done = client.post(
        f"/review/tasks/{first.id}/submit", data={"csrf_token": token, "c-design-level": "strong"}
    )
    assert done.status_code == 302

    claim(client, second.id)
    claim(client, third.id)
    client.get(f"/review/tasks/{second.id}")  # templates compiled, session warm: both pages alike
    with statements() as one_earlier:
        client.get(f"/review/tasks/{second.id}")
    with statements() as two_earlier:
        page = client.get(f"/review/tasks/{third.id}")
    words = text(page.get_data(as_text=True))
    # Attempt 1 stands on the result of its review (its second result), attempt 2 still waits.
    assert "Attempt 2, " in words and "Attempt 1, " in words
    assert words.index("Attempt 2, ") < words.index("Attempt 1, ")
    assert "100 / 100 · passed" in words.split("Attempt 1, ")[1]
    assert "needs review" in words.split("Attempt 2, ")[1].split("Attempt 1, ")[0]
    assert len(two_earlier) == len(one_earlier)  # one more earlier attempt, no more queries


def test_each_new_version_shows_its_own_diff_and_code_never_a_cached_one(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    for number in (1, 2, 3):
        graded(client, learner, queue, loaded, settings, attempt(number))
    _, second, third = tasks(loaded)
    log_in(client, reviewer(loaded, "rui"))
    claim(client, second.id)
    claim(client, third.id)
    for _ in range(2):  # computed, then from the caches: the same page
        html = client.get(f"/review/tasks/{second.id}?file=app.py").get_data(as_text=True)
        assert "-    return 41" in html and "+    return 42" in html and '<span class="mi">42</span>' in html
    html = client.get(f"/review/tasks/{third.id}?file=app.py").get_data(as_text=True)
    assert "Changes since attempt 2" in html and "-    return 42" in html and "+    return 43" in html
    assert "return 41" not in html and '<span class="mi">43</span>' in html
    assert '<span class="mi">42</span>' not in html


@pytest.mark.parametrize("policy", ["review: {blind: true}\n"])
def test_a_diff_staff_saw_with_the_learner_name_reaches_a_blind_reviewer_redacted(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    for number in (1, 2):
        files = {"zelda/app.py": f"# by Zelda Quigley\nx = {number}\n", "README.md": "# App\n"}
        graded(client, learner, queue, loaded, settings, files)
    _, second = tasks(loaded)
    log_in(client, reviewer(loaded, "stella", staff=True))
    claim(client, second.id)
    staff_page = client.get(f"/review/tasks/{second.id}").get_data(as_text=True)
    assert "zelda/app.py" in staff_page and " # by Zelda Quigley" in staff_page and "+x = 2" in staff_page
    client.post(f"/review/tasks/{second.id}/release", data={"csrf_token": csrf_token(staff_page)})
    client.post("/logout", data={"csrf_token": csrf_token(staff_page)})

    log_in(client, reviewer(loaded, "rui"))
    claim(client, second.id)
    blind_page = client.get(f"/review/tasks/{second.id}").get_data(as_text=True)
    assert "zelda" not in blind_page.lower() and "quigley" not in blind_page.lower()
    assert "[learner]/app.py" in blind_page and " # by [learner]" in blind_page and "+x = 2" in blind_page


def test_a_content_cache_keeps_the_most_recent_within_its_entries_and_its_weight() -> None:
    cache: ContentCache[str, str] = ContentCache(entries=3, budget=10, weigh=len)
    for key in "abc":
        cache.put(key, key * 2)
    assert cache.get("a") == "aa"  # now the most recent
    cache.put("d", "dd")
    assert cache.get("b") is None and [cache.get(k) for k in "acd"] == ["aa", "cc", "dd"]
    assert (len(cache), cache.weight) == (3, 6)

    cache.put("e", "eeeeee")  # 12 in all: the least recently used go until it fits
    assert cache.weight <= 10 and cache.get("e") == "eeeeee" and cache.get("a") is None
    assert cache.put("f", "f" * 11) == "f" * 11  # heavier than the whole budget: given back, not kept
    assert cache.get("f") is None and cache.get("e") == "eeeeee"
    cache.clear()
    assert (len(cache), cache.weight, cache.get("e")) == (0, 0, None)


def test_highlighting_is_kept_per_content_and_bounded_and_lexers_are_chosen_by_name() -> None:
    first = code.highlight_lines("a/app.py", "x = 1\n")
    assert code.highlight_lines("b/other.py", "x = 1\n") is first  # same content, same lexer: one entry
    changed = code.highlight_lines("a/app.py", "x = 2\n")
    assert changed.language == "Python" and '<span class="mi">2</span>' in changed.lines[0]
    plain = code.highlight_lines("notes.unknown-kind", "x = 1\n")
    assert plain.language == "Text only" and plain.lines == ("x = 1",)
    for number in range(code.CACHE_ENTRIES + 20):
        code.highlight_lines("n.py", f"n = {number}\n")
    assert len(code._cache) == code.CACHE_ENTRIES
    assert code.highlight_lines("a/app.py", "x = 1\n") is not first  # forgotten, highlighted again
