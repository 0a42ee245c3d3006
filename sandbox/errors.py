"""Errors of the sandbox package: only one, for a host where a backend cannot work at all."""

from __future__ import annotations


class SandboxUnavailable(Exception):
    """No working backend (or not the one asked for); `fix` says how to get one."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix
