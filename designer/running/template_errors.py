"""Template mistakes told in plain words: where (line and column), what is wrong and what to write instead,
with Jinja's own words after them for whoever knows Jinja."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from jinja2 import TemplateError

# (Jinja's message, what it means for someone filling a field). {got} stands for the token Jinja stopped at.
_PLAIN = (
    (re.compile(r"unexpected end of template, expected 'end of print statement'", re.I),
     "a {{ is never closed: end it with }}"),
    (re.compile(r"unexpected end of template", re.I), "a {% … %} block is never closed: add its {% end… %}"),
    (re.compile(r"expected token 'end of print statement', got '(?P<got>[^']*)'"),
     "“{got}” cannot follow there: {{ … }} holds one value (join texts with ~, or close it with }})"),
    (re.compile(r"unexpected 'end of print statement'"), "it stops too early: something must follow the last operator"),
    (re.compile(r"unexpected '(?P<got>[^']*)'"), "“{got}” opens or closes nothing here: a field is written {{ name }}"),
    (re.compile(r"expected an expression, got 'end of print statement'", re.I),
     "{{ }} is empty: put a field name inside"),
    (re.compile(r"expected token 'name', got"), "a | must be followed by a filter name, e.g. |lower"),
    (re.compile(r"encountered unknown tag '(?P<got>[^']*)'", re.I), "{% {got} %} is not a tag that fits here"),
)


def explain(template: str, exc: TemplateError) -> str:
    """``line 1, column 6: a {{ is never closed: end it with }} (Jinja: unexpected end of template…)``."""
    raw = str(exc.message or exc)
    plain, got = raw, ""
    for pattern, words in _PLAIN:
        match = pattern.search(raw)
        if match:
            got = match.groupdict().get("got") or ""
            plain = f"{words.replace('{got}', got)} (Jinja: {raw})"
            break
    line = getattr(exc, "lineno", None)
    return f"{_position(template, line, got, raw)}{plain}"


def _position(template: str, line: int | None, got: str, raw: str) -> str:
    if not line:
        return ""
    if "end of template" in raw.lower():
        # The opening that was never closed: the last one in the template.
        offset = max(template.rfind("{{"), template.rfind("{%"))
        if offset >= 0:
            before = template[:offset]
            return f"line {before.count(chr(10)) + 1}, column {offset - before.rfind(chr(10))}: "
    text = template.split("\n")[line - 1] if line <= template.count("\n") + 1 else ""
    column = text.find(got, max(text.find("{"), 0)) if got else -1
    return f"line {line}, column {column + 1}: " if column >= 0 else f"line {line}: "


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` — did you mean subject?`` for a name close to a known one, else nothing."""
    close = difflib.get_close_matches(name, [k for k in known if k != "vars"], n=1, cutoff=0.6)
    return f": did you mean {close[0]}?" if close else ""
