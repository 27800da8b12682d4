"""The mapping sandbox's limits: a hostile or careless template fails its message, never the worker."""

from __future__ import annotations

import re

import pytest

from designer.running import mapping
from designer.running.mapping import MappingError, render_value


def test_it_renders_a_single_expression_as_its_value() -> None:
    assert render_value("attachments", "{{ items }}", {"items": [1, 2]}) == [1, 2]


def test_it_refuses_python_internals() -> None:
    with pytest.raises(MappingError, match="SecurityError|unsafe"):
        render_value("subject", "{{ subject.__class__.__mro__ }}", {"subject": "x"})


def test_it_caps_the_output_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mapping, "MAX_OUTPUT_CHARS", 1000)
    with pytest.raises(MappingError, match="output longer than 1000 characters"):
        render_value("text", "{% for i in range(100) %}{{ text }}{% endfor %}", {"text": "x" * 50})


def test_it_caps_string_repetition() -> None:
    with pytest.raises(MappingError, match="repetition result too large"):
        render_value("text", "{{ 'a' * 100000000 }}", {})


def test_it_caps_range() -> None:
    with pytest.raises(MappingError, match="range"):
        render_value("text", "{% for i in range(10000000) %}{% endfor %}", {})


def test_it_caps_exponents() -> None:
    with pytest.raises(MappingError, match="exponent too large"):
        render_value("text", "{{ 10 ** 100000 }}", {})


def test_it_stops_a_template_past_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mapping, "MAX_SECONDS", 0.2)
    with pytest.raises(MappingError, match="took longer than"):
        render_value("text", "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}", {})


def test_it_names_the_field_that_failed() -> None:
    with pytest.raises(MappingError) as raised:
        render_value("subject", "{{ 1 / 0 }}", {})
    assert raised.value.field == "subject" and "ZeroDivisionError" in raised.value.message


@pytest.mark.parametrize("template", [
    # Loops that produce nothing: no check between chunks ever ran, and they held a worker for good.
    "{% set s = 'a' * 12000 %}{% for x in s %}{% for y in s %}{% endfor %}{% endfor %}",
    "{% set s = 'a' * 100000 %}{% for x in s %}{% for y in s %}{% if x == y %}{% endif %}{% endfor %}{% endfor %}",
])
@pytest.mark.timeout(30)
def test_the_time_limit_holds_for_loops_that_produce_nothing(monkeypatch: pytest.MonkeyPatch, template: str) -> None:
    monkeypatch.setattr(mapping, "MAX_SECONDS", 0.5)
    with pytest.raises(MappingError, match="took longer than"):
        render_value("text", template, {})


@pytest.mark.parametrize("template, reason", [
    ("{{ lipsum(10000000) }}", "lipsum"),
    ("{{ 'a'.encode() * 20000000 }}", "repetition result too large"),
    ("{{ '1'.zfill(300000000)|length }}", "zfill() result too large"),
    ("{{ 'x'.ljust(300000000) }}", "ljust() result too large"),
    ("{{ ('a' * 100000).replace('a', 'b' * 200) }}", "replace() result too large"),
    ("{{ ('\\t' * 1000000).expandtabs(100) }}", "expandtabs() result too large"),
])
def test_it_bounds_what_one_call_can_allocate(template: str, reason: str) -> None:
    with pytest.raises(MappingError, match=re.escape(reason)):
        render_value("text", template, {})


def test_an_ordinary_template_is_unaffected() -> None:
    context = {"subject": "Printer jammed", "to": ["a@example.com", "b@example.com"]}
    assert render_value("subject", "Fwd: {{ subject|upper }} ({{ to|join(', ') }})", context) == (
        "Fwd: PRINTER JAMMED (a@example.com, b@example.com)")
    assert render_value("text", "{{ subject.replace('jammed', 'fixed').zfill(20) }}", context) == "0000000Printer fixed"


@pytest.mark.parametrize("template", [
    "helpdesk@example.com", "two lines\n", "windows\r\nlines", "{{ subject }}", " {{subject}} ", "{{ attachments }}",
    "{{ cc }}", "{{ vars }}", "{{ true }}", "{{ none }}", "Fwd: {{ subject }}", "{{subject}}{{ subject }}!\n",
    "two\nlines {{\tsubject\n}} end\n", "Re: {{ cc }}", "{{ subject }} in {{ vars }}", "{{ subject }} {{- subject }}",
    "{{ subject }} }", "{{ subject }} {% if true %}x{% endif %}", "{{ subject }}\r\n", "{{ subject }} {{ true }}",
    "{{ [['X-Source', subject]] }}", "{{ ('a' 'b', 1, 2.5, none, True, false, cc, [vars, []], ()) }}",
    "{{ [subject|upper] }}", "{{ [subject.lower()] }}", "{{ [subject ~ 'x'] }}", "{{ [] }}", "{{ [[]] }}",
])
def test_plain_templates_take_a_shortcut_to_what_jinja_gives(template, monkeypatch):
    context = {"subject": "Grüße", "attachments": [{"filename": "a.txt"}], "cc": None, "vars": {"x": "1"}}
    shortcut = mapping.render_value("field", template, context)
    monkeypatch.setattr(mapping, "_shortcut", lambda _template: None)
    assert shortcut == mapping.render_value("field", template, context)


@pytest.mark.parametrize("template", ["{{ [['X-Source', message_id]] }}", "{{ ('a', [1, subject]) }}"])
def test_a_list_of_names_and_constants_is_built_without_jinja(template):
    assert mapping._shortcut(template)[0] == "literal"


@pytest.mark.parametrize("template", ["{{ subject, cc }}", "{{ 'X', 'Y' }}"])
def test_a_bare_tuple_is_refused_as_jinja_refuses_it(template):
    # A template's output would take it; the expression compiler, which renders a lone expression, does not.
    with pytest.raises(mapping.MappingError, match="chunk after expression"):
        mapping.render_value("field", template, {"subject": "x", "cc": None})


@pytest.mark.parametrize("template", ["{{ self }}", "x {{ self }}", "{{ [self] }}"])
def test_self_is_left_to_jinja_whatever_the_record_holds(template):
    assert mapping._shortcut(template) is None  # a template's name for itself
    assert "a field" not in mapping.render_value("field", "x {{ self }}", {"self": "a field"})


@pytest.mark.parametrize("template", ["{{ nope }}", "Fwd: {{ subject }} {{ nope }}"])
def test_a_missing_name_still_fails_through_the_shortcut(template):
    with pytest.raises(mapping.MappingError, match="'nope' is undefined"):
        mapping.render_value("field", template, {"subject": "x"})
