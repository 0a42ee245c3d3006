"""`python -m sandbox doctor|run`: the sandbox commands without the rest of the service."""

from sandbox.cli import sandbox_group

sandbox_group()
