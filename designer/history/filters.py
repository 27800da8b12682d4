"""The history page's filter form: operation, status and a date range, in the team's time zone."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.db.models import QuerySet
from django.utils.http import urlencode

from designer.history.queries import start_of, team_operations
from designer.models import Operation, Project, Run, Team


class HistoryFilterForm(forms.Form):
    """The history's filters, read from the query string so a filtered page is a plain link."""

    operation = forms.ModelChoiceField(queryset=Operation.objects.none(), required=False,
                                       empty_label="All operations", label="Operation")
    status = forms.ChoiceField(choices=[("", "All statuses"), *Run.Status.choices], required=False, label="Status")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, team: Team, project: Project | None = None, **kwargs) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        field = self.fields["operation"]
        field.queryset = team_operations(team, project).select_related("project").order_by("project__name", "name")
        # Team-wide, two projects may both have a "Forward" operation: name the project too.
        field.label_from_instance = (lambda op: op.name) if project else (lambda op: f"{op.project.name} / {op.name}")

    def clean(self) -> dict:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "Must be on or after the From date.")
        return cleaned

    def filter(self, runs: QuerySet[Run]) -> QuerySet[Run]:
        """Apply the filters that are valid; an invalid one is shown as an error and ignored."""
        self.is_valid()
        data = self.cleaned_data
        if data.get("operation"):
            runs = runs.filter(operation=data["operation"])
        if data.get("status"):
            runs = runs.filter(status=data["status"])
        if data.get("since"):
            runs = runs.filter(queued_at__gte=start_of(data["since"]))
        if data.get("until"):
            runs = runs.filter(queued_at__lt=start_of(data["until"] + timedelta(days=1)))
        return runs

    def query(self, **extra: int) -> str:
        """The query string of these filters plus ``extra`` (a page cursor), for links."""
        params = {name: self.data[name] for name in self.fields if self.data.get(name)}
        params.update(extra)
        return "?" + urlencode(params)
