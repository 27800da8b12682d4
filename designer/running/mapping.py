"""Mapping templates: each target field rendered from the source record in Jinja2's sandbox.

A template that is one expression (``{{ attachments }}``) yields the value itself, so lists
and binary attachments pass through; anything else renders to text. The sandbox already
forbids Python internals; on top, output size, ``range``, repetition (str and bytes) and the string
methods that allocate are bounded, and a template gets a time limit that holds for any loop
(``watchdog``), so a hostile or careless template fails its message, not the worker.
"""

from __future__ import annotations

import functools
import keyword
import operator
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, Undefined, meta, nodes
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from designer.running import template_errors, watchdog

MAX_OUTPUT_CHARS = 10_000_000
MAX_RANGE = 10_000
MAX_SECONDS = 2.0
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.S)
# ``{{ name }}`` in text, without Jinja's whitespace control (``{{-``).
_INTERPOLATION = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Filters that turn a small template into an enormous string in one call.
_UNSAFE_FILTERS = ("center", "indent", "format", "wordwrap")


class MappingError(Exception):
    """A template failed: ``field`` names which one (``condition`` for the condition)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise MappingError("template", f"took longer than {MAX_SECONDS:g} s")


class _Environment(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        for name in _UNSAFE_FILTERS:
            self.filters.pop(name, None)
        # One environment compiles each template once; the deadline is per render and per thread.
        self._local = threading.local()
        self.globals["range"] = self._range
        # lipsum(10**7) is one expression that no check between chunks would ever see.
        self.globals.pop("lipsum", None)

    @property
    def deadline(self) -> _Deadline:
        return self._local.deadline

    def start_render(self) -> None:
        self._local.deadline = _Deadline(MAX_SECONDS)

    def _range(self, *args: int) -> Iterator[int]:
        numbers = range(*args)
        if len(numbers) > MAX_RANGE:
            raise MappingError("template", f"range() is limited to {MAX_RANGE} numbers")
        for number in numbers:
            self.deadline.check()
            yield number

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise MappingError("template", "exponent too large")
            return operator.pow(left, right)
        if isinstance(left, _SEQUENCES) or isinstance(right, _SEQUENCES):
            size = len(left if not isinstance(left, int) else right) * (right if isinstance(right, int) else left)
            if size > MAX_OUTPUT_CHARS:
                raise MappingError("template", "repetition result too large")
        return operator.mul(left, right)


    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        __self.deadline.check()
        _check_allocation(__obj, args)
        return super().call(__context, __obj, *args, **kwargs)


_SEQUENCES = (str, bytes, bytearray, list, tuple)
# String methods whose first argument is the length of what they make, or a multiplier of it.
_WIDTH_METHODS = {"zfill", "ljust", "rjust", "center"}


def _check_allocation(method: Any, args: tuple[Any, ...]) -> None:
    """Refuse a str/bytes method call that would make a result past the output cap in one C call."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, (str, bytes, bytearray)) or not args:
        return
    name = getattr(method, "__name__", "")
    size = 0
    if name in _WIDTH_METHODS and isinstance(args[0], int):
        size = args[0]
    elif name == "expandtabs" and isinstance(args[0], int):
        size = len(owner) * max(args[0], 1)
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], type(owner)) and args[0]:
        size = len(owner) + owner.count(args[0]) * max(len(args[1]) - len(args[0]), 0)
    elif name == "join" and isinstance(owner, str):
        items = args[0] if isinstance(args[0], (list, tuple)) else ()
        size = sum(len(i) for i in items if isinstance(i, str)) + len(owner) * len(items)
    if size > MAX_OUTPUT_CHARS:
        raise MappingError("template", f"{name}() result too large")


_ENV = _Environment()
_MISSING = object()


@dataclass(frozen=True)
class TemplateProblem:
    field: str
    message: str
    unknown_name: str = ""  # set when the problem is a name the source does not have


def _expression(template: str) -> str | None:
    match = _SINGLE_EXPRESSION.match(template)
    if match and "{{" not in match["expr"] and "}}" not in match["expr"]:
        return match["expr"].strip()
    return None


def check_template(field: str, template: str, known_names: Iterable[str]) -> list[TemplateProblem]:
    """Syntax and names: what the designer shows as you type and on the canvas markers."""
    try:
        parsed = _ENV.parse(template)
    except TemplateError as exc:
        return [TemplateProblem(field, template_errors.explain(template, exc))]
    known = set(known_names)
    unknown = sorted(meta.find_undeclared_variables(parsed) - known - set(_ENV.globals))
    return [TemplateProblem(field, f"uses {name!r}, which the source does not have"
                                   f"{template_errors.did_you_mean(name, known)}", name) for name in unknown]


def check_condition(condition: str, known_names: Iterable[str]) -> list[TemplateProblem]:
    expression = _expression(condition) or condition
    return check_template("condition", "{{ " + expression + " }}", known_names) if condition.strip() else []


# Compiled once per process: a run renders the same few templates for every message.
@functools.lru_cache(maxsize=1024)
def _compiled_template(template: str) -> Template:
    return _ENV.from_string(template)


@functools.lru_cache(maxsize=1024)
def _compiled_expression(expression: str) -> Any:
    return _ENV.compile_expression(expression, undefined_to_none=False)


def _render_text(field: str, template: str, context: Mapping[str, Any]) -> str:
    pieces, size = [], 0
    for chunk in _compiled_template(template).generate(context):
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise MappingError(field, f"output longer than {MAX_OUTPUT_CHARS} characters")
        _ENV.deadline.check()
        pieces.append(chunk)
    return "".join(pieces)


def render_value(field: str, template: Any, context: Mapping[str, Any]) -> Any:
    """Render one field. Non-string mapping values (numbers, lists) are taken literally."""
    if not isinstance(template, str):
        return template
    value = _shortcut_value(template, context)
    if value is not _MISSING:
        return value
    try:
        with watchdog.limit(MAX_SECONDS + 0.5):  # the checks between chunks usually stop it first
            return _render_value(field, template, context)
    except watchdog.Overran:
        raise MappingError(field, f"took longer than {MAX_SECONDS:g} s") from None


@functools.lru_cache(maxsize=1024)
def _shortcut(template: str) -> tuple[str, Any] | None:
    """What Jinja would make of ``template`` without running it, where that is plain: ("text", the
    template) for text without template syntax (newlines as they are), ("literal", its maker) for
    a lone expression of names, constants, lists and tuples (``{{ attachments }}``, ``_literal``),
    ("join", [text, name, text, ..., text]) for text with ``{{ name }}``s in it
    (``Fwd: {{ subject }}``); None otherwise."""
    if "{" not in template and "\r" not in template and len(template) <= MAX_OUTPUT_CHARS:
        return ("text", template)
    expression = _expression(template)
    if expression is not None:
        literal = _literal(expression)
        return ("literal", literal) if literal is not None else None
    pieces = _INTERPOLATION.split(template)  # text, name, text, ..., text
    if len(pieces) > 1 and all(_is_plain_name(name) for name in pieces[1::2]) and not any(
            "{" in text or "}" in text or "\r" in text for text in pieces[::2]):
        return ("join", pieces)
    return None


def _literal(expression: str) -> Callable[[Mapping[str, Any]], Any] | None:
    """What gives the value of an expression made only of lists, tuples, constants and names
    (``[['X-Source', message_id]]``) from a context as Jinja's compiled expression would (KeyError
    for a name the context lacks); None for any other expression."""
    parser = Parser(_ENV, expression, state="variable")  # as compile_expression parses it
    try:
        node = parser.parse_expression()
    except TemplateError:
        return None
    return _literal_node(node) if parser.stream.eos else None


def _literal_node(node: nodes.Node) -> Callable[[Mapping[str, Any]], Any] | None:
    if isinstance(node, nodes.Const):
        value = node.value
        return lambda _context: value
    if isinstance(node, nodes.Name) and node.ctx == "load" and node.name != "self":
        return operator.itemgetter(node.name)
    if isinstance(node, (nodes.List, nodes.Tuple)):
        items = [_literal_node(item) for item in node.items]
        if any(item is None for item in items):
            return None
        kind = list if isinstance(node, nodes.List) else tuple
        return lambda context: kind(item(context) for item in items)
    return None


def _is_plain_name(expression: str) -> bool:
    return (expression.isidentifier() and not keyword.iskeyword(expression)
            and expression.lower() not in ("true", "false", "none")  # Jinja's literals
            and expression != "self")  # what a template calls itself, whatever the context holds


def _shortcut_value(template: str, context: Mapping[str, Any]) -> Any:
    """The value of a plain template (``_shortcut``) without Jinja, or ``_MISSING``."""
    shortcut = _shortcut(template)
    if shortcut is None:
        return _MISSING
    kind, plain = shortcut
    if kind == "text":
        return plain
    if kind == "literal":
        try:  # what the compiled expression returns when the context has every name
            value = plain(context)
        except KeyError:
            return _MISSING
        return _MISSING if isinstance(value, str) and len(value) > MAX_OUTPUT_CHARS else value
    # Jinja writes a text value as it is; anything else (a list, None, a missing name) goes through it.
    values = [context.get(name) for name in plain[1::2]]
    if not all(isinstance(value, str) for value in values):
        return _MISSING
    text = "".join(piece for pair in zip(plain[::2], [*values, ""], strict=True) for piece in pair)
    return text if len(text) <= MAX_OUTPUT_CHARS else _MISSING


def _render_value(field: str, template: str, context: Mapping[str, Any]) -> Any:
    _ENV.start_render()
    try:
        expression = _expression(template)
        if expression is not None:
            value = _compiled_expression(expression)(**context)
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()
            if isinstance(value, str) and len(value) > MAX_OUTPUT_CHARS:
                raise MappingError(field, f"output longer than {MAX_OUTPUT_CHARS} characters")
            return value
        return _render_text(field, template, context)
    except MappingError as exc:
        raise MappingError(field, exc.message) from None
    except (TemplateError, RecursionError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise MappingError(field, f"{type(exc).__name__}: {exc}") from None


def render_mapping(mapping: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Every target field of the mapping, rendered; the first failing field raises MappingError."""
    return {field: render_value(field, template, context) for field, template in mapping.items()}


def condition_holds(condition: str, context: Mapping[str, Any]) -> bool:
    if not condition.strip():
        return True
    expression = _expression(condition) or condition
    return bool(render_value("condition", "{{ " + expression + " }}", context))


def context_for(record: Mapping[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
    """What a template sees: the source record's fields, plus ``vars`` (the project variables)."""
    return {**record, "vars": dict(variables)}


__all__ = [
    "MappingError",
    "TemplateProblem",
    "check_condition",
    "check_template",
    "condition_holds",
    "context_for",
    "render_mapping",
    "render_value",
]
