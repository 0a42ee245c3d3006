"""Intake tests use the loopback git server fixtures from `tests.support.git_fixtures`.

They are imported rather than listed in `pytest_plugins`, which pytest only honours in the root conftest;
if the root conftest also loads that plugin, these names simply resolve to the same fixtures.
"""

from tests.support.git_fixtures import git_server, loopback_git_policy

__all__ = ["git_server", "loopback_git_policy"]
