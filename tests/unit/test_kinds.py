"""The kinds table: every kind the catalog can declare has one module, a queue the broker serves, and
a grader where a worker can run one."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from grader.broker import QUEUES
from grader.catalog.schema import AssessmentDefinition
from grader.config import Settings
from grader.kinds import KINDS, default_graders, kind_named


def _declared_kinds() -> set[str]:
    union = typing.get_args(AssessmentDefinition)[0]
    return {typing.get_args(member.model_fields["kind"].annotation)[0] for member in typing.get_args(union)}


def test_every_kind_the_catalog_declares_has_a_module() -> None:
    assert set(KINDS) == _declared_kinds() == {"quiz", "repository", "portfolio"}
    assert all(kind_named(name).name == name for name in KINDS)


def test_every_kind_queue_is_served_by_the_broker() -> None:
    assert {kind.queue for kind in KINDS.values()} == set(QUEUES)
    assert kind_named("quiz").queue != kind_named("repository").queue  # quizzes never wait behind sandboxes


def test_a_worker_without_settings_grades_only_what_needs_none(tmp_path: Path) -> None:
    assert set(default_graders()) == {"quiz"}
    settings = Settings(data_dir=tmp_path, secret_key="x")
    assert set(default_graders(settings)) == {"quiz", "repository", "portfolio"}


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="essay"):
        kind_named("essay")
