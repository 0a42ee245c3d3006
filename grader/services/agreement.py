"""Agreement between reviewers: how often two independent reviews of the same work agree, and who is
more lenient than whom. Computed from the reviews, never estimated.

The data are the results reviewed twice: a result's `first` and `second` submitted reviews (the
newest version of each, never a review carried over from an earlier result, which would count the
same judgement twice). Adjudications and regrades are decisions, not independent ratings, and are
left out. For each manual criterion of an assessment:

* pairs: the results both reviewers scored;
* exact agreement: the pairs where both chose the same level (a levels criterion) or gave the same
  points (point items and free points);
* Krippendorff's alpha (the `krippendorff` package): ordinal over the levels, ordered by their
  points, for a levels criterion; interval over the points for the others. 1 is perfect agreement,
  0 what chance gives, below 0 systematic disagreement. With fewer than two pairs, or when every
  review gave the same score (alpha is then 0 / 0), no alpha is given and the note says why.

For each reviewer: the reviews of theirs that have a partner, and their leniency, the mean of their
points minus their partner's: per criterion in the criterion's own points, and overall in the
manual points the review gave the result (weighted, with its adjustment). A positive leniency means
more generous than the other reviewers of the same work.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import krippendorff
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.errors import NotFound, PermissionDenied
from grader.models import (
    Assessment,
    Program,
    Requirement,
    Result,
    Review,
    ReviewSlot,
    ReviewState,
    Rubric,
    Submission,
    User,
)
from grader.services import access
from grader.services.repository import evidence_from_feedback
from rubrics import Review as RubricReview
from rubrics import ReviewError, evaluate, rubric_from_dict
from rubrics.model import Criterion
from rubrics.model import Rubric as RubricModel

MIN_PAIRS = 2
NOT_ENOUGH_PAIRS = "not enough pairs"
NO_VARIATION = "not enough pairs that differ: every review gave the same score, so alpha is undefined"
_DIGITS = 4


@dataclass(frozen=True)
class CriterionAgreement:
    assessment: str
    assessment_title: str
    criterion: str
    title: str
    scoring: str  # levels | items | points
    measure: str  # ordinal (levels) | interval (points)
    pairs: int
    exact: int  # pairs that agree exactly
    alpha: float | None
    note: str  # why there is no alpha; empty when there is one

    @property
    def exact_share(self) -> float | None:
        return round(self.exact / self.pairs, _DIGITS) if self.pairs else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "assessment": self.assessment,
            "criterion": self.criterion,
            "title": self.title,
            "scoring": self.scoring,
            "measure": self.measure,
            "pairs": self.pairs,
            "exact_agreements": self.exact,
            "exact_agreement": self.exact_share,
            "alpha": self.alpha,
            "alpha_note": self.note or None,
        }


@dataclass(frozen=True)
class CriterionLeniency:
    assessment: str
    criterion: str
    title: str
    pairs: int
    leniency: float  # mean of (this reviewer's points - the partner's), in the criterion's points

    def to_dict(self) -> dict[str, Any]:
        return {
            "assessment": self.assessment,
            "criterion": self.criterion,
            "title": self.title,
            "pairs": self.pairs,
            "leniency": self.leniency,
        }


@dataclass(frozen=True)
class ReviewerAgreement:
    reviewer_id: int
    name: str
    email: str
    reviews: int  # reviews of theirs that have a partner review
    leniency: float | None  # mean difference in the manual points given to the result
    criteria: tuple[CriterionLeniency, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "reviewer": {"id": self.reviewer_id, "name": self.name, "email": self.email},
            "reviews_compared": self.reviews,
            "leniency": self.leniency,
            "criteria": [c.to_dict() for c in self.criteria],
        }


@dataclass(frozen=True)
class AgreementReport:
    program: str | None
    assessment: str | None
    results: int  # results reviewed twice, in scope
    skipped: int  # pairs whose stored reviews no longer fit their rubric (should stay 0)
    criteria: tuple[CriterionAgreement, ...]
    reviewers: tuple[ReviewerAgreement, ...]
    assessments: tuple[tuple[str, str], ...] = field(default=())  # (slug, title) in scope, to filter by

    def to_dict(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "assessment": self.assessment,
            "results_compared": self.results,
            "pairs_skipped": self.skipped,
            "min_pairs": MIN_PAIRS,
            "criteria": [c.to_dict() for c in self.criteria],
            "reviewers": [r.to_dict() for r in self.reviewers],
        }


# ---------------------------------------------------------------- the figures


Measure = Literal["ordinal", "interval"]


def alpha(
    first: Sequence[float], second: Sequence[float], *, measure: Measure, domain: int = 0
) -> float | None:
    """Krippendorff's alpha of two reviewers' values on the same units; None when undefined.

    `measure` is "ordinal" (values are level ranks 0..domain-1) or "interval" (values are points).
    """
    if len(first) != len(second):
        raise ValueError("both reviewers need a value for every unit")
    if len(first) < MIN_PAIRS or len(set(first) | set(second)) < 2:
        return None
    kwargs: dict[str, Any] = {}
    if measure == "ordinal":
        # Every level is a value of the scale, chosen or not: the ordinal distance counts the levels
        # between two choices by how often they were chosen.
        kwargs["value_domain"] = list(range(max(domain, int(max([*first, *second])) + 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0 / 0 is reported as undefined below
        value = float(
            krippendorff.alpha(
                reliability_data=[list(first), list(second)], level_of_measurement=measure, **kwargs
            )
        )
    return round(value, _DIGITS) if math.isfinite(value) else None


def mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return round(math.fsum(items) / len(items), _DIGITS) if items else None


def _mean(values: Sequence[float]) -> float:
    return round(math.fsum(values) / len(values), _DIGITS)


# ---------------------------------------------------------------- scope


def assessments_in_scope(
    session: Session, user: User, *, program: str | None = None, assessment: str | None = None
) -> list[Assessment]:
    """The assessments whose statistics `user` may see, narrowed by program and assessment slugs."""
    programs = access.programs_of(session, user, staff_only=True)
    if programs is not None and not programs:
        raise PermissionDenied("only staff may see agreement statistics")
    query = select(Assessment).join(Requirement, Requirement.assessment_id == Assessment.id)
    if program:
        row = access.program_by_slug(session, program)
        access.require_staff_of(session, user, row)
        query = query.where(Requirement.program_id == row.id)
    elif programs is not None:
        query = query.where(Requirement.program_id.in_(programs))
    found = list(session.scalars(query.distinct().order_by(Assessment.title)).all())
    if assessment:
        found = [a for a in found if a.slug == assessment]
        if not found:
            exists = session.scalar(select(Assessment.id).where(Assessment.slug == assessment))
            if exists is None:
                raise NotFound(f"no assessment {assessment!r}", details={"field": "assessment"})
            raise PermissionDenied(
                f"the assessment {assessment!r} is not in a program you run"
                + (f" (or not in {program!r})" if program else ""),
                details={"field": "assessment"},
            )
    return found


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class _Rated:
    """One review of a pair, scored with its result's rubric."""

    reviewer_id: int
    levels: Mapping[str, str | None]  # criterion id -> level label
    points: Mapping[str, float]  # criterion id -> points (unweighted)
    manual_points: float  # what the review gave the result: weighted, adjusted, within bounds


def report(
    session: Session, user: User, *, program: str | None = None, assessment: str | None = None
) -> AgreementReport:
    """Agreement per criterion and per reviewer over the results reviewed twice, in `user`'s scope."""
    assessments = assessments_in_scope(session, user, program=program, assessment=assessment)
    by_id = {a.id: a for a in assessments}
    pairs = _pairs(session, list(by_id))
    rubrics: dict[int, RubricModel] = {}
    # (assessment id, criterion id) -> [(criterion, first, second)]
    rated: dict[tuple[int, str], list[tuple[Criterion, _Rated, _Rated]]] = defaultdict(list)
    positions: dict[tuple[int, str], int] = {}  # the criterion's place in its rubric, for the order
    overall: list[tuple[_Rated, _Rated]] = []
    skipped = 0
    for result, first, second in pairs:
        if result.rubric_id is None:
            continue
        if result.rubric_id not in rubrics:
            row = session.get(Rubric, result.rubric_id)
            assert row is not None
            rubrics[result.rubric_id] = rubric_from_dict(row.definition, f"rubric {row.slug} v{row.version}")
        rubric = rubrics[result.rubric_id]
        try:
            a, b = (_rate(rubric, result, review) for review in (first, second))
        except ReviewError:
            skipped += 1
            continue
        assessment_id = _assessment_of(session, result)
        overall.append((a, b))
        for index, criterion in enumerate(rubric.criteria):
            if criterion.auto is None and criterion.id in a.points and criterion.id in b.points:
                rated[(assessment_id, criterion.id)].append((criterion, a, b))
                positions[(assessment_id, criterion.id)] = index
    order = sorted(rated, key=lambda key: (by_id[key[0]].title, key[0], positions[key]))
    criteria = tuple(_criterion_agreement(by_id[key[0]], rated[key]) for key in order)
    reviewers = _reviewers(session, {key: rated[key] for key in order}, overall, by_id)
    slug = by_id[assessments[0].id].slug if assessment and assessments else None
    return AgreementReport(
        program=program,
        assessment=slug,
        results=len(overall),
        skipped=skipped,
        criteria=criteria,
        reviewers=reviewers,
        assessments=tuple((a.slug, a.title) for a in assessments),
    )


def _pairs(session: Session, assessment_ids: list[int]) -> list[tuple[Result, Review, Review]]:
    """(result, first review, second review) for every result of these assessments reviewed twice."""
    if not assessment_ids:
        return []
    rows = session.execute(
        select(Review, Result)
        .join(Result, Result.id == Review.result_id)
        .join(Submission, Submission.id == Result.submission_id)
        .where(
            Submission.assessment_id.in_(assessment_ids),
            Review.state == ReviewState.SUBMITTED,
            Review.carried_from_id.is_(None),
            Review.slot.in_([ReviewSlot.FIRST, ReviewSlot.SECOND]),
        )
        .order_by(Review.id)
    ).all()
    by_result: dict[int, dict[str, Review]] = defaultdict(dict)
    results: dict[int, Result] = {}
    for review, result in rows:
        by_result[result.id][review.slot] = review  # ordered by id: the newest of each slot stays
        results[result.id] = result
    pairs = []
    for result_id, slots in sorted(by_result.items()):
        first, second = slots.get(ReviewSlot.FIRST), slots.get(ReviewSlot.SECOND)
        if first is not None and second is not None and first.reviewer_id != second.reviewer_id:
            pairs.append((results[result_id], first, second))
    return pairs


def _assessment_of(session: Session, result: Result) -> int:
    submission = session.get(Submission, result.submission_id)
    assert submission is not None
    return submission.assessment_id


def _rate(rubric: RubricModel, result: Result, review: Review) -> _Rated:
    given = [
        RubricReview(
            criterion_id=item["criterion"],
            level=item.get("level"),
            points=item.get("points"),
            items=tuple(item.get("items", [])),
        )
        for item in review.criteria
    ]
    scored = evaluate(rubric, evidence_from_feedback(result.feedback), given)
    manual = [c for c in scored.criteria if c.manual and not c.pending]
    manual_max = math.fsum(c.weighted_max for c in scored.criteria if c.manual)
    raw = math.fsum(c.weighted_points for c in manual)
    return _Rated(
        reviewer_id=review.reviewer_id,
        levels={c.id: c.level for c in manual},
        points={c.id: c.points for c in manual},
        # As the result is settled: the adjustment moves the manual points within their bounds.
        manual_points=min(max(raw + review.adjustment, 0.0), manual_max),
    )


def _rank(criterion: Criterion, label: str | None) -> int:
    ordered = sorted(range(len(criterion.levels)), key=lambda i: (criterion.levels[i].points, i))
    labels = [criterion.levels[i].label for i in ordered]
    return labels.index(label) if label in labels else -1


def _criterion_agreement(
    assessment: Assessment, rows: list[tuple[Criterion, _Rated, _Rated]]
) -> CriterionAgreement:
    criterion = rows[-1][0]  # the newest rubric's wording
    levels = criterion.scoring == "levels"
    if levels:
        usable = [
            (c, a, b) for c, a, b in rows if _rank(c, a.levels[c.id]) >= 0 and _rank(c, b.levels[c.id]) >= 0
        ]
        first = [float(_rank(c, a.levels[c.id])) for c, a, _ in usable]
        second = [float(_rank(c, b.levels[c.id])) for c, _, b in usable]
        exact = sum(1 for c, a, b in usable if a.levels[c.id] == b.levels[c.id])
        domain = max(len(c.levels) for c, _, _ in rows)
    else:
        usable = rows
        first = [a.points[c.id] for c, a, _ in usable]
        second = [b.points[c.id] for c, _, b in usable]
        exact = sum(1 for x, y in zip(first, second, strict=True) if math.isclose(x, y, abs_tol=1e-9))
        domain = 0
    measure: Measure = "ordinal" if levels else "interval"
    value = alpha(first, second, measure=measure, domain=domain)
    note = ""
    if value is None:
        note = NOT_ENOUGH_PAIRS if len(usable) < MIN_PAIRS else NO_VARIATION
    return CriterionAgreement(
        assessment=assessment.slug,
        assessment_title=assessment.title,
        criterion=criterion.id,
        title=criterion.title,
        scoring=criterion.scoring,
        measure=measure,
        pairs=len(usable),
        exact=exact,
        alpha=value,
        note=note,
    )


def _reviewers(
    session: Session,
    rated: Mapping[tuple[int, str], list[tuple[Criterion, _Rated, _Rated]]],
    overall: list[tuple[_Rated, _Rated]],
    assessments: Mapping[int, Assessment],
) -> tuple[ReviewerAgreement, ...]:
    totals: dict[int, list[float]] = defaultdict(list)
    for a, b in overall:
        totals[a.reviewer_id].append(a.manual_points - b.manual_points)
        totals[b.reviewer_id].append(b.manual_points - a.manual_points)
    per_criterion: dict[int, dict[tuple[int, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    titles: dict[tuple[int, str], str] = {}
    for key, rows in rated.items():
        titles[key] = rows[-1][0].title
        for criterion, a, b in rows:
            difference = a.points[criterion.id] - b.points[criterion.id]
            per_criterion[a.reviewer_id][key].append(difference)
            per_criterion[b.reviewer_id][key].append(-difference)
    found = session.scalars(select(User).where(User.id.in_(list(totals)))).all() if totals else []
    users = {u.id: u for u in found}
    reviewers = []
    for reviewer_id, differences in totals.items():
        person = users.get(reviewer_id)
        criteria = tuple(
            CriterionLeniency(
                assessment=assessments[assessment_id].slug,
                criterion=criterion_id,
                title=titles[(assessment_id, criterion_id)],
                pairs=len(values),
                leniency=_mean(values),
            )
            for (assessment_id, criterion_id), values in per_criterion[reviewer_id].items()
        )
        reviewers.append(
            ReviewerAgreement(
                reviewer_id=reviewer_id,
                name=person.name if person else f"user {reviewer_id}",
                email=person.email if person else "",
                reviews=len(differences),
                leniency=mean(differences),
                criteria=criteria,
            )
        )
    return tuple(sorted(reviewers, key=lambda r: (r.name.lower(), r.reviewer_id)))


def programs_for_filter(session: Session, user: User) -> list[Program]:
    """The programs `user` runs, for the page's program filter."""
    programs = access.programs_of(session, user, staff_only=True)
    query = select(Program).order_by(Program.title)
    if programs is not None:
        query = query.where(Program.id.in_(programs))
    return list(session.scalars(query).all())
