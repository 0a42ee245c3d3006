"""Assessment kinds, one module each behind the `Kind` protocol (`grader.kinds.base`), registered in
`KINDS`. Intake, grading, review and the result pages ask the kind and never test a definition's
class: adding a kind means adding its module and one entry here."""

from __future__ import annotations

from collections.abc import Mapping

from grader.catalog.schema import AssessmentDefinition
from grader.config import Settings
from grader.kinds import portfolio, quiz, repository
from grader.kinds.base import Kind, KindGrader

KINDS: Mapping[str, Kind] = {kind.name: kind for kind in (quiz.KIND, repository.KIND, portfolio.KIND)}


def kind_named(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"no assessment kind {name!r}") from None


def kind_of(definition: AssessmentDefinition) -> Kind:
    return kind_named(definition.kind)


def default_graders(settings: Settings | None = None) -> dict[str, KindGrader]:
    """The graders a worker runs, by kind; kinds that need settings are left out without them."""
    graders = {name: kind.grader(settings) for name, kind in KINDS.items()}
    return {name: grader for name, grader in graders.items() if grader is not None}
