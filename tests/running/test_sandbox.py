"""The mapping sandbox's limits: a hostile or careless template fails its message, never the worker."""

from __future__ import annotations

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
