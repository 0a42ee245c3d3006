"""Reading a catalog folder into validated definitions, reporting every problem as `file:line: msg`.

Layout of a catalog folder:

    programs/<slug>.yaml                  a program and its requirements
    assessments/<slug>.yaml               a quiz or a portfolio
    assessments/<slug>/assessment.yaml    a repository assignment, with its tests/, reference/, starter/
    rubrics/<slug>.yaml                   a rubric

Nothing here touches the database: `read_catalog` either returns a whole valid `Catalog` or raises
`CatalogError` listing every problem, so a broken catalog never half-loads.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from grader.catalog.bundle import Bundle, ExpectedTests
from grader.catalog.schema import (
    AssessmentDefinition,
    CommandSuite,
    Layout,
    PortfolioAssessment,
    ProgramDefinition,
    PytestSuite,
    QuizAssessment,
    RepositoryAssessment,
)
from grader.errors import CatalogError
from rubrics import RubricError, load_rubric_text
from rubrics.source import (
    LocatedDocument,
    Problem,
    SourceError,
    load_located,
    problems_from_pydantic,
)

# Hidden tests and grader files travel inside the stored definition (see grader.catalog.bundle) so any
# worker host can grade without access to the catalog folder; this caps what one assessment may carry.
MAX_BUNDLE_BYTES = 5 * 1024 * 1024
BUNDLED_FOLDERS_KEY = "bundle"
# The tests the reference solution produced when `grader catalog check` ran it (expected_tests.json).
EXPECTED_TESTS_KEY = "expected_tests"
EXPECTED_TESTS_FILE = "expected_tests.json"

_assessment_adapter: TypeAdapter[AssessmentDefinition] = TypeAdapter(AssessmentDefinition)


@dataclass(frozen=True)
class CatalogEntry:
    """One validated file: its definition, where it came from and a hash of its content."""

    slug: str
    source: str
    data: dict[str, Any]
    content_hash: str
    document: LocatedDocument = field(compare=False, repr=False)


@dataclass(frozen=True)
class AssessmentEntry(CatalogEntry):
    definition: AssessmentDefinition
    folder: Path | None


@dataclass(frozen=True)
class ProgramEntry(CatalogEntry):
    definition: ProgramDefinition


@dataclass(frozen=True)
class Catalog:
    root: Path
    rubrics: dict[str, CatalogEntry]
    assessments: dict[str, AssessmentEntry]
    programs: dict[str, ProgramEntry]


def content_hash(data: Any) -> str:
    """SHA-256 of a canonical JSON dump: the same content always hashes the same."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_catalog(root: Path) -> Catalog:
    """Validate a whole catalog folder; raise `CatalogError` with every problem found."""
    problems: list[Problem] = []
    root = root.resolve()
    if not root.is_dir():
        raise CatalogError([f"{root}:1: not a catalog folder"])
    rubrics = _read_rubrics(root, problems)
    assessments = _read_assessments(root, problems)
    programs = _read_programs(root, problems)
    _check_references(rubrics, assessments, programs, problems)
    if problems:
        raise CatalogError([str(p) for p in sorted(problems, key=lambda p: (p.source, p.line))])
    return Catalog(root=root, rubrics=rubrics, assessments=assessments, programs=programs)


def _relative(root: Path, path: Path) -> str:
    """The path as the person running the check typed it: relative to the working directory."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _yaml_files(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from sorted(p for p in folder.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())


def _located(path: Path, source: str, problems: list[Problem]) -> LocatedDocument | None:
    try:
        document = load_located(path.read_text(encoding="utf-8"), source)
    except UnicodeDecodeError:
        problems.append(Problem(source, 1, "file is not UTF-8 text"))
        return None
    except SourceError as exc:
        problems.extend(exc.problems)
        return None
    if not isinstance(document.data, dict):
        problems.append(Problem(source, 1, "expected a mapping at the top of the file"))
        return None
    return document


def _check_slug(document: LocatedDocument, expected: str, problems: list[Problem]) -> None:
    slug = document.data.get("slug", document.data.get("id"))
    key = "slug" if "slug" in document.data else "id"
    if isinstance(slug, str) and slug != expected:
        problems.append(document.problem((key,), f"{key} {slug!r} does not match the file name {expected!r}"))


def _read_rubrics(root: Path, problems: list[Problem]) -> dict[str, CatalogEntry]:
    rubrics: dict[str, CatalogEntry] = {}
    for path in _yaml_files(root / "rubrics"):
        source = _relative(root, path)
        document = _located(path, source, problems)
        if document is None:
            continue
        try:
            load_rubric_text(path.read_text(encoding="utf-8"), source)
        except RubricError as exc:
            problems.extend(exc.problems)
            continue
        _check_slug(document, path.stem, problems)
        rubrics[path.stem] = CatalogEntry(
            slug=path.stem,
            source=source,
            data=document.data,
            content_hash=content_hash(document.data),
            document=document,
        )
    return rubrics


def _read_assessments(root: Path, problems: list[Problem]) -> dict[str, AssessmentEntry]:
    assessments: dict[str, AssessmentEntry] = {}
    folder = root / "assessments"
    candidates: list[tuple[str, Path, Path | None]] = [(p.stem, p, None) for p in _yaml_files(folder)]
    if folder.is_dir():
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            main = sub / "assessment.yaml"
            if main.is_file():
                candidates.append((sub.name, main, sub))
            else:
                problems.append(Problem(_relative(root, sub), 1, "folder has no assessment.yaml"))
    for slug, path, subfolder in candidates:
        source = _relative(root, path)
        if slug in assessments:
            problems.append(Problem(source, 1, f"assessment {slug!r} is defined twice"))
            continue
        document = _located(path, source, problems)
        if document is None:
            continue
        try:
            definition = _assessment_adapter.validate_python(document.data)
        except ValidationError as exc:
            problems.extend(problems_from_pydantic(document, exc.errors()))
            continue
        _check_slug(document, slug, problems)
        data = dict(document.data)
        if isinstance(definition, RepositoryAssessment):
            if subfolder is None:
                problems.append(
                    document.problem(
                        ("kind",),
                        "a repository assessment lives in its own folder: assessments/<slug>/assessment.yaml",
                    )
                )
                continue
            bundle = _bundle(subfolder, definition, document, problems)
            if bundle is None:
                continue
            data[BUNDLED_FOLDERS_KEY] = bundle
            expected = _expected_tests(subfolder, definition, source, problems)
            if expected is not None:
                data[EXPECTED_TESTS_KEY] = expected
        assessments[slug] = AssessmentEntry(
            slug=slug,
            source=source,
            data=data,
            content_hash=content_hash(data),
            document=document,
            definition=definition,
            folder=subfolder,
        )
    return assessments


def _bundle(
    folder: Path,
    definition: RepositoryAssessment,
    document: LocatedDocument,
    problems: list[Problem],
) -> dict[str, Any] | None:
    """Every file the worker needs (hidden tests, grader files, reference, starter), keyed by path
    relative to the assessment folder; a suite's `path` may name a folder or a .zip of one."""
    wanted: list[tuple[tuple[str | int, ...], str]] = []
    for index, suite in enumerate(definition.tests):
        path = getattr(suite, "path", None)
        if path is not None:
            wanted.append((("tests", index, "path"), path))
    for key in ("reference", "starter"):
        wanted.append(((key,), getattr(definition, key)))
    files: dict[str, bytes] = {}
    ok = True
    for loc, relative in wanted:
        target = (folder / relative).resolve()
        if not target.is_relative_to(folder.resolve()):
            problems.append(document.problem(loc, f"{relative!r} is outside the assessment folder"))
            ok = False
        elif target.is_file() and target.suffix == ".zip":
            try:
                files.update(_zip_members(target, relative.rstrip("/")))
            except ValueError as exc:
                problems.append(document.problem(loc, f"{relative}: {exc}"))
                ok = False
        elif target.is_dir():
            for file in sorted(target.rglob("*")):
                if file.is_file() and not file.is_symlink() and "__pycache__" not in file.parts:
                    files[str(file.relative_to(folder))] = file.read_bytes()
        else:
            problems.append(
                document.problem(loc, f"{relative!r} is neither a folder nor a .zip in {folder.name}/")
            )
            ok = False
    if sum(len(data) for data in files.values()) > MAX_BUNDLE_BYTES:
        problems.append(document.problem((), f"the assessment's files exceed {MAX_BUNDLE_BYTES} bytes"))
        ok = False
    bundle = Bundle(files)
    for index, suite in enumerate(definition.tests):
        if not isinstance(suite, CommandSuite):
            continue
        grader_files = bundle.under(suite.folder)
        if suite.setup is not None and suite.setup not in grader_files:
            problems.append(
                document.problem(("tests", index, "setup"), f"{suite.setup!r} is not among the grader files")
            )
            ok = False
        entry_missing = suite.command is None and "run_autograder" not in grader_files
        if suite.layout is Layout.GRADESCOPE and entry_missing:
            problems.append(
                document.problem(
                    ("tests", index, "path"),
                    f"{suite.path} has no run_autograder, the entry point of a Gradescope autograder",
                )
            )
            ok = False
    return bundle.to_stored() if ok else None


def _zip_members(archive: Path, prefix: str) -> dict[str, bytes]:
    """The regular files of a course team's zip (an autograder as uploaded to Gradescope), keyed
    under the zip's own path without `.zip`; paths that climb out or are absolute are refused."""
    folder = prefix.removesuffix(".zip")
    members: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(archive) as bundle:
            total = 0
            for info in bundle.infolist():
                name = info.filename
                if info.is_dir() or name.startswith("__MACOSX/") or "__pycache__" in name.split("/"):
                    continue
                parts = name.split("/")
                if name.startswith("/") or ".." in parts or "\\" in name:
                    raise ValueError(f"the zip holds {name!r}, a path outside its folder")
                total += info.file_size
                if total > MAX_BUNDLE_BYTES:
                    raise ValueError(f"the zip unpacks to more than {MAX_BUNDLE_BYTES} bytes")
                members[f"{folder}/{name}"] = bundle.read(info)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"not a readable zip file: {exc}") from None
    return members


def _expected_tests(
    folder: Path, definition: RepositoryAssessment, source: str, problems: list[Problem]
) -> dict[str, Any] | None:
    path = folder / EXPECTED_TESTS_FILE
    if not path.is_file():
        return None
    where = str(Path(source).parent / EXPECTED_TESTS_FILE)
    pytest_folders = {s.id: s.path for s in definition.tests if isinstance(s, PytestSuite)}
    try:
        expected = ExpectedTests.from_file_data(json.loads(path.read_text(encoding="utf-8")), pytest_folders)
    except (ValueError, UnicodeDecodeError) as exc:
        problems.append(Problem(where, 1, f"not valid: {exc}; run grader catalog check to write it again"))
        return None
    return expected.to_file_data()


def _read_programs(root: Path, problems: list[Problem]) -> dict[str, ProgramEntry]:
    programs: dict[str, ProgramEntry] = {}
    for path in _yaml_files(root / "programs"):
        source = _relative(root, path)
        document = _located(path, source, problems)
        if document is None:
            continue
        try:
            definition = ProgramDefinition.model_validate(document.data)
        except ValidationError as exc:
            problems.extend(problems_from_pydantic(document, exc.errors()))
            continue
        _check_slug(document, path.stem, problems)
        programs[path.stem] = ProgramEntry(
            slug=path.stem,
            source=source,
            data=document.data,
            content_hash=content_hash(document.data),
            document=document,
            definition=definition,
        )
    return programs


def _check_references(
    rubrics: dict[str, CatalogEntry],
    assessments: dict[str, AssessmentEntry],
    programs: dict[str, ProgramEntry],
    problems: list[Problem],
) -> None:
    for entry in assessments.values():
        definition = entry.definition
        if (
            isinstance(definition, RepositoryAssessment | PortfolioAssessment)
            and definition.rubric not in rubrics
        ):
            problems.append(_problem_at(entry, ("rubric",), f"unknown rubric {definition.rubric!r}"))
        elif isinstance(definition, PortfolioAssessment):
            _check_slot_criteria(entry, definition, rubrics[definition.rubric], problems)
    for program in programs.values():
        for index, requirement in enumerate(program.definition.requirements):
            target = assessments.get(requirement.assessment)
            loc = ("requirements", index, "assessment")
            if target is None:
                problems.append(_problem_at(program, loc, f"unknown assessment {requirement.assessment!r}"))
                continue
            quiz = target.definition
            if (
                isinstance(quiz, QuizAssessment)
                and requirement.min_score is not None
                and requirement.min_score < quiz.pass_mark
            ):
                problems.append(
                    _problem_at(
                        program,
                        ("requirements", index, "min_score"),
                        f"min_score {requirement.min_score} is below the quiz's own pass mark "
                        f"{quiz.pass_mark}: a learner who passes the requirement would fail the quiz",
                    )
                )


def _check_slot_criteria(
    entry: AssessmentEntry, portfolio: PortfolioAssessment, rubric: CatalogEntry, problems: list[Problem]
) -> None:
    """Each slot's criteria must be criteria of the portfolio's rubric."""
    known = {c.get("id") for c in rubric.data.get("criteria", []) if isinstance(c, dict)}
    groups = (
        ("artifacts", portfolio.artifacts),
        ("links", portfolio.links),
        ("statements", portfolio.statements),
    )
    for field_name, slots in groups:
        for index, slot in enumerate(slots):
            for position, criterion in enumerate(slot.criteria):
                if criterion not in known:
                    problems.append(
                        _problem_at(
                            entry,
                            (field_name, index, "criteria", position),
                            f"{slot.id}: {criterion!r} is not a criterion of rubric {portfolio.rubric!r} "
                            f"(it has {', '.join(sorted(str(k) for k in known))})",
                        )
                    )


def _problem_at(entry: CatalogEntry, loc: tuple[str | int, ...], message: str) -> Problem:
    return entry.document.problem(loc, message)
