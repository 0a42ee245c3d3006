"""The API's OpenAPI 3.1 description: `openapi.yaml` beside this module, served as JSON at
/api/v1/openapi.json.

The document is written by hand and shipped as package data; tests/web/test_openapi.py holds it to the
app (every rule described, nothing described that the app lacks) and to the real responses. It is the
same for everyone and carries no user data, so it needs no token and may be cached, unlike every other
API response (which `grader.web.context` marks `no-store`); the API's other security headers apply.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

import yaml
from flask import Blueprint, Response, request
from werkzeug.wrappers import Response as BaseResponse

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")

# An hour: long enough to spare clients a download per call, short enough that a deployment's new
# document reaches them the same day; the ETag makes the revalidation after that cheap.
CACHE_CONTROL = "public, max-age=3600"


@cache
def document() -> dict[str, Any]:
    """The description as a mapping, read once per process."""
    text = resources.files("grader.web").joinpath("openapi.yaml").read_text(encoding="utf-8")
    loaded = yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise TypeError("grader/web/openapi.yaml must hold a mapping")
    return loaded


@cache
def _body() -> tuple[bytes, str]:
    body = json.dumps(document(), ensure_ascii=False, sort_keys=False, indent=1).encode("utf-8")
    return body, hashlib.sha256(body).hexdigest()[:32]


@bp.get("/openapi.json")
def openapi_json() -> BaseResponse:
    body, digest = _body()
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.set_etag(digest)
    return response.make_conditional(request)
