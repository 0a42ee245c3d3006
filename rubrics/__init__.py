"""Rubrics: the model, loading and validation, scoring, and the registry of automatic criteria.

Pure Python (stdlib, pydantic, PyYAML); imports nothing else of ours. Public API:

    rubric = load_rubric(Path("rubrics/standard/code-review.yaml"))
    result = evaluate(rubric, Evidence(tests=(...)), reviews=(Review("readability", level="good"),))

Standard rubrics ship as YAML in `rubrics/standard/` (see `standard_rubric_paths`).
"""

from pathlib import Path

from rubrics.criteria import (
    CRITERIA,
    AutoCriterion,
    FilesPresent,
    LintThreshold,
    LintWarnings,
    Measure,
    QuizScore,
    TestPoints,
    TestsPassed,
)
from rubrics.evidence import Evidence, Review, TestEvidence
from rubrics.loader import RubricError, load_rubric, load_rubric_text, rubric_from_dict
from rubrics.model import Criterion, Level, PointItem, Rubric
from rubrics.scoring import CriterionResult, ReviewError, RubricResult, evaluate, validate_review

STANDARD_DIR = Path(__file__).parent / "standard"


def standard_rubric_paths() -> list[Path]:
    """The rubric files shipped with the package, sorted by name."""
    return sorted(STANDARD_DIR.glob("*.yaml"))


__all__ = [
    "CRITERIA",
    "STANDARD_DIR",
    "AutoCriterion",
    "Criterion",
    "CriterionResult",
    "Evidence",
    "FilesPresent",
    "Level",
    "LintThreshold",
    "LintWarnings",
    "Measure",
    "PointItem",
    "QuizScore",
    "Review",
    "ReviewError",
    "Rubric",
    "RubricError",
    "RubricResult",
    "TestEvidence",
    "TestPoints",
    "TestsPassed",
    "evaluate",
    "load_rubric",
    "load_rubric_text",
    "rubric_from_dict",
    "standard_rubric_paths",
    "validate_review",
]
