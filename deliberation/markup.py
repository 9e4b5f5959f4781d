"""Residents' Markdown (proposals, comments, progress updates) to safe HTML.

Two layers: markdown-it-py with raw HTML off renders CommonMark plus tables and
strikethrough, then nh3 keeps only the allow-list below, whatever the first layer emitted.

- Headings of level 1 and 2 become h3, so a resident's text never competes with the
  page's own h1/h2.
- Images are never embedded (no tracking pixels, no hot-linked pictures): `![alt](url)`
  becomes a plain link to the url with the alt text as its words, or just the alt text
  when the image sits inside a link already. Photos are uploaded separately.
- Links keep only href and title, get rel="nofollow noopener ugc" and only the http,
  https and mailto schemes; relative links to pages of the site stay.
- Bidi override/isolate and zero-width characters are removed from the source and from
  the output (an entity such as `&#8238;` would otherwise bring them back).
- Nesting deeper than MAX_NESTING (lists, quotes, emphasis) is not rendered: the deeper
  block content is dropped, deeper inline markup stays as literal text.
- Sources longer than MAX_SOURCE_CHARS are cut there; forms refuse them before that.

`as_safe_html` is the one place where HTML is marked safe for templates: it runs stored
output through the same allow-list again, so a tampered database row cannot inject markup.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markupsafe import Markup

MAX_SOURCE_CHARS = 20000
MAX_NESTING = 20

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "strong", "em", "del", "s", "blockquote", "ul", "ol", "li", "code", "pre",
        "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td", "hr",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": frozenset({"href", "title"})}
LINK_REL = "nofollow noopener ugc"
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Dropped with their content should they ever reach the sanitizer.
CONTENT_DROPPED_TAGS = frozenset(
    {
        "script", "style", "template", "iframe", "object", "embed", "svg", "math",
        "noscript", "noembed", "noframes", "textarea", "title", "xmp",
    }
)  # fmt: skip

INVISIBLE_CHARACTERS = re.compile("[\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069]")
WHITESPACE = re.compile(r"\s+")


def _demote_headings_and_images(state: StateCore) -> None:
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close") and token.tag in ("h1", "h2"):
            token.tag = "h3"
        elif token.type == "inline" and token.children:
            token.children = _images_as_links(token.children, state)


def _images_as_links(children: list[Token], state: StateCore) -> list[Token]:
    result: list[Token] = []
    link_depth = 0
    for token in children:
        if token.type == "link_open":
            link_depth += 1
        elif token.type == "link_close":
            link_depth -= 1
        if token.type != "image":
            result.append(token)
            continue
        alt = state.md.renderer.renderInlineAsText(token.children, state.md.options, state.env)
        src = str(token.attrGet("src") or "")
        words = Token("text", "", 0, content=alt or src)
        if link_depth > 0 or not src:
            result.append(words)
            continue
        link_open = Token("link_open", "a", 1, attrs={"href": src})
        if token.attrGet("title"):
            link_open.attrSet("title", str(token.attrGet("title")))
        result += [link_open, words, Token("link_close", "a", -1)]
    return result


def _parser() -> MarkdownIt:
    parser = MarkdownIt(
        "commonmark", {"html": False, "linkify": False, "maxNesting": MAX_NESTING}
    ).enable(["table", "strikethrough"])
    parser.core.ruler.push("demote_headings_and_images", _demote_headings_and_images)
    return parser


_PARSER = _parser()
_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(CONTENT_DROPPED_TAGS),
    attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    url_schemes=set(URL_SCHEMES),
    link_rel=LINK_REL,
    strip_comments=True,
)


def _prepared(source: str) -> str:
    return INVISIBLE_CHARACTERS.sub("", source[:MAX_SOURCE_CHARS])


def render_markdown(source: str) -> str:
    html = _PARSER.render(_prepared(source))
    return INVISIBLE_CHARACTERS.sub("", _CLEANER.clean(html)).strip()


def plain_text(source: str, limit: int = 200) -> str:
    """The words of `source` without markup, whitespace collapsed, cut to `limit`
    characters with an ellipsis. Still user text: templates escape it as usual."""
    words: list[str] = []
    for token in _PARSER.parse(_prepared(source)):
        if token.type == "inline":
            words.append(_PARSER.renderer.renderInlineAsText(token.children, _PARSER.options, {}))
        elif token.type in ("fence", "code_block"):
            words.append(token.content)
    text = INVISIBLE_CHARACTERS.sub("", WHITESPACE.sub(" ", " ".join(words))).strip()
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def as_safe_html(html: str) -> Markup:
    # Trusted because it is the allow-list sanitizer's own output, nothing else.
    return Markup(INVISIBLE_CHARACTERS.sub("", _CLEANER.clean(html)))  # noqa: S704
