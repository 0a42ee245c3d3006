"""The rubric definition: `Rubric`, `Criterion`, `Level`, `PointItem`, and their consistency rules.

A rubric has criteria. A criterion is scored one way:
- automatic (`auto: {kind: ...}` and `max_points`): a kind from `CRITERIA` measures the evidence;
- levels (manual): the reviewer picks one level, the criterion earns that level's points;
- point items (manual): the reviewer checks items; grading starts from 0 (`mode: positive`) or from
  `max_points` (`mode: negative`), adds the checked items' points and is clamped to
  [`floor`, `ceiling`] (defaults 0 and `max_points`; a ceiling above `max_points` is extra credit).
  In positive mode `max_points` defaults to the sum of the positive items (or the ceiling, if lower);
- free points (manual, only `max_points`): the reviewer gives points between 0 and `max_points`.

The models are frozen. Rules that span fields (a criterion is either automatic or manual, labels are
unique, the pass mark can be reached, ...) live in `criterion_problems` / `rubric_problems`, which
return every problem with its path so the loader can report them all with line numbers. Built in
Python, a model runs the same rules and raises on the first invalid criterion or rubric.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    model_validator,
)

from rubrics.criteria import CRITERIA, AutoCriterion, fmt

# Checked by the loader instead of by the models, so that it can locate each problem.
DEFER_CHECKS = "rubrics.defer_checks"

Location = tuple[str | int, ...]
Issue = tuple[Location, str]

if TYPE_CHECKING:
    AutoSpec = AutoCriterion
else:
    # Built from the registry so that adding a kind to CRITERIA is the only change needed.
    AutoSpec = Annotated[Union[tuple(CRITERIA.values())], Field(discriminator="kind")]  # noqa: UP007

Slug = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
Text = Annotated[StrictStr, Field(min_length=1)]
Points = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
PositivePoints = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
AnyPoints = Annotated[float, Field(strict=True, allow_inf_nan=False)]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


def _deferred(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get(DEFER_CHECKS))


def _raise_issues(issues: list[Issue]) -> None:
    if issues:
        raise ValueError(
            "; ".join(f"{'.'.join(map(str, loc))}: {msg}" if loc else msg for loc, msg in issues)
        )


class Level(BaseModel):
    """One level a reviewer can pick: its label, the points it earns and what it looks like."""

    model_config = _FROZEN

    label: Text
    points: Points
    description: StrictStr = ""


class PointItem(BaseModel):
    """A checkbox for the reviewer: positive points add, negative points deduct."""

    model_config = _FROZEN

    id: Slug
    points: AnyPoints
    description: StrictStr = ""


class Criterion(BaseModel):
    """One thing the rubric judges; see the module docstring for the four ways of scoring."""

    model_config = _FROZEN

    id: Slug
    title: Text
    description: StrictStr = ""
    weight: PositivePoints = 1.0
    manual: StrictBool = False
    auto: AutoSpec | None = None
    max_points: PositivePoints | None = None
    levels: tuple[Level, ...] = ()
    items: tuple[PointItem, ...] = ()
    mode: Literal["positive", "negative"] = "positive"
    floor: AnyPoints | None = None
    ceiling: AnyPoints | None = None
    minimum_level: StrictStr | None = None
    minimum_points: Points | None = None

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Criterion:
        if not _deferred(info):
            _raise_issues(criterion_problems(self))
        return self

    @property
    def scoring(self) -> Literal["auto", "levels", "items", "points"]:
        """How this criterion is scored."""
        if self.auto is not None:
            return "auto"
        if self.levels:
            return "levels"
        if self.items:
            return "items"
        return "points"

    @property
    def top_points(self) -> float:
        """The criterion's maximum (before weight): what 100% of it is worth."""
        if self.levels:
            return max(level.points for level in self.levels)
        if self.max_points is not None:
            return self.max_points
        # Positive point items without an explicit maximum: all positive items checked, capped by
        # the ceiling when there is one (then the ceiling is the maximum, not extra credit).
        total = math.fsum(item.points for item in self.items if item.points > 0)
        return total if self.ceiling is None else min(total, self.ceiling)

    @property
    def floor_points(self) -> float:
        return 0.0 if self.floor is None else self.floor

    @property
    def ceiling_points(self) -> float:
        return self.top_points if self.ceiling is None else self.ceiling

    def clamp(self, raw: float) -> float:
        return min(max(raw, self.floor_points), self.ceiling_points)

    @property
    def best_points(self) -> float:
        """The most a submission can actually earn here (may be below `top_points`)."""
        if self.auto is not None:
            return self.auto.best_fraction() * self.top_points
        if self.items:
            start = self.top_points if self.mode == "negative" else 0.0
            return self.clamp(start + math.fsum(i.points for i in self.items if i.points > 0))
        return self.top_points

    def level(self, label: str) -> Level | None:
        return next((lv for lv in self.levels if lv.label == label), None)


class Rubric(BaseModel):
    """A versioned rubric: criteria, and the pass mark as a fraction of the maximum score."""

    model_config = _FROZEN

    id: Slug
    title: Text
    description: StrictStr = ""
    version: Annotated[StrictInt, Field(ge=1)] | None = None
    pass_mark: Annotated[float, Field(strict=True, allow_inf_nan=False)]
    criteria: tuple[Criterion, ...]

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Rubric:
        if not _deferred(info):
            _raise_issues(rubric_problems(self))
        return self

    @property
    def max_score(self) -> float:
        return math.fsum(c.weight * c.top_points for c in self.criteria)

    def criterion(self, criterion_id: str) -> Criterion | None:
        return next((c for c in self.criteria if c.id == criterion_id), None)

    def canonical_json(self) -> str:
        """The definition as canonical JSON: defaults filled in, keys sorted, no whitespace."""
        return _canonical(self.model_dump(mode="json"))

    @property
    def content_hash(self) -> str:
        """sha256 of `canonical_json()`: changes with any edit, including wording and version."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    @property
    def scoring_hash(self) -> str:
        """sha256 of the parts that decide scores, leaving out titles, descriptions and version:
        equal hashes mean stored results need no recalculation after an edit."""
        data = _strip_wording(self.model_dump(mode="json"))
        assert isinstance(data, dict)
        data.pop("version", None)
        return hashlib.sha256(_canonical(data).encode("utf-8")).hexdigest()


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _strip_wording(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip_wording(v) for k, v in data.items() if k not in ("title", "description")}
    if isinstance(data, list):
        return [_strip_wording(v) for v in data]
    return data


def _duplicates(values: list[str]) -> list[int]:
    """Indexes of values already seen earlier in the list."""
    seen: set[str] = set()
    repeated: list[int] = []
    for index, value in enumerate(values):
        if value in seen:
            repeated.append(index)
        seen.add(value)
    return repeated


def criterion_problems(c: Criterion) -> list[Issue]:
    """Every rule one criterion breaks, each with its path inside the criterion."""
    issues: list[Issue] = []
    if c.manual and c.auto is not None:
        issues.append((("manual",), "a criterion is either `manual: true` or `auto:`, not both"))
    if not c.manual and c.auto is None:
        issues.append(((), "criterion needs `auto: {kind: ...}` or `manual: true`"))
    if c.levels and c.items:
        issues.append((("items",), "a criterion has `levels` or `items`, not both"))
    if c.auto is not None:
        for key in ("levels", "items"):
            if getattr(c, key):
                issues.append(
                    (
                        (key,),
                        f"an automatic criterion is scored from evidence; "
                        f"remove `{key}` or make it `manual: true`",
                    )
                )
        if c.max_points is None:
            issues.append(((), "an automatic criterion needs `max_points`"))
    elif c.manual and not c.levels and not c.items and c.max_points is None:
        issues.append(((), "a manual criterion needs `levels`, `items` or `max_points`"))

    if c.levels:
        for index in _duplicates([lv.label for lv in c.levels]):
            issues.append((("levels", index, "label"), f"duplicate level label {c.levels[index].label!r}"))
        top = max(lv.points for lv in c.levels)
        if top <= 0:
            issues.append((("levels",), "levels give no points: at least one level needs points > 0"))
        elif c.max_points is not None and c.max_points != top:
            issues.append(
                (
                    ("max_points",),
                    f"max_points ({fmt(c.max_points)}) differs from the top "
                    f"level's points ({fmt(top)}); remove it, the top level sets the maximum",
                )
            )

    if c.items:
        for index in _duplicates([item.id for item in c.items]):
            issues.append((("items", index, "id"), f"duplicate item id {c.items[index].id!r}"))
        if c.mode == "negative" and c.max_points is None:
            issues.append((("mode",), "negative grading starts from `max_points`; set it"))
        if c.mode == "positive" and c.max_points is None and c.top_points <= 0:
            issues.append((("items",), "no item gives points: add a positive item or `max_points`"))
    else:
        for key in ("floor", "ceiling"):
            if getattr(c, key) is not None:
                issues.append(((key,), f"`{key}` only applies to point items"))
        if "mode" in c.model_fields_set:
            issues.append((("mode",), "`mode` only applies to point items"))

    if c.items and c.top_points > 0:
        if c.floor is not None and not 0 <= c.floor <= c.top_points:
            issues.append(
                (("floor",), f"floor ({fmt(c.floor)}) must be between 0 and max_points ({fmt(c.top_points)})")
            )
        if c.ceiling is not None and c.ceiling < c.top_points:
            issues.append(
                (
                    ("ceiling",),
                    f"ceiling ({fmt(c.ceiling)}) is below max_points "
                    f"({fmt(c.top_points)}), so the maximum could never be reached",
                )
            )

    if c.minimum_level is not None:
        if not c.levels:
            issues.append((("minimum_level",), "`minimum_level` needs `levels`"))
        elif c.level(c.minimum_level) is None:
            labels = ", ".join(lv.label for lv in c.levels)
            issues.append(
                (("minimum_level",), f"minimum_level {c.minimum_level!r} is not one of the levels: {labels}")
            )
    if c.minimum_points is not None and not issues and c.minimum_points > c.best_points:
        issues.append(
            (
                ("minimum_points",),
                f"minimum_points ({fmt(c.minimum_points)}) is more "
                f"than this criterion can give ({fmt(c.best_points)})",
            )
        )
    return issues


def rubric_problems(rubric: Rubric) -> list[Issue]:
    """Every rule the rubric breaks, each with its path from the top of the rubric."""
    issues: list[Issue] = []
    for index, criterion in enumerate(rubric.criteria):
        issues.extend((("criteria", index, *loc), msg) for loc, msg in criterion_problems(criterion))
    issues.extend(duplicate_id_problems([c.id for c in rubric.criteria]))
    if not rubric.criteria:
        # Checked here, not with min_length: pydantic also reports min_length when an item fails.
        issues.append((("criteria",), "a rubric needs at least one criterion"))
    pass_mark = pass_mark_problems(rubric.pass_mark)
    if pass_mark:
        issues.extend(pass_mark)
    elif not issues:
        # Only meaningful once every criterion is sound; otherwise its maximum is not trustworthy.
        best = math.fsum(c.weight * c.best_points for c in rubric.criteria)
        top = rubric.max_score
        if top > 0 and best / top < rubric.pass_mark - 1e-9:
            issues.append(
                (
                    ("pass_mark",),
                    f"pass_mark {fmt(rubric.pass_mark)} cannot be reached: "
                    f"the best possible score is {fmt(best)} of {fmt(top)}",
                )
            )
    return issues


def pass_mark_problems(pass_mark: float) -> list[Issue]:
    if 0 <= pass_mark <= 1:
        return []
    return [
        (
            ("pass_mark",),
            f"pass_mark is a fraction of the maximum score between 0 and 1 (0.6 means 60%), "
            f"got {fmt(pass_mark)}",
        )
    ]


def duplicate_id_problems(ids: list[str]) -> list[Issue]:
    return [
        (("criteria", index, "id"), f"duplicate criterion id {ids[index]!r}") for index in _duplicates(ids)
    ]
