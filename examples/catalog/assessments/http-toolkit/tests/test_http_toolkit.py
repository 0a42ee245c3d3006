"""Hidden tests for `http-toolkit`, written the ordinary way: with `isolation: process` each call into
`http_toolkit` runs in its own box and returns plain data, so `==` compares values the tests own."""

import pytest
from http_toolkit import is_safe, parse_content_type, parse_query, status_line


def test_status_line_for_common_codes():
    assert status_line(200) == "200 OK"
    assert status_line(404) == "404 Not Found"


def test_status_line_for_rarer_codes():
    assert status_line(418) == "418 I'm a Teapot"  # RFC 9110 reserves it with this reason phrase
    assert status_line(308) == "308 Permanent Redirect"


def test_status_line_refuses_unknown_codes():
    with pytest.raises(ValueError):
        status_line(799)


def test_parse_query_simple():
    assert parse_query("a=1&b=2") == {"a": ["1"], "b": ["2"]}


def test_parse_query_repeats_and_blanks():
    assert parse_query("a=1&b=&a=2") == {"a": ["1", "2"], "b": [""]}


def test_parse_query_decodes():
    assert parse_query("q=caf%C3%A9+au+lait") == {"q": ["café au lait"]}


def test_parse_query_empty():
    assert parse_query("") == {}


def test_parse_content_type_plain():
    assert parse_content_type("application/json") == {"media_type": "application/json", "params": {}}


def test_parse_content_type_lower_cases_type_and_names():
    parsed = parse_content_type("Text/HTML; Charset=UTF-8")
    assert parsed == {"media_type": "text/html", "params": {"charset": "UTF-8"}}


def test_parse_content_type_quoted_parameters():
    parsed = parse_content_type('multipart/form-data; boundary="a b;c"')
    assert parsed == {"media_type": "multipart/form-data", "params": {"boundary": "a b;c"}}


def test_parse_content_type_refuses_a_bare_word():
    with pytest.raises(ValueError):
        parse_content_type("json")


def test_safe_methods_in_any_case():
    assert [is_safe(m) for m in ("GET", "head", "Options", "TRACE", "POST", "delete")] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]
