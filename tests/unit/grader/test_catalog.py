"""The catalog check reports every problem as file:line: message; load is idempotent and versioned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog.loader import read_catalog
from grader.errors import CatalogError
from grader.models import Assessment, AssessmentVersion, Program
from grader.services.catalog import load_catalog
from tests.support.catalogs import BASICS_QUIZ, OTHER_PROGRAM, PROGRAM, TIMED_QUIZ, write_catalog

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "examples" / "catalog"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # problems name files relative to where the check runs


def problems_of(tmp_path: Path, files: dict[str, str]) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        read_catalog(write_catalog(tmp_path / "c", files))
    return caught.value.problems


def test_sample_catalog_is_valid() -> None:
    catalog = read_catalog(SAMPLE)
    assert set(catalog.programs) == {"python-web-developer", "supply-chain-management"}
    kinds = {a.definition.kind for a in catalog.assessments.values()}
    assert kinds == {"quiz", "repository", "portfolio"}


def test_cli_check_prints_problems_with_lines_and_exits_1(tmp_path: Path) -> None:
    broken = BASICS_QUIZ.replace("pass_mark: 0.75", "pass_mark: 1.5").replace("answer: b\n", "answer: z\n")
    catalog = write_catalog(tmp_path / "c", {"assessments/basics.yaml": broken})
    result = subprocess.run(
        [sys.executable, "-m", "grader.entrypoints.cli", "catalog", "check", str(catalog)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any(line.startswith("c/assessments/basics.yaml:4: pass_mark") for line in lines), lines
    assert "Traceback" not in result.stderr


def test_each_kind_of_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    files = {
        "assessments/basics.yaml": BASICS_QUIZ.replace(
            "title: HTTP basics", "title: HTTP basics\ncolour: red"
        ),
        "assessments/timed.yaml": TIMED_QUIZ.replace("draw: 2", "draw: 9"),
        "assessments/dupe.yaml": BASICS_QUIZ.replace("slug: basics", "slug: dupe").replace(
            "id: port", "id: header"
        ),
        "assessments/broken.yaml": "slug: broken\nkind: quiz\n  title: [unclosed\n",
        "programs/test-program.yaml": PROGRAM.replace("- assessment: timed", "- assessment: ghost"),
    }
    problems = problems_of(tmp_path, files)
    joined = "\n".join(problems)
    assert "c/assessments/basics.yaml:4: " in joined and "colour" in joined
    assert "c/assessments/timed.yaml:" in joined and "draw is 9" in joined
    assert "c/assessments/dupe.yaml:" in joined and "used twice" in joined
    assert "c/assessments/broken.yaml:3: invalid YAML" in joined
    assert "c/programs/test-program.yaml:10: " in joined and "unknown assessment 'ghost'" in joined
    assert "c/programs/test-program.yaml:9: unknown assessment 'basics'" in joined  # basics was invalid
    assert all(p.split(":", 2)[1].isdigit() for p in problems)


def test_requirement_below_the_quiz_pass_mark_is_impossible(tmp_path: Path) -> None:
    lowered = OTHER_PROGRAM.replace("- assessment: basics", "- assessment: basics\n    min_score: 0.5")
    problems = problems_of(
        tmp_path, {"assessments/basics.yaml": BASICS_QUIZ, "programs/other-program.yaml": lowered}
    )
    assert len(problems) == 1
    assert problems[0].startswith(
        "c/programs/other-program.yaml:7: min_score 0.5 is below the quiz's own pass mark"
    )


def test_slug_must_match_file_name(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, {"assessments/other-name.yaml": BASICS_QUIZ})
    assert problems == [
        "c/assessments/other-name.yaml:1: slug 'basics' does not match the file name 'other-name'"
    ]


def test_a_catalog_with_errors_loads_nothing(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    catalog = write_catalog(tmp_path / "c", {"programs/test-program.yaml": PROGRAM})
    result = subprocess.run(
        [sys.executable, "-m", "grader.entrypoints.cli", "catalog", "load", str(catalog)],
        capture_output=True,
        text=True,
        env={"GRADER_DATA_DIR": str(tmp_path / "var"), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1 and "unknown assessment 'basics'" in result.stderr
    with sessions() as session:
        assert session.scalar(select(func.count(Program.id))) == 0


def test_load_is_idempotent_and_versions_changed_content(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    root = write_catalog(tmp_path / "c")
    with sessions() as session, session.begin():
        first = load_catalog(session, read_catalog(root))
    with sessions() as session, session.begin():
        again = load_catalog(session, read_catalog(root))
    assert len(first.created) == 4 and again.created == [] and again.new_versions == []
    (root / "assessments/basics.yaml").write_text(BASICS_QUIZ.replace("pass_mark: 0.75", "pass_mark: 0.8"))
    with sessions() as session, session.begin():
        changed = load_catalog(session, read_catalog(root))
    assert changed.new_versions == ["assessment basics v2"]
    with sessions() as session:
        basics = session.scalars(select(Assessment).where(Assessment.slug == "basics")).one()
        assert basics.current_version == 2
        assert session.scalar(select(func.count(AssessmentVersion.id))) == 3


def test_main_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "grader.entrypoints.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "catalog" in result.stdout


def test_unquoted_yaml_dates_are_read_as_the_dates_they_are(tmp_path: Path) -> None:
    timed = BASICS_QUIZ.replace("shuffle: false", "shuffle: false\ndue: 2030-01-01T00:00:00Z")
    catalog = read_catalog(write_catalog(tmp_path / "c", {"assessments/basics.yaml": timed}))
    due = catalog.assessments["basics"].definition.due
    assert due is not None and due.isoformat() == "2030-01-01T00:00:00+00:00"


def test_yaml_scalars_that_are_no_json_are_reported_where_written(tmp_path: Path) -> None:
    odd = BASICS_QUIZ.replace(
        "shuffle: false",
        "shuffle: false\ndescription: !!binary aGVsbG8=\nyes: 1\n",
    ).replace("pass_mark: 0.75", "pass_mark: .nan")
    problems = problems_of(tmp_path, {"assessments/basics.yaml": odd})
    joined = "\n".join(problems)
    assert "c/assessments/basics.yaml:4: pass_mark: nan is not a finite number" in joined
    assert "c/assessments/basics.yaml:6: description: binary data (!!binary) is not allowed" in joined
    assert (
        "c/assessments/basics.yaml:7: the key True is read by YAML as a bool, not as text: quote it" in joined
    )


def test_a_due_date_without_a_time_zone_is_refused_with_its_line(tmp_path: Path) -> None:
    dated = BASICS_QUIZ.replace("shuffle: false", "shuffle: false\ndue: 2030-01-01")
    problems = problems_of(tmp_path, {"assessments/basics.yaml": dated})
    assert len(problems) == 1 and problems[0].startswith("c/assessments/basics.yaml:6: due")
    assert "time zone" in problems[0]


PORTFOLIO_RUBRIC = """\
id: showcase-review
title: Showcase review
pass_mark: 0.5
criteria:
  - id: evidence
    title: Evidence
    manual: true
    levels:
      - {label: missing, points: 0}
      - {label: shown, points: 2}
"""

PORTFOLIO = """\
slug: showcase
kind: portfolio
title: Showcase
description: Show your work.
rubric: showcase-review
artifacts:
  - id: report
    title: Report
    types: [pdf, markdown]
    max_files: 2
    criteria: [evidence]
links:
  - id: repo
    title: Repository
    hosts: [github.com]
    criteria: [evidence]
statements:
  - id: reflection
    title: Reflection
    prompt: What would you do differently?
    min_words: 50
    max_words: 300
    criteria: [evidence]
"""


def test_a_portfolio_declares_files_links_and_statements_serving_criteria(tmp_path: Path) -> None:
    files = {"rubrics/showcase-review.yaml": PORTFOLIO_RUBRIC, "assessments/showcase.yaml": PORTFOLIO}
    catalog = read_catalog(write_catalog(tmp_path / "c", files))
    portfolio = catalog.assessments["showcase"].definition
    assert portfolio.kind == "portfolio"
    assert [slot.id for slot in portfolio.slots] == ["report", "repo", "reflection"]
    assert portfolio.artifacts[0].max_files == 2 and portfolio.artifacts[0].max_bytes == 10 * 1024 * 1024
    assert portfolio.links[0].schemes == ["https"]
    assert portfolio.statements[0].prompt == "What would you do differently?"


def test_portfolio_slot_mistakes_are_reported_where_written(tmp_path: Path) -> None:
    broken = (
        PORTFOLIO.replace("    criteria: [evidence]\nlinks:", "    criteria: [evidance]\nlinks:")
        .replace("min_words: 50", "min_words: 400")
        .replace("types: [pdf, markdown]", "types: [pdf, exe]")
    )
    files = {"rubrics/showcase-review.yaml": PORTFOLIO_RUBRIC, "assessments/showcase.yaml": broken}
    joined = "\n".join(problems_of(tmp_path, files))
    assert "c/assessments/showcase.yaml:9: artifacts[0].types[1]: " in joined and "'pdf'" in joined
    assert "c/assessments/showcase.yaml:18: " in joined and "min_words 400 is above max_words 300" in joined
    repeated = {"assessments/showcase.yaml": PORTFOLIO.replace("id: repo\n", "id: report\n")}
    joined = "\n".join(problems_of(tmp_path, {"rubrics/showcase-review.yaml": PORTFOLIO_RUBRIC, **repeated}))
    assert "ids must be unique: report repeat" in joined


def test_a_slot_serving_a_criterion_the_rubric_lacks_is_reported(tmp_path: Path) -> None:
    broken = PORTFOLIO.replace("    criteria: [evidence]\nlinks:", "    criteria: [evidance]\nlinks:")
    files = {"rubrics/showcase-review.yaml": PORTFOLIO_RUBRIC, "assessments/showcase.yaml": broken}
    problems = problems_of(tmp_path, files)
    assert any(
        p.startswith("c/assessments/showcase.yaml:11: ") and "'evidance' is not a criterion" in p
        for p in problems
    ), problems


def test_credential_alignments_need_an_https_address_and_validity_a_positive_length(tmp_path: Path) -> None:
    aligned = PROGRAM.replace(
        "  criteria: Pass both quizzes.\n",
        "  criteria: Pass both quizzes.\n"
        "  alignments:\n"
        "    - {name: Testing, url: 'http://skills.example/testing'}\n"
        "  valid_for_days: 0\n",
    )
    problems = problems_of(
        tmp_path,
        {
            "assessments/basics.yaml": BASICS_QUIZ,
            "assessments/timed.yaml": TIMED_QUIZ,
            "programs/test-program.yaml": aligned,
        },
    )
    joined = "\n".join(problems)
    assert len(problems) == 2, joined
    assert "credential.alignments[0].url: an alignment's url must be an https:// address" in joined
    assert "credential.valid_for_days: Input should be greater than 0" in joined
    assert all(p.startswith(str(Path("c/programs/test-program.yaml"))) for p in problems)


def test_the_sample_check_marks_only_the_test_behind_the_slow_fixture_as_slow() -> None:
    from grader.kinds.repository import expected_tests

    entry = read_catalog(SAMPLE).assessments["wsgi-todo-api"]
    expected = expected_tests(entry.definition, entry.data)  # type: ignore[arg-type]
    assert expected is not None
    slow = [t.id for t in expected.for_suite("hidden") or () if t.slow]
    assert slow == ["tests/test_todo_api.py::test_pagination_walks_every_item"]


def test_a_slow_mark_that_is_not_true_or_false_is_reported(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "c"
    shutil.copytree(SAMPLE, root)
    path = root / "assessments" / "wsgi-todo-api" / "expected_tests.json"
    path.write_text(path.read_text().replace('"slow": true', '"slow": "yes"'))
    with pytest.raises(CatalogError) as caught:
        read_catalog(root)
    assert any(
        "wsgi-todo-api/expected_tests.json:1: not valid: suites.hidden[" in p
        and "slow must be true or false" in p
        for p in caught.value.problems
    ), caught.value.problems
