"""Syntax highlighting for the submission viewer: Pygments, as CSS classes, one line at a time.

The lexer is chosen by the file's name only (never by guessing from content a learner controls),
plain text when no lexer claims it. Pygments escapes the text and closes its spans at every line
end, so the highlighted HTML can be cut into lines, each shown beside its number and anchored as
`#L12`. Colours come from classes styled in `static/review.css` (the Content-Security-Policy allows
no inline style). Highlighting is cached by content hash: a reviewer moving between files, or two
reviewers of the same submission, do not pay for it twice.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

CSS_SCOPE = ".code"  # the element the Pygments classes are scoped to in review.css
STYLE = "default"  # its text colours reach WCAG AA contrast on the code's light background
CACHE_ENTRIES = 64


@dataclass(frozen=True)
class Highlighted:
    language: str  # the lexer's name, "Text only" when none applies
    lines: tuple[Markup, ...]


def _lexer_for(path: str) -> Lexer:
    name = path.rsplit("/", 1)[-1]
    try:
        lexer = get_lexer_for_filename(name, stripnl=False, stripall=False, ensurenl=True)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False, ensurenl=True)
    found: Lexer = lexer
    return found


_cache: OrderedDict[tuple[str, str], Highlighted] = OrderedDict()
_lock = threading.Lock()


def highlight_lines(path: str, text: str) -> Highlighted:
    """`text` (the file at `path`) as highlighted, escaped HTML, one `Markup` per line."""
    lexer = _lexer_for(path)
    key = (type(lexer).__name__, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    html = highlight(text, lexer, HtmlFormatter(nowrap=True))
    # The formatter closes every span at the end of its line, so each line is balanced HTML.
    lines = html.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # Pygments escaped the text; these lines are safe HTML.
    result = Highlighted(lexer.name, tuple(Markup(line) for line in lines))
    with _lock:
        _cache[key] = result
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return result


def style_css() -> str:
    """The Pygments rules that review.css carries (regenerate them with this if the style changes)."""
    css: str = HtmlFormatter(style=STYLE).get_style_defs(CSS_SCOPE)
    return css
