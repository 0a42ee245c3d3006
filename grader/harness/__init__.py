"""Scripts that run inside the sandbox on behalf of the harness; read as text, never imported here."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def script(name: str) -> bytes:
    return (HERE / name).read_bytes()
