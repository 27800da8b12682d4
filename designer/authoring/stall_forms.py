"""The "Warn when stalled" section of a source activity's page (the warnings: designer/running/stalls.py)."""

from __future__ import annotations

from typing import Any

from django import forms

from designer.authoring import canvas as design
from designer.authoring.forms import address_problems
from designer.models import Activity


class StallWarningForm(forms.ModelForm):
    class Meta:
        model = Activity
        fields = ["stall_notify_activity", "stall_notify_to", "stall_minutes"]
        labels = {"stall_notify_activity": "Warn through", "stall_notify_to": "Warn",
                  "stall_minutes": "After how many minutes without a successful poll"}
        help_texts = {
            "stall_notify_activity": "A Send Email activity of this project; its defaults fill the rest.",
            "stall_notify_to": "Addresses separated by commas. Warned once per stall, and again on recovery.",
            "stall_minutes": "Empty: three times its schedule's interval (an unscheduled source is not watched).",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        targets = design.slot_choices(design.project_activities(self.instance.project))["target"]
        field = self.fields["stall_notify_activity"]
        field.queryset = Activity.objects.filter(pk__in=[a.pk for a in targets])
        field.empty_label = "nobody: no warning"
        self.fields["stall_minutes"].min_value = 1

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        through, to = cleaned.get("stall_notify_activity"), cleaned.get("stall_notify_to", "")
        if through and not to:
            self.add_error("stall_notify_to", "Give the addresses to warn, or choose nobody.")
        elif to and not through:
            self.add_error("stall_notify_activity", "Choose the Send Email activity that sends the warning.")
        elif to:
            for problem in address_problems(to):
                self.add_error("stall_notify_to", problem)
        return cleaned
