"""Loading a validated catalog into the database, idempotently, with versioning.

An assessment whose content (or whose rubric's content) changed gets a new `AssessmentVersion`;
submissions keep pointing at the version they were made against, so old results stay explainable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import TypeAdapter
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, contains_eager

from grader.catalog.loader import BUNDLED_FOLDERS_KEY, EXPECTED_TESTS_KEY, Catalog, content_hash
from grader.catalog.schema import AssessmentDefinition, PortfolioAssessment, RepositoryAssessment
from grader.errors import CatalogError, NotFound
from grader.models import Assessment, AssessmentVersion, Program, Requirement, Rubric

# What a load stores beside the definition itself (the bundled folders, the pinned tests).
STORED_EXTRAS = frozenset({BUNDLED_FOLDERS_KEY, EXPECTED_TESTS_KEY})
_definition_adapter: TypeAdapter[AssessmentDefinition] = TypeAdapter(AssessmentDefinition)


@dataclass
class LoadReport:
    """What a load changed, for the CLI to print."""

    created: list[str] = field(default_factory=list)
    new_versions: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.new_versions)} new versions, "
            f"{len(self.unchanged)} unchanged"
        )


def load_catalog(session: Session, catalog: Catalog) -> LoadReport:
    """Write the catalog's rubrics, assessments and programs; a second identical load changes nothing."""
    report = LoadReport()
    rubric_rows: dict[str, Rubric] = {}
    for slug, entry in catalog.rubrics.items():
        latest = session.scalar(
            select(Rubric).where(Rubric.slug == slug).order_by(Rubric.version.desc()).limit(1)
        )
        if latest is not None and latest.content_hash == entry.content_hash:
            rubric_rows[slug] = latest
            report.unchanged.append(f"rubric {slug}")
            continue
        row = Rubric(
            slug=slug,
            version=(latest.version + 1) if latest else 1,
            content_hash=entry.content_hash,
            definition=entry.data,
        )
        session.add(row)
        rubric_rows[slug] = row
        (report.new_versions if latest else report.created).append(f"rubric {slug} v{row.version}")
    session.flush()

    unchecked = [
        entry.source
        for entry in catalog.assessments.values()
        if isinstance(entry.definition, RepositoryAssessment) and EXPECTED_TESTS_KEY not in entry.data
    ]
    if unchecked:
        # Without the reference run's tests, a learner's run would decide which tests exist.
        raise CatalogError(
            [
                f"{source}:1: no expected_tests.json: run `grader catalog check` to grade the reference "
                "solution and record the tests it must report"
                for source in unchecked
            ]
        )
    assessment_rows: dict[str, Assessment] = {}
    for slug, entry in catalog.assessments.items():
        definition = entry.definition
        rubric = None
        if isinstance(definition, RepositoryAssessment | PortfolioAssessment):
            rubric = rubric_rows[definition.rubric]
        # A rubric edit changes how the assessment grades, so it is part of the version's identity.
        version_hash = content_hash([entry.content_hash, rubric.content_hash if rubric else None])
        assessment = session.scalar(select(Assessment).where(Assessment.slug == slug))
        if assessment is None:
            assessment = Assessment(
                slug=slug, kind=definition.kind, title=definition.title, current_version=0
            )
            session.add(assessment)
            session.flush()
        assessment_rows[slug] = assessment
        latest_version = session.scalar(
            select(AssessmentVersion)
            .where(AssessmentVersion.assessment_id == assessment.id)
            .order_by(AssessmentVersion.version.desc())
            .limit(1)
        )
        if latest_version is not None and latest_version.content_hash == version_hash:
            report.unchanged.append(f"assessment {slug}")
            continue
        number = (latest_version.version + 1) if latest_version else 1
        session.add(
            AssessmentVersion(
                assessment_id=assessment.id,
                version=number,
                content_hash=version_hash,
                definition=entry.data,
                rubric_id=rubric.id if rubric else None,
            )
        )
        assessment.kind = definition.kind
        assessment.title = definition.title
        assessment.current_version = number
        (report.new_versions if latest_version else report.created).append(f"assessment {slug} v{number}")
    session.flush()

    for slug, entry in catalog.programs.items():
        program = session.scalar(select(Program).where(Program.slug == slug))
        if program is not None and program.content_hash == entry.content_hash:
            report.unchanged.append(f"program {slug}")
            continue
        if program is None:
            program = Program(slug=slug, title="", definition={}, content_hash="")
            session.add(program)
            report.created.append(f"program {slug}")
        else:
            report.new_versions.append(f"program {slug}")
        definition_p = entry.definition
        program.title = definition_p.title
        program.description = definition_p.description
        program.definition = entry.data
        program.content_hash = entry.content_hash
        program.requirements.clear()
        session.flush()
        for position, requirement in enumerate(definition_p.requirements):
            program.requirements.append(
                Requirement(
                    assessment_id=assessment_rows[requirement.assessment].id,
                    position=position,
                    min_score=requirement.min_score,
                )
            )
    session.flush()
    forget_assessment_refs()
    return report


@dataclass(frozen=True)
class AssessmentRef:
    """What never changes about an assessment once loaded: its row id and its kind."""

    id: int
    kind: str


# Per process and database, filled as slugs are asked for: intake builds its one read from the id and
# the kind. Keyed by the database too: a process (a test run, a tool) may open more than one.
_refs: dict[tuple[str, str], AssessmentRef] = {}


def database_key(session: Session) -> str:
    """Which database a session talks to, for caches of its rows' ids."""
    bind = session.get_bind()
    return str(bind.url if isinstance(bind, Engine) else bind.engine.url)


def assessment_ref(session: Session, assessment_slug: str) -> AssessmentRef:
    """The id and kind of an assessment by slug (cached per process); `NotFound` for an unknown slug."""
    key = (database_key(session), assessment_slug)
    ref = _refs.get(key)
    if ref is None:
        row = session.execute(
            select(Assessment.id, Assessment.kind).where(Assessment.slug == assessment_slug)
        ).one_or_none()
        if row is None:
            raise NotFound(f"no assessment {assessment_slug!r}", details={"field": "assessment"})
        ref = _refs[key] = AssessmentRef(id=row.id, kind=row.kind)
    return ref


def forget_assessment_refs() -> None:
    """Drop the cached refs (a catalog load in this process, or a ref that no longer names a row)."""
    _refs.clear()


def current_version(session: Session, assessment_slug: str) -> AssessmentVersion:
    """The version new submissions are graded against; `NotFound` for an unknown slug."""
    version = session.scalar(
        select(AssessmentVersion)
        .join(Assessment)
        .where(
            Assessment.slug == assessment_slug,
            AssessmentVersion.version == Assessment.current_version,
        )
        .options(contains_eager(AssessmentVersion.assessment))
    )
    if version is None:
        raise NotFound(f"no assessment {assessment_slug!r}", details={"field": "assessment"})
    return version


_PARSED_LIMIT = 512
_parsed: dict[tuple[int, str], AssessmentDefinition] = {}


def parse_definition(version: AssessmentVersion) -> AssessmentDefinition:
    """The typed definition of a stored assessment version (validated when the catalog loaded).

    Parsed once per process: a version's content never changes (a change is a new version, with its own
    id and hash) and the models are frozen, so every request can share one.
    """
    key = (version.id, version.content_hash)
    parsed = _parsed.get(key) if version.id is not None else None
    if parsed is None:
        data = {k: v for k, v in version.definition.items() if k not in STORED_EXTRAS}
        parsed = _definition_adapter.validate_python(data)
        if version.id is not None:
            if len(_parsed) >= _PARSED_LIMIT:
                _parsed.clear()
            _parsed[key] = parsed
    return parsed
