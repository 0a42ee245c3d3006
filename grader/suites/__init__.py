"""Test suites of repository assessments: pytest, io and command, one module each."""
