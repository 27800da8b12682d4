"""Project variables in templates: which ones a template uses, and activity settings rendered with them.

An activity's settings (a folder, a filter, a default) may hold ``{{ vars.NAME }}``. They are rendered
through the mapping's sandbox before the connector parses them, so a connector only ever sees values.
A target's defaults of record fields are the exception: they may also use the record's fields, so they
are rendered for each record like the mapping (see ``activity_settings``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jinja2 import Environment, TemplateError, nodes

from designer.running.mapping import MappingError, TemplateProblem, check_template, render_value

# Only parses, to find the names a template reads: rendering always goes through the mapping's sandbox.
_PARSER = Environment(autoescape=True)

_USE = r"vars\s*(?:\.\s*{name}\b|\[\s*['\"]{name}['\"]\s*\])"


def is_template(value: Any) -> bool:
    """Whether a setting holds a template anywhere (a default may be a list or a mapping of texts)."""
    return any("{{" in text or "{%" in text for _path, text in texts(value))


def texts(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every text inside a setting, with its dotted path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from texts(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from texts(item, f"{path}[{index}]")


def used_variables(template: str) -> set[str]:
    """The names a template reads as ``vars.NAME`` or ``vars['NAME']``."""
    try:
        parsed = _PARSER.parse(template)
    except TemplateError:
        return set(re.findall(r"vars\s*\.\s*([A-Za-z_]\w*)", template))
    names = {node.attr for node in parsed.find_all(nodes.Getattr)
             if isinstance(node.node, nodes.Name) and node.node.name == "vars"}
    names |= {node.arg.value for node in parsed.find_all(nodes.Getitem)
              if isinstance(node.node, nodes.Name) and node.node.name == "vars"
              and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)}
    return names


def uses_variable(template: str, name: str) -> bool:
    return name in used_variables(template) or bool(re.search(_USE.format(name=re.escape(name)), template))


def variable_problems(field: str, template: str, names: Iterable[str]) -> list[TemplateProblem]:
    """``vars.NAME`` for a NAME the project does not define."""
    known = set(names)
    return [TemplateProblem(field, f"uses vars.{name}, which this project does not define", f"vars.{name}")
            for name in sorted(used_variables(template) - known)]


def setting_problems(data: Mapping[str, Any], opened_with: Mapping[str, Any], variables: Iterable[str],
                     record_fields: Iterable[str]) -> dict[str, list[str]]:
    """Template problems in an activity's settings, by dotted path: syntax, unknown variables, and record
    fields used where no record is known. ``opened_with`` is what the session is opened with: a text of
    ``data`` not in it is a default rendered for each record, which may use ``record_fields``."""
    variables, opened = list(variables), dict(texts(opened_with))
    problems: dict[str, list[str]] = {}
    for path, text in texts(data):
        if "{{" not in text and "{%" not in text:
            continue
        known = ("vars",) if opened.get(path) == text else ("vars", *record_fields)
        found = check_template(path, text, known) + variable_problems(path, text, variables)
        if found:
            problems[path] = [problem.message for problem in found]
    return problems


MASK = "••••••"


def masked(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with every secret variable's value hidden, for a page that shows rendered text."""
    secrets = sorted((s for s in secrets if s), key=len, reverse=True)
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, Mapping):
        return {key: masked(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(masked(item, secrets) for item in value)
    return value


def render_settings(data: Any, variables: Mapping[str, str], path: str = "") -> Any:
    """The settings with every template rendered with ``vars`` only; MappingError names the setting."""
    if isinstance(data, str):
        return render_value(path, data, {"vars": dict(variables)}) if is_template(data) else data
    if isinstance(data, Mapping):
        return {key: render_settings(item, variables, f"{path}.{key}" if path else str(key))
                for key, item in data.items()}
    if isinstance(data, list):
        return [render_settings(item, variables, f"{path}[{index}]") for index, item in enumerate(data)]
    return data


__all__ = ["MappingError", "is_template", "masked", "render_settings", "setting_problems", "texts", "used_variables",
           "uses_variable", "variable_problems"]
