"""Log lines as an operator reads them: JSON objects with the grading's ids, text with the same ids, and
no password, token or database password in either, whatever a message or an exception carries."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from grader import logs

PASSWORD = "correct horse battery"
TOKEN = "gr_" + "Q" * 20 + "s3cr3t-t0ken_" + "z" * 10


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield stream, logger
    logger.removeHandler(handler)
    logger.propagate = True
    logs.clear()


def use(captured: tuple[io.StringIO, logging.Logger], log_format: str) -> None:
    for handler in captured[1].handlers:
        handler.setFormatter(logs.formatter(log_format))


def test_json_lines_carry_the_ids_bound_for_the_grading_and_the_extras(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured
    use(captured, "json")
    logs.bind(run_id="run-1", submission_id="sub-1")
    log.info("graded in %d ms", 12, extra={"queue": "quiz"})
    logs.clear()
    log.info("idle")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "graded in 12 ms" and first["level"] == "INFO"
    assert (first["run_id"], first["submission_id"], first["queue"]) == ("run-1", "sub-1", "quiz")
    assert first["logger"] == "tests.logs" and first["time"].endswith("+00:00")
    assert "run_id" not in second and "submission_id" not in second


def test_text_lines_name_the_ids_too_and_a_block_gives_back_the_ids_before_it(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured
    use(captured, "text")
    logs.bind(run_id="outer")
    with logs.bound(submission_id="sub-2", run_id="inner"):
        log.warning("claimed")
    log.warning("after")
    claimed, after = stream.getvalue().splitlines()
    assert claimed.endswith("WARNING tests.logs: claimed [submission=sub-2 run=inner]")
    assert after.endswith("after [run=outer]")


@pytest.mark.parametrize("log_format", logs.FORMATS)
def test_no_password_or_token_is_written_whatever_a_message_or_exception_carries(
    captured: tuple[io.StringIO, logging.Logger], log_format: str
) -> None:
    stream, log = captured
    use(captured, log_format)
    log.info("request headers: Authorization: Bearer %s", TOKEN)
    log.info("client sent the token in the URL: GET /api/v1/me?access_token=%s HTTP/1.1", TOKEN)
    log.info("the token itself, alone: %s", TOKEN)
    log.info("form: email=ada@example.org&password=%s", PASSWORD.replace(" ", "+"))
    log.info("json body %s", json.dumps({"email": "ada@example.org", "password": PASSWORD}))
    log.info("engine: postgresql+psycopg://grader:%s@db:5432/grader", "pg-Pa55word")
    request = {"headers": {"Authorization": f"Bearer {TOKEN}"}, "form": [{"password": PASSWORD}]}
    log.warning("login", extra={"password": PASSWORD, "token": TOKEN, "request": request})
    try:
        raise ValueError(f"could not verify password={PASSWORD.replace(' ', '_')} for Bearer {TOKEN}")
    except ValueError:
        log.exception("failed")
    written = stream.getvalue()
    for secret in (
        TOKEN,
        "s3cr3t",
        PASSWORD,
        PASSWORD.replace(" ", "+"),
        PASSWORD.replace(" ", "_"),
        "Pa55word",
    ):
        assert secret not in written, f"{secret!r} was logged"
    # What is not secret stays readable: the lines still say what happened, to whom.
    assert written.count("[redacted]") >= 8
    assert "ada@example.org" in written and "GET /api/v1/me?access_token=" in written
    assert "ValueError" in written


def test_the_ten_character_prefix_shown_on_the_account_page_stays_readable() -> None:
    assert logs.redact(f"token {TOKEN[:10]}… revoked") == f"token {TOKEN[:10]}… revoked"


def test_configure_replaces_its_own_handler_and_writes_to_the_stderr_of_the_moment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        logs.configure("json")
        logs.configure("json")
        ours = [h for h in root.handlers if h not in before]
        assert len(ours) == 1
        logging.getLogger("tests.logs.configured").warning("to stderr")
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert json.loads(line)["message"] == "to stderr"
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
        root.setLevel(level)
