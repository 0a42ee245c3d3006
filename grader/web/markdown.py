"""Markdown for people, safe on the app's origin: rendered by markdown-it-py, then sanitised by nh3.

Everything rendered here may come from a learner or a reviewer (prompts, briefs, comments, regrade
reasons). Raw HTML in the source is not rendered (markdown-it's `html` option is off), and the
result goes through nh3 with a short allow-list of tags and attributes, so no script, style, event
handler or `javascript:` link survives whatever the input. Links open as plain links with
`rel="nofollow noopener noreferrer"`.
"""

from __future__ import annotations

import functools

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td", "del",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "th": {"align"}, "td": {"align"}}


@functools.cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def render(text: str | None) -> Markup:
    """Markdown to sanitised HTML, ready for a template."""
    if not text:
        return Markup("")
    html = _parser().render(text)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )
    return Markup(clean)
