"""The designer's forms: workflows, operation cards, activities, and an operation's mapping and options.

The rules live elsewhere and are only called here: ``mapping.check_template`` for templates,
``operation_spec`` for options (the same as the project file), each connector's activity forms
for settings.
"""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Mapping
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.validators import validate_email
from django.db import models
from django.utils import timezone

from connectors.base import activity_ui
from designer.authoring import canvas as design
from designer.authoring import record_fields
from designer.authoring.rules import chain_cycle, describe_cycle, parse_options
from designer.models import Activity, AgentGroup, Operation, Project, Workflow
from designer.models.operations import MAX_DEBUG_AHEAD
from designer.running.mapping import check_condition, check_template
from designer.running.variables import variable_problems

__all__ = ["ActivityMetaForm", "OperationCardForm", "OperationForm", "WorkflowForm", "activity_ui", "timezone_names"]

# Bodies get room; every other target field is one line.
_LONG_FIELDS = ("text", "html")
# Paths of operation_spec errors -> the field that shows them.
_OPTION_ERROR_FIELDS = {"schedule.every_minutes": "interval_minutes", "schedule.cron": "cron",
                        "schedule.timezone": "timezone"}
# Fields that only make sense together: one of them invalid keeps the others as stored too.
_SAVED_TOGETHER = (("schedule", "interval_minutes", "cron", "timezone"), ("notify", "notify_activity", "notify_to"))
_OPTION_FIELDS = ("enabled", "schedule", "interval_minutes", "cron", "timezone", "timeout_minutes", "retries",
                  "retry_backoff_seconds", "log_level", "debug_until")
_DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


def _unique_in_project(model: type[models.Model], project: Project, name: str, pk: int | None, what: str) -> None:
    # The uniqueness constraints involve the project, which is not a form field, so Django's
    # form validation would skip them: check here for a message instead of an IntegrityError.
    if model.objects.filter(project=project, name=name).exclude(pk=pk).exists():
        raise forms.ValidationError(f"{what} called “{name}” already exists in this project.")


class WorkflowForm(forms.ModelForm):
    class Meta:
        model = Workflow
        fields = ["name"]
        labels = {"name": "Workflow name"}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        _unique_in_project(Workflow, self.instance.project, name, self.instance.pk, "A workflow")
        return name


class OperationCardForm(forms.Form):
    """What the canvas changes on a card: its name and the activities in its slots.

    Only the fields the request carries are changed, so dropping an activity posts just
    ``source`` (or ``target``) with the version.
    """

    version = forms.IntegerField(widget=forms.HiddenInput)
    name = forms.CharField(label="Operation name", max_length=100,
                           validators=Operation._meta.get_field("name").validators)
    source = forms.ModelChoiceField(label="Source", queryset=Activity.objects.none(), required=False)
    target = forms.ModelChoiceField(label="Target", queryset=Activity.objects.none(), required=False)

    def __init__(self, data: Mapping[str, Any], *, operation: Operation) -> None:
        super().__init__(data)
        self.operation = operation
        for name in ("name", "source", "target"):
            if name not in data:
                del self.fields[name]
            elif name != "name":
                self.fields[name].queryset = operation.project.activities.select_related("connection")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        _unique_in_project(Operation, self.operation.project, name, self.operation.pk, "An operation")
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for role in ("source", "target"):
            if role in cleaned:
                problem = design.place(self.operation, role, cleaned[role])
                if problem:
                    self.add_error(role, problem)
        return cleaned

    def changes(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in ("name", "source", "target") if name in self.fields}

    def error_text(self) -> str:
        parts = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else ""
            parts.append(f"{label}: {' '.join(errors)}" if label else " ".join(errors))
        return " ".join(parts)


def address_problems(text: str) -> list[str]:
    """What is wrong with a comma-separated list of addresses to notify, in words."""
    addresses = [a.strip() for a in text.split(",") if a.strip()]
    problems = [] if addresses else ["Give at least one address to notify."]
    for address in addresses:
        try:
            validate_email(address)
        except forms.ValidationError:
            problems.append(f"“{address}” is not an email address.")
    return problems


class ActivityMetaForm(forms.ModelForm):
    """Name and connection: what every activity has, whatever its connector."""

    class Meta:
        model = Activity
        fields = ["name", "connection"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ui = activity_ui(self.instance.type)
        usable = [c.pk for c in design.usable_connections(self.instance.project)
                  if design.offers(c, self.instance.type) and not ui.connection_problem(c.config)]
        field = self.fields["connection"]
        field.queryset = design.usable_connections(self.instance.project).filter(pk__in=usable)
        field.label_from_instance = lambda c: f"{c.name} (team connection)" if c.is_team_connection else c.name
        field.empty_label = None if usable else "no connection can serve this activity yet"
        # canvas.js adds a connection made in the dialog to this list when it can serve the type.
        field.widget.attrs["data-kind"] = self.instance.type

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        _unique_in_project(Activity, self.instance.project, name, self.instance.pk, "An activity")
        return name


def _known_names(source: Activity | None) -> tuple[str, ...] | None:
    """The names a template may use, or None when no source is placed (then names are not checked)."""
    if source is None:
        return None
    try:
        return (*source.activity_type.fields, "vars")
    except LookupError:
        return None


def _messages(problems: list[Any], known: tuple[str, ...] | None) -> list[str]:
    # Without a source every name is unknown; only syntax can be judged.
    return [p.message for p in problems if known is not None or not p.unknown_name]


class OperationForm(forms.Form):
    """An operation's mapping (one template per target field), condition, options and actions."""

    version = forms.IntegerField(widget=forms.HiddenInput)
    condition = forms.CharField(
        label="Condition", required=False, strip=False,
        widget=forms.Textarea(attrs={"rows": 1, "spellcheck": "false", "data-template-input": ""}),
        help_text="An expression; a message for which it is false is skipped, e.g. "
                  "'invoice' in subject|lower",
    )
    enabled = forms.BooleanField(label="Enabled", required=False,
                                 help_text="A disabled operation is not scheduled; Run now still works.")
    schedule = forms.ChoiceField(label="Schedule", choices=Operation.Schedule.choices, widget=forms.RadioSelect)
    interval_minutes = forms.IntegerField(label="Every (minutes)", required=False, min_value=1)
    cron = forms.CharField(label="Cron", required=False, max_length=120,
                           help_text="minute hour day-of-month month day-of-week, e.g. */15 8-18 * * 1-5")
    timezone = forms.CharField(label="Time zone", max_length=64, initial="UTC",
                               widget=forms.TextInput(attrs={"list": "timezones", "autocomplete": "off"}))
    timeout_minutes = forms.IntegerField(label="Timeout (minutes)", min_value=1,
                                         max_value=settings.MAILWRIGHT_MAX_OPERATION_MINUTES)
    retries = forms.IntegerField(label="Retries after a transient failure", min_value=0, max_value=10)
    retry_backoff_seconds = forms.IntegerField(label="First wait between retries (seconds)", min_value=0,
                                               max_value=600)
    log_level = forms.ChoiceField(label="Log", choices=Operation.LogLevel.choices)
    debug_until = forms.CharField(
        label="Debug mode until", required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=f"Keeps every rendered message (secrets redacted); at most {MAX_DEBUG_AHEAD.days} days ahead. "
                  f"Time zone {settings.TIME_ZONE}.",
    )
    on_success = forms.ModelChoiceField(label="On success, run", queryset=Operation.objects.none(),
                                        required=False, empty_label="nothing")
    on_failure = forms.ModelChoiceField(label="On failure, run", queryset=Operation.objects.none(),
                                        required=False, empty_label="nothing")
    notify = forms.ChoiceField(label="Send a notification", choices=Operation.Notify.choices)
    notify_activity = forms.ModelChoiceField(label="Through", queryset=Activity.objects.none(), required=False,
                                             empty_label="choose a Send Email activity")
    notify_to = forms.CharField(label="Notification to", required=False, max_length=500,
                                help_text="Addresses separated by commas")
    agent_group = forms.ModelChoiceField(label="Runs on", queryset=AgentGroup.objects.none(), required=False,
                                         empty_label="any worker (the default group)",
                                         help_text="An agent group runs it only on workers started for it "
                                                   "(manage.py run_agent --group NAME).")

    def __init__(self, data: Mapping[str, Any] | None = None, *, operation: Operation) -> None:
        super().__init__(data, initial=None if data is not None else self._initial(operation))
        self.operation = operation
        self.known_names = _known_names(operation.source)
        targets = design.slot_choices(design.project_activities(operation.project))["target"]
        self.fields["notify_activity"].queryset = Activity.objects.filter(pk__in=[a.pk for a in targets])
        others = operation.project.operations.exclude(pk=operation.pk)
        self.fields["on_success"].queryset = self.fields["on_failure"].queryset = others
        self.fields["agent_group"].queryset = AgentGroup.objects.filter(team_id=operation.project.team_id)
        self.mapping_names = self._mapping_names(operation)
        described = {spec.name: spec for spec in record_fields.fields_of(operation.target)}
        for name in self.mapping_names:
            spec = described.get(name)
            attrs = {"spellcheck": "false", "data-template-input": "", "rows": 3 if name in _LONG_FIELDS else 1,
                     "placeholder": record_fields.placeholder(operation.target, name)}
            self.fields[f"map_{name}"] = forms.CharField(
                label=spec.label if spec else name, required=False, strip=False, widget=forms.Textarea(attrs=attrs),
                help_text=" · ".join(part for part in (name, spec.type, spec.description) if part) if spec else "")
        self.order_fields(["version", *(f"map_{name}" for name in self.mapping_names)])

    @staticmethod
    def _mapping_names(operation: Operation) -> list[str]:
        """The target's fields, then any mapped field the target lacks (kept so it can be cleared)."""
        names: list[str] = []
        if operation.target is not None:
            try:
                names = list(operation.target.activity_type.fields)
            except LookupError:
                names = []
        return names + [name for name in operation.mapping if name not in names]

    @staticmethod
    def _initial(operation: Operation) -> dict[str, Any]:
        debug_until = operation.debug_until
        initial = {
            name: getattr(operation, name)
            for name in ("version", "condition", "enabled", "schedule", "interval_minutes", "cron", "timezone",
                         "retries", "retry_backoff_seconds", "log_level", "on_success", "on_failure", "notify",
                         "notify_activity", "notify_to", "agent_group")
        }
        initial["timeout_minutes"] = int(operation.time_limit.total_seconds() // 60)
        initial["debug_until"] = timezone.localtime(debug_until).strftime(_DATETIME_LOCAL) if debug_until else ""
        initial.update({f"map_{name}": _shown(value) for name, value in operation.mapping.items()})
        return initial

    def mapping_fields(self) -> list[forms.BoundField]:
        return [self[f"map_{name}"] for name in self.mapping_names]

    def template_fields(self) -> list[forms.BoundField]:
        return [*self.mapping_fields(), self["condition"]]

    def mapping_and_condition(self) -> tuple[dict[str, Any], str]:
        """The mapping and condition as typed (valid or not): what the preview renders.

        A value that is not text (a list from a project file) is shown as JSON and kept as it
        was unless that JSON is edited.
        """
        mapping: dict[str, Any] = {}
        for name in self.mapping_names:
            typed = self[f"map_{name}"].value() or ""
            original = self.operation.mapping.get(name)
            if not isinstance(original, str) and original is not None and typed == _shown(original):
                mapping[name] = original
            elif typed.strip():
                mapping[name] = typed
        return mapping, self["condition"].value() or ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        mapping, condition = self.mapping_and_condition()
        known = self.known_names
        for name, template in mapping.items():
            if isinstance(template, str):
                for message in _messages(check_template(name, template, known or ("vars",)), known):
                    self.add_error(f"map_{name}", message)
                for problem in variable_problems(name, template, self.operation.project.variables):
                    self.add_error(f"map_{name}", problem.message)
        for message in _messages(check_condition(condition, known or ("vars",)), known):
            self.add_error("condition", message)
        for problem in variable_problems("condition", condition, self.operation.project.variables):
            self.add_error("condition", problem.message)
        if not any(name in self.errors for name in _OPTION_FIELDS):
            self._parse_options(cleaned, mapping, condition)
        self._check_chain(cleaned)
        notify = cleaned.get("notify")
        if notify and notify != Operation.Notify.NEVER:
            if not cleaned.get("notify_activity"):
                self.add_error("notify_activity", "Choose the Send Email activity that sends the notification.")
            self._check_addresses(cleaned.get("notify_to", ""))
        return cleaned

    def _check_chain(self, cleaned: dict[str, Any]) -> None:
        """Refuse on-success / on-failure links that would chain runs in a loop, naming it."""
        links = {op.name: (op.on_success.name if op.on_success else None, op.on_failure.name if op.on_failure else None)
                 for op in self.operation.project.operations.select_related("on_success", "on_failure")}
        chosen = (cleaned.get("on_success"), cleaned.get("on_failure"))
        links[self.operation.name] = tuple(op.name if op else None for op in chosen)
        cycle = chain_cycle(links, self.operation.name)
        if cycle:
            self.add_error("on_success" if cleaned.get("on_success") else "on_failure", describe_cycle(cycle))

    def _parse_options(self, cleaned: dict[str, Any], mapping: dict[str, Any], condition: str) -> None:
        schedule: dict[str, Any] | None = None
        if cleaned["schedule"] == Operation.Schedule.INTERVAL:
            schedule = {"every_minutes": cleaned["interval_minutes"]}
        elif cleaned["schedule"] == Operation.Schedule.CRON:
            schedule = {"cron": cleaned["cron"], "timezone": cleaned["timezone"]}
        entry = {name: cleaned[name] for name in ("enabled", "timeout_minutes", "retries", "retry_backoff_seconds",
                                                    "log_level", "debug_until")}
        errors: list[str] = []
        self.options = parse_options(errors, "operation", {**entry, "schedule": schedule})
        for error in errors:
            path, _, message = error.removeprefix("operation.").partition(": ")
            field = _OPTION_ERROR_FIELDS.get(path, path)
            self.add_error(field if field in self.fields else None, f"{message[0].upper()}{message[1:]}.")
        self.options.update(mapping=mapping, condition=condition)

    def _check_addresses(self, text: str) -> None:
        for problem in address_problems(text):
            self.add_error("notify_to", problem)

    def unsaved_fields(self) -> list[str]:
        """The names of the fields whose errors keep them from saving (``is_valid()`` first)."""
        return [name for name in self.errors if name != NON_FIELD_ERRORS]

    def valid_part(self) -> OperationForm | None:
        """This form with every invalid field, and the fields saved with it, put back as stored: what
        autosave keeps of the edits while an invalid field waits to be corrected (``is_valid()`` first).
        None when there is nothing to keep apart (an error not tied to a field).

        The options are checked together once each is valid on its own, so putting fields back may
        reveal an error that was hidden; it is added to this form's errors, so it is shown too."""
        part: OperationForm = self
        for _ in range(3):
            if part.non_field_errors() or "version" in part.errors:
                return None
            if part is not self:
                for name, errors in part.errors.items():
                    if name not in self.errors:
                        self.add_error(name, errors)
            part = part._with_stored(part.unsaved_fields())
            if part.is_valid():
                return part
        return None

    def _with_stored(self, names: list[str]) -> OperationForm:
        stored = self._initial(self.operation)
        data = self.data.copy()
        for name in names:
            for kept in next((group for group in _SAVED_TOGETHER if name in group), (name,)):
                field = self.fields[kept]
                value = field.prepare_value(stored.get(kept))
                if isinstance(field, forms.BooleanField) and not value:
                    data.pop(kept, None)
                else:
                    data[kept] = "on" if value is True else ("" if value is None else value)
        return OperationForm(data, operation=self.operation)

    def changes(self) -> dict[str, Any]:
        """The model fields to save (``is_valid()`` first)."""
        data = self.cleaned_data
        return {
            **self.options,
            **{name: data[name] for name in ("on_success", "on_failure", "notify", "notify_activity", "agent_group")},
            "notify_to": data["notify_to"].strip(),
        }


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def timezone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones())
