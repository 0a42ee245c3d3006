"""A passing submission of `http-toolkit`, as a learner hands it in (for `grader demo --smoke`)."""

from http import HTTPStatus
from urllib.parse import unquote_plus

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# RFC 9110 names 418 (unused) with this phrase; Python's table says "I'm a Teapot" too.
PHRASES = {status.value: status.phrase for status in HTTPStatus}


def status_line(code):
    if code not in PHRASES or not 100 <= code <= 599:
        raise ValueError(f"{code} is not an HTTP status code")
    return f"{code} {PHRASES[code]}"


def parse_query(query):
    values = {}
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        values.setdefault(unquote_plus(name), []).append(unquote_plus(value))
    return values


def parse_content_type(header):
    media_type, _, rest = header.partition(";")
    media_type = media_type.strip().lower()
    if "/" not in media_type:
        raise ValueError(f"{header!r} has no media type")
    params = {}
    while rest.strip():
        rest = rest.strip()
        name, _, rest = rest.partition("=")
        rest = rest.strip()
        if rest.startswith('"'):
            value, _, rest = rest[1:].partition('"')
            rest = rest.partition(";")[2]
        else:
            value, _, rest = rest.partition(";")
            value = value.strip()
        params[name.strip().lower()] = value
    return {"media_type": media_type, "params": params}


def is_safe(method):
    return method.upper() in SAFE_METHODS
