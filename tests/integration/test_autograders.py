"""Existing autograders, unchanged: Gradescope- and PrairieLearn-style graders through `command` suites.

Each autograder is written here from the platform's published contract (Gradescope: `setup.sh`,
`run_autograder`, `/autograder/{source,submission,results}`, results.json with weights, numbers,
tags and every visibility; PrairieLearn: `/grade/{tests,student,data,results}`, a fractional score,
`gradable`), shipped as a course team would ship it (a folder, or a zip with a binary file in it),
checked by `grader catalog check` against its reference, then graded in the real sandbox on both
backends: the reference gets full marks, a broken copy loses exactly the points of the tests it
breaks, and a copy that makes tests vanish gets nothing for them.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog.bundle import Bundle
from grader.catalog.loader import BUNDLED_FOLDERS_KEY, Catalog, read_catalog
from grader.catalog.schema import RepositoryAssessment
from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.kinds import default_graders
from grader.kinds.repository import RepositoryGrader, expected_tests
from grader.models import Extension, GradeOutcome, Result, Submission, utcnow
from grader.services.grading import process_run
from grader.services.images import build_setup_image, setup_image
from grader.services.repository import RepositoryGrading, RepositoryReport
from grader.services.trial import check_autograders
from sandbox.contract import Runner
from tests.conftest import Account, bearer, make_account
from tests.sandbox.conftest import BACKENDS
from tests.support.catalogs import write_catalog
from tests.support.sandboxes import make_runner

FIXTURE = bytes(range(256)) * 4  # a binary file the course team ships with its grader
FIXTURE_SHA = hashlib.sha256(FIXTURE).hexdigest()

GRADESCOPE_GRADER = f"""\
import hashlib, json, os, sys

sys.path.insert(0, "/autograder/submission")
results = []


def test(name, points, number, check, visibility="visible", tags=()):
    try:
        ok, output = bool(check()), ""
    except Exception as error:
        ok, output = False, f"{{type(error).__name__}}: {{error}}"
    results.append({{"name": name, "score": points if ok else 0, "max_score": points, "number": number,
                    "visibility": visibility, "tags": list(tags), "output": output}})


try:
    from solution import add, sub
except Exception as error:
    add = sub = None

test("adds", 4, "1.1", lambda: add(2, 3) == 5, tags=["arithmetic"])
test("adds negatives", 2, "1.10", lambda: add(-2, -3) == -5, visibility="after_published")
test("subtracts", 3, "1.2", lambda: sub(5, 3) == 2, visibility="after_due_date")
test("the fixture is intact", 1, "2", lambda: hashlib.sha256(open("fixture.bin", "rb").read()).hexdigest()
     == "{FIXTURE_SHA}", visibility="hidden")
test("the setup ran at build time", 2, "3", lambda: open("/usr/local/share/adder/built").read() == "yes\\n")
json.dump({{"tests": results, "output": "graded 5 tests"}}, open("/autograder/results/results.json", "w"))
"""
RUN_AUTOGRADER = "#!/bin/sh\n# Gradescope's entry point\ncd /autograder/source && exec python3 grade.py\n"
SETUP_SH = "#!/bin/bash\nset -e\nmkdir -p /usr/local/share/adder\necho yes > /usr/local/share/adder/built\n"

PRAIRIELEARN_GRADER = """\
import json, os, sys

results = {"gradable": True, "tests": []}
if not os.path.exists("/grade/student/solution.py"):
    results = {"gradable": False, "format_errors": ["solution.py is missing: name your file solution.py"]}
else:
    sys.path.insert(0, "/grade/student")
    from solution import add, sub
    checks = [("adds", 2, lambda: add(2, 3) == 5), ("subtracts", 2, lambda: sub(5, 3) == 2)]
    for name, points, check in checks:
        try:
            ok = bool(check())
        except Exception:
            ok = False
        results["tests"].append({"name": name, "points": points if ok else 0, "max_points": points})
    earned = sum(t["points"] for t in results["tests"])
    results["score"] = earned / sum(t["max_points"] for t in results["tests"])
    results["message"] = f"{earned} points"
os.makedirs("/grade/results", exist_ok=True)
json.dump(results, open("/grade/results/results.json", "w"))
"""

HONEST = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
BROKEN_SUB = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return b - a\n"
# Broken `sub`, and at import it swaps the grader's `test` for one that drops failing tests.
VANISHING = (
    BROKEN_SUB
    + """
import __main__

_real_test = __main__.test


def _only_passing(name, points, number, check, visibility="visible", tags=()):
    try:
        if not check():
            return
    except Exception:
        return
    _real_test(name, points, number, check, visibility, tags)


__main__.test = _only_passing
"""
)
STARTER = "def add(a, b):\n    return 0\n\n\ndef sub(a, b):\n    return 0\n"


def assessment_yaml(slug: str, suite: str) -> str:
    return (
        f"slug: {slug}\nkind: repository\ntitle: Adder ({slug})\nrubric: automated-tests\n"
        f"learner_files: ['**/*.py']\nattempts: {{max: 2}}\nlimits: {{wall_seconds: 20}}\ntests:\n{suite}"
    )


def gradescope_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in (
            ("setup.sh", SETUP_SH.encode()),
            ("run_autograder", RUN_AUTOGRADER.encode()),
            ("grade.py", GRADESCOPE_GRADER.encode()),
            ("fixture.bin", FIXTURE),
        ):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            bundle.writestr(info, data)
    return buffer.getvalue()


def write_autograder_catalog(root: Path) -> Path:
    rubric = (
        "id: automated-tests\ntitle: Automated tests\npass_mark: 0.8\ncriteria:\n"
        "  - {id: tests, title: Tests, auto: {kind: test_points}, max_points: 100}\n"
    )
    files: dict[str, str] = {"rubrics/automated-tests.yaml": rubric}
    suites = {
        "adder-gradescope": "  - {kind: command, id: autograder, layout: gradescope, path: autograder.zip, "
        "setup: setup.sh, max_points: 12}\n",
        "adder-prairielearn": "  - {kind: command, id: autograder, layout: prairielearn, path: tests, "
        "command: [python3, /grade/tests/grade.py]}\n",
        "adder-broken-grader": "  - {kind: command, id: autograder, layout: plain, path: grader, "
        "command: [sh, grader/run.sh], max_points: 5}\n",
    }
    for slug, suite in suites.items():
        folder = f"assessments/{slug}"
        files[f"{folder}/assessment.yaml"] = assessment_yaml(slug, suite)
        files[f"{folder}/reference/solution.py"] = HONEST
        files[f"{folder}/starter/solution.py"] = STARTER
    files["assessments/adder-prairielearn/tests/grade.py"] = PRAIRIELEARN_GRADER
    files["assessments/adder-broken-grader/grader/run.sh"] = "echo the grader writes results later >&2\n"
    program = (
        "slug: adders\ntitle: Adders\ndescription: Autograders.\n"
        "credential: {name: Adders, description: Adders., criteria: Pass them.}\nrequirements:\n"
        + "".join(f"  - assessment: {slug}\n" for slug in suites)
    )
    files["programs/adders.yaml"] = program
    write_catalog(root, files)
    (root / "assessments/adder-gradescope/autograder.zip").write_bytes(gradescope_zip())
    return root


@pytest.fixture(scope="module")
def autograder_catalog(tmp_path_factory: pytest.TempPathFactory, sandbox_ready: None) -> Iterator[Catalog]:
    """The catalog, its setup image built on both backends and its tests pinned by the reference.
    The broken grader cannot pass the check: its expected tests are written by hand (none)."""
    root = write_autograder_catalog(tmp_path_factory.mktemp("autograders") / "catalog")
    settings = Settings(data_dir=root.parent / "var", secret_key="test")
    entry = read_catalog(root).assessments["adder-gradescope"]
    assert isinstance(entry.definition, RepositoryAssessment)
    image = setup_image(
        entry.definition, Bundle.from_stored(entry.data[BUNDLED_FOLDERS_KEY]), settings.sandbox_image
    )
    assert image is not None
    for backend in ("bwrap", "docker"):
        build_setup_image(settings, backend, image)
    checks = check_autograders(read_catalog(root), make_runner("bwrap"), settings=settings)
    problems = {c.slug: c.problems for c in checks}
    assert problems["adder-gradescope"] == () and problems["adder-prairielearn"] == (), problems
    assert problems["adder-broken-grader"], "a grader that writes no results must not pass the check"
    (root / "assessments/adder-broken-grader/expected_tests.json").write_text(
        '{"format": 2, "suites": {"autograder": []}}'
    )
    yield read_catalog(root)


@pytest.fixture(params=BACKENDS, scope="module")
def backend_runner(request: pytest.FixtureRequest, sandbox_ready: None) -> Runner:
    return make_runner(request.param)


def grade(
    catalog: Catalog, runner: Runner, slug: str, files: dict[str, str], tmp_path: Path
) -> RepositoryReport:
    entry = catalog.assessments[slug]
    assert isinstance(entry.definition, RepositoryAssessment)
    bundle = Bundle.from_stored(entry.data[BUNDLED_FOLDERS_KEY])
    image = setup_image(entry.definition, bundle, Settings().sandbox_image)
    tree = tmp_path / "work"
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    grading = RepositoryGrading(runner, image=image.reference if image else None)
    return grading.run(entry.definition, bundle, tree, expected_tests(entry.definition, entry.data))


def points(report: RepositoryReport) -> dict[str, float]:
    return {t.id.split("::", 1)[1]: t.points for t in report.tests}


def test_the_reference_check_pins_every_test_with_its_maximum(autograder_catalog: Catalog) -> None:
    expected = expected_tests(
        autograder_catalog.assessments["adder-gradescope"].definition,  # type: ignore[arg-type]
        autograder_catalog.assessments["adder-gradescope"].data,
    )
    assert expected is not None
    pinned = {t.id: t.max_points for t in expected.for_suite("autograder") or ()}
    assert pinned == {
        "autograder::adds": 4,
        "autograder::subtracts": 3,
        "autograder::adds negatives": 2,
        "autograder::the fixture is intact": 1,
        "autograder::the setup ran at build time": 2,
    }


def test_the_reference_check_marks_the_tests_slower_than_the_canary_limit(
    sandbox_ready: None, tmp_path: Path
) -> None:
    """The sample's pagination test sits behind a 1.5 s fixture: the check marks it, and only it, so
    canaries do not copy it; with `canary_max_seconds: null` nothing is marked."""
    import dataclasses
    import json
    import shutil

    root = tmp_path / "catalog"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "catalog", root)
    folder = root / "assessments" / "wsgi-todo-api"
    settings = Settings(data_dir=tmp_path / "var", secret_key="test")

    def check() -> list[str]:
        (folder / "expected_tests.json").unlink()
        catalog = read_catalog(root)
        only = dataclasses.replace(
            catalog, assessments={"wsgi-todo-api": catalog.assessments["wsgi-todo-api"]}
        )
        assert [c.problems for c in check_autograders(only, make_runner("bwrap"), settings=settings)] == [()]
        written = json.loads((folder / "expected_tests.json").read_text())
        assert len(written["suites"]["hidden"]) == 22
        return [t["id"] for t in written["suites"]["hidden"] if t.get("slow")]

    assert check() == ["tests/test_todo_api.py::test_pagination_walks_every_item"]
    definition = folder / "assessment.yaml"
    definition.write_text(
        definition.read_text().replace("    id: hidden\n", "    id: hidden\n    canary_max_seconds: null\n")
    )
    assert check() == []


def test_gradescope_reference_gets_full_marks_in_number_order(
    autograder_catalog: Catalog, backend_runner: Runner, tmp_path: Path
) -> None:
    report = grade(autograder_catalog, backend_runner, "adder-gradescope", {"solution.py": HONEST}, tmp_path)
    assert sum(points(report).values()) == 12 and all(t.passed for t in report.tests), report
    # Gradescope numbers order the tests: 1.1, 1.2, 1.10, 2, 3.
    assert [t.number for t in report.tests] == ["1.1", "1.2", "1.10", "2", "3"]
    assert {t.number: t.visibility for t in report.tests}["2"] == "hidden"
    assert next(t for t in report.tests if t.number == "1.1").tags == ("arithmetic",)
    assert [text for _, _, text in report.learner_messages] == ["graded 5 tests"]


def test_a_broken_copy_loses_exactly_the_points_of_the_tests_it_breaks(
    autograder_catalog: Catalog, backend_runner: Runner, tmp_path: Path
) -> None:
    for slug, lost in (("adder-gradescope", {"subtracts": 3}), ("adder-prairielearn", {"subtracts": 2})):
        honest = points(
            grade(autograder_catalog, backend_runner, slug, {"solution.py": HONEST}, tmp_path / "h")
        )
        broken = points(
            grade(autograder_catalog, backend_runner, slug, {"solution.py": BROKEN_SUB}, tmp_path / "b")
        )
        assert {name: honest[name] - broken[name] for name in honest if honest[name] != broken[name]} == lost


def test_tests_made_to_vanish_count_as_failed_with_their_points(
    autograder_catalog: Catalog, backend_runner: Runner, tmp_path: Path
) -> None:
    report = grade(
        autograder_catalog, backend_runner, "adder-gradescope", {"solution.py": VANISHING}, tmp_path
    )
    assert points(report)["subtracts"] == 0
    subtracts = next(t for t in report.tests if t.id.endswith("::subtracts"))
    assert not subtracts.passed and subtracts.message == "did not report a result"
    assert sum(points(report).values()) == 9  # 12 on offer: the vanished test's 3 are lost


FORGES_A_SCORE = (
    BROKEN_SUB
    + """
import json, os
# The learner's code writes the results file itself: a top-level score, and no tests.
os.makedirs("/autograder/results", exist_ok=True)
json.dump({"score": 1000000, "tests": []}, open("/autograder/results/results.json", "w"))
os._exit(0)
"""
)


def test_a_top_level_score_the_reference_never_gave_is_ignored(
    autograder_catalog: Catalog, backend_runner: Runner, tmp_path: Path
) -> None:
    report = grade(
        autograder_catalog, backend_runner, "adder-gradescope", {"solution.py": FORGES_A_SCORE}, tmp_path
    )
    assert "autograder" not in report.totals and sum(points(report).values()) == 0
    assert any("ignored a top-level score" in note for note in report.staff_notes)


def test_prairielearn_without_the_expected_file_is_not_gradable(
    autograder_catalog: Catalog, backend_runner: Runner, tmp_path: Path
) -> None:
    report = grade(autograder_catalog, backend_runner, "adder-prairielearn", {"other.py": HONEST}, tmp_path)
    assert report.not_gradable is not None and "solution.py is missing" in report.not_gradable


def test_a_grader_that_writes_no_results_is_a_grader_error_not_a_failing_test(
    autograder_catalog: Catalog, backend_runner: Runner, tmp_path: Path
) -> None:
    report = grade(
        autograder_catalog, backend_runner, "adder-broken-grader", {"solution.py": HONEST}, tmp_path
    )
    assert report.tests == () and report.grader_error is not None
    assert (
        "wrote no results" in report.grader_error and "the grader writes results later" in report.grader_error
    )


# ---------------------------------------------------------------- through the service, as a learner sees it


@pytest.fixture
def catalog_dir(settings: Settings, autograder_catalog: Catalog) -> Path:
    return autograder_catalog.root


@pytest.fixture
def adder_learner(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada@example.org", programs=("adders",))


def hand_in(client: FlaskClient, account: Account, slug: str, files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    response = client.post(
        "/api/v1/submissions",
        data={"assessment": slug, "archive": (io.BytesIO(buffer.getvalue()), "work.zip")},
        headers=bearer(account),
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])


def grade_queued(queue: RecordingQueue, loaded: sessionmaker[Session], settings: Settings) -> None:
    graders = {**default_graders(), "repository": RepositoryGrader(settings, make_runner("bwrap"))}
    while queue.sent:
        run_id, _ = queue.sent.pop(0)
        process_run(loaded, run_id, graders, worker="test", lease_seconds=60)


def test_a_grader_error_charges_no_attempt_and_tells_the_learner_it_was_not_them(
    client: FlaskClient,
    adder_learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    for _ in range(3):  # two attempts allowed, three handed in: none was charged
        submission_id = hand_in(client, adder_learner, "adder-broken-grader", {"solution.py": HONEST})
        grade_queued(queue, loaded, settings)
    learner_view = client.get(
        f"/api/v1/submissions/{submission_id}", headers=bearer(adder_learner)
    ).get_json()
    result = learner_view["result"]
    assert result["outcome"] == "grader_error" and result["charged"] is False
    assert "not because of your work" in result["feedback"]["messages"][0]
    assert "stderr" not in str(result)  # the autograder's log is for staff
    staff = make_account(loaded, "staff@example.org", role="reviewer", reviews=("adders",))
    staff_view = client.get(f"/api/v1/submissions/{submission_id}", headers=bearer(staff)).get_json()
    assert "the grader writes results later" in staff_view["result"]["feedback"]["staff"]["grader_error"]
    progress = client.get("/api/v1/programs/adders/progress", headers=bearer(adder_learner)).get_json()
    assert {r["assessment"]: r["status"] for r in progress["requirements"]}[
        "adder-broken-grader"
    ] == "not_attempted"


def test_not_gradable_charges_no_attempt_and_shows_the_format_errors(
    client: FlaskClient,
    adder_learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    submission_id = hand_in(client, adder_learner, "adder-prairielearn", {"adder.py": HONEST})
    grade_queued(queue, loaded, settings)
    result = client.get(f"/api/v1/submissions/{submission_id}", headers=bearer(adder_learner)).get_json()[
        "result"
    ]
    assert result["outcome"] == GradeOutcome.NOT_GRADABLE and result["charged"] is False
    assert any("solution.py is missing" in m for m in result["feedback"]["messages"])
    assert set(result["feedback"]) == {"messages"}  # no attempt charged, so no other feedback either
    for _ in range(2):  # both attempts are still there
        hand_in(client, adder_learner, "adder-prairielearn", {"solution.py": HONEST})
        grade_queued(queue, loaded, settings)  # graded before the next: a waiting one would be replaced
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("solution.py", HONEST)
    third = client.post(
        "/api/v1/submissions",
        data={"assessment": "adder-prairielearn", "archive": (io.BytesIO(archive.getvalue()), "work.zip")},
        headers=bearer(adder_learner),
        content_type="multipart/form-data",
    )
    assert third.status_code == 409 and third.get_json()["error"]["code"] == "attempts_exhausted"


def test_visibility_holds_back_the_total_until_due_date_and_publication(
    client: FlaskClient,
    adder_learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    with loaded() as session:  # an extension gives this learner a due date of their own, ahead
        from grader.models import Assessment

        assessment = session.scalars(select(Assessment).where(Assessment.slug == "adder-gradescope")).one()
        session.add(
            Extension(
                user_id=adder_learner.id,
                assessment_id=assessment.id,
                due_at=utcnow() + timedelta(days=1),
                granted_by="test",
            )
        )
        session.commit()
    submission_id = hand_in(client, adder_learner, "adder-gradescope", {"solution.py": HONEST})
    grade_queued(queue, loaded, settings)

    def learner_view() -> dict:  # type: ignore[type-arg]
        return client.get(f"/api/v1/submissions/{submission_id}", headers=bearer(adder_learner)).get_json()[
            "result"
        ]

    before = learner_view()
    names = {t["id"].split("::")[1] for t in before["feedback"]["tests"]}
    assert names == {
        "adds",
        "the setup ran at build time",
    }  # hidden, after_due_date, after_published withheld
    assert before["score"] is None and before["passed"] is None and "held back" in before["held_back"]
    assert "rubric" not in before["feedback"]
    progress = client.get("/api/v1/programs/adders/progress", headers=bearer(adder_learner)).get_json()
    assert {r["assessment"]: r["status"] for r in progress["requirements"]}["adder-gradescope"] == "held_back"

    with loaded() as session:  # the learner's due date passes
        extension = session.scalars(select(Extension)).one()
        extension.due_at = utcnow() - timedelta(minutes=1)
        session.commit()
    after_due = {t["id"].split("::")[1] for t in learner_view()["feedback"]["tests"]}
    assert after_due == {"adds", "subtracts", "the setup ran at build time"}
    staff = make_account(loaded, "staff@example.org", role="admin")
    assert (
        client.post("/api/v1/assessments/adder-gradescope/publish", headers=bearer(staff)).status_code == 200
    )
    published = learner_view()
    assert {t["id"].split("::")[1] for t in published["feedback"]["tests"]} == after_due | {"adds negatives"}
    # One test stays hidden for good; the total, as in Gradescope, opens once the results are published.
    assert published["score"] == 100 and published["passed"] is True and published["held_back"] is None
    staff_view = client.get(f"/api/v1/submissions/{submission_id}", headers=bearer(staff)).get_json()[
        "result"
    ]
    assert staff_view["score"] == 100 and len(staff_view["feedback"]["tests"]) == 5
    with loaded() as session:
        assert session.scalars(select(Result)).one().passed is True
        assert session.get(Submission, submission_id).charged is True  # type: ignore[union-attr]
