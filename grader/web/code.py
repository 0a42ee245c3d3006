"""Syntax highlighting for the submission viewer: Pygments, as CSS classes, one line at a time.

The lexer is chosen by the file's name only (never by guessing from content a learner controls),
plain text when no lexer claims it. Pygments escapes the text and closes its spans at every line
end, so the highlighted HTML can be cut into lines, each shown beside its number and anchored as
`#L12`. Colours come from classes styled in `static/review.css` (the Content-Security-Policy allows
no inline style). Highlighting is cached by content hash: a reviewer moving between files, or two
reviewers of the same submission, do not pay for it twice. The lexer is looked up once per file name:
Pygments matches a name against the patterns of every lexer it has, which costs more than lexing a
small file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

from grader.services.content_cache import ContentCache

CSS_SCOPE = ".code"  # the element the Pygments classes are scoped to in review.css
STYLE = "default"  # its text colours reach WCAG AA contrast on the code's light background
CACHE_ENTRIES = 512
CACHE_BYTES = 48 * 1024 * 1024  # of highlighted HTML; a 512 KB file (the largest shown) makes about 3 MB
LEXER_NAMES = 1024
_LINE_OVERHEAD = 64  # what a line's Markup object costs besides its characters, roughly


@dataclass(frozen=True)
class Highlighted:
    language: str  # the lexer's name, "Text only" when none applies
    lines: tuple[Markup, ...]


@lru_cache(maxsize=LEXER_NAMES)
def _lexer_class_for(name: str) -> type[Lexer]:
    """The lexer Pygments picks for a file name (by name alone, its content never read)."""
    found: type[Lexer]
    try:
        found = type(get_lexer_for_filename(name))
    except ClassNotFound:
        found = TextLexer
    return found


def _weight(value: Highlighted) -> int:
    return sum(len(line) + _LINE_OVERHEAD for line in value.lines)


_cache: ContentCache[tuple[str, str], Highlighted] = ContentCache(
    entries=CACHE_ENTRIES, budget=CACHE_BYTES, weigh=_weight
)


def clear_cache() -> None:
    """Forget every highlighted file and looked-up lexer (a cold start, for benches and tests)."""
    _cache.clear()
    _lexer_class_for.cache_clear()


def highlight_lines(path: str, text: str) -> Highlighted:
    """`text` (the file at `path`) as highlighted, escaped HTML, one `Markup` per line."""
    kind = _lexer_class_for(path.rsplit("/", 1)[-1])
    key = (
        f"{kind.__module__}.{kind.__qualname__}",
        hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
    )
    found = _cache.get(key)
    if found is not None:
        return found
    # A new instance per file: a lexer's options and filters are its own, never shared by requests.
    lexer: Lexer = kind(stripnl=False, stripall=False, ensurenl=True)
    html = highlight(text, lexer, HtmlFormatter(nowrap=True))
    # The formatter closes every span at the end of its line, so each line is balanced HTML.
    lines = html.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # Pygments escaped the text; these lines are safe HTML.
    return _cache.put(key, Highlighted(lexer.name, tuple(Markup(line) for line in lines)))


def style_css() -> str:
    """The Pygments rules that review.css carries (regenerate them with this if the style changes)."""
    css: str = HtmlFormatter(style=STYLE).get_style_defs(CSS_SCOPE)
    return css
