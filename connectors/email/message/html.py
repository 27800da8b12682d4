"""A plain-text reading of an HTML body, for a Read Email record whose message has no text part."""

from __future__ import annotations

import html as html_entities
import re

# Not "head": a missing </head> would swallow the whole document.
_SKIP_CONTENT = {"script", "style", "title", "template"}
_CLOSERS = {name: re.compile(rf"</{name}\b", re.I) for name in _SKIP_CONTENT}
_LINE_TAGS = {
    "p", "div", "br", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "hr", "section", "article", "header", "footer", "dl", "dt", "dd",
}  # fmt: skip
# Possessive quantifiers: a tag name runs into its attributes with no boundary between them, and
# backtracking over that would make an unclosed tag followed by letters cost the square of its length.
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*+)[^<>]*+>|<[!?][^<>]*+>")
# Where a tag may start: any other "<" is text, skipped over without a step of the loop.
_TAG_START = re.compile(r"<[A-Za-z/!?]")
_SPACES = re.compile(r"[ \t\r\n\f\v\xa0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    """A plain reading of HTML: tags dropped, blocks on their own lines, entities decoded.

    Written as one forward scan with no backtracking pattern, so hostile HTML (unclosed tags, a
    million ``<``, an unclosed comment or script) costs time linear in its length.
    """
    out: list[str] = []
    position, end = 0, len(html)
    while position < end:
        found = _TAG_START.search(html, position)
        start = found.start() if found else -1
        if start < 0:
            out.append(_SPACES.sub(" ", html[position:]))
            break
        out.append(_SPACES.sub(" ", html[position:start]))
        if html.startswith("<!--", start):
            close = html.find("-->", start + 4)
            position = end if close < 0 else close + 3
            continue
        match = _TAG.match(html, start)
        if not match:  # a "<" that opens no tag is text
            out.append("<")
            position = start + 1
            continue
        position = match.end()
        closing, name = match.group(1), (match.group(2) or "").lower()
        if name in _SKIP_CONTENT and not closing:
            close = _CLOSERS[name].search(html, position)
            position = end if close is None else close.start()
        elif name == "li" and not closing:
            out.append("\n- ")
        elif name in _LINE_TAGS or name == "li":
            out.append("\n")
        elif name in ("td", "th") and closing:
            out.append(" ")
    text = html_entities.unescape("".join(out)).replace("\xa0", " ")
    lines = (line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
