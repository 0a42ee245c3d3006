"""Starter code of `http-toolkit`: fill in each function (see the assessment's description)."""


def status_line(code):
    return f"{code} OK"


def parse_query(query):
    return {}


def parse_content_type(header):
    raise NotImplementedError


def is_safe(method):
    return method == "GET"
