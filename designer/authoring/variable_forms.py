"""The Variables panel's form: one for adding and changing a project variable."""

from __future__ import annotations

from typing import Any

from django import forms

from designer.authoring.variables import value_problem
from designer.models import Variable, validate_variable_name
from designer.models.variables import MAX_VALUE_CHARS


class VariableForm(forms.Form):
    name = forms.CharField(max_length=64, validators=[validate_variable_name],
                           help_text="Used as {{ vars.NAME }} in mappings, conditions and activity fields.")
    value = forms.CharField(required=False, max_length=MAX_VALUE_CHARS,
                            widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    secret = forms.BooleanField(required=False, label="Secret: stored encrypted and never shown again")
    description = forms.CharField(required=False, max_length=300)

    def __init__(self, *args: Any, variable: Variable, **kwargs: Any) -> None:
        if variable.pk is not None and "initial" not in kwargs:
            kwargs["initial"] = {"name": variable.name, "value": "" if variable.secret else variable.value,
                                 "secret": variable.secret, "description": variable.description}
        super().__init__(*args, **kwargs)
        self.variable = variable
        if variable.secret or (self.is_bound and self["secret"].data):
            # Never rendered back, not even to whoever typed it into a form that came back with an error.
            self.fields["value"].widget = forms.PasswordInput(
                render_value=False, attrs={"autocomplete": "new-password", "spellcheck": "false"})
        if variable.secret:
            self.fields["value"].widget.attrs["placeholder"] = "unchanged (secret, not shown)"
        for name in self.fields:
            self.fields[name].widget.attrs.setdefault("id", f"variable-{variable.pk or 'new'}-{name}")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        others = self.variable.project.variable_set.exclude(pk=self.variable.pk)
        if others.filter(name=name).exists():
            raise forms.ValidationError(f"The project already has a variable called {name}.")
        return name

    def clean_value(self) -> str:
        value = self.cleaned_data["value"]
        problem = value_problem(value)
        if problem:
            raise forms.ValidationError(f"The value {problem}.")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        typed, secret = cleaned.get("value", ""), cleaned.get("secret", False)
        if secret and not typed and not self.variable.secret:
            self.add_error("value", "Enter the secret value.")
        if not secret and not typed and self.variable.secret:
            # Turning a secret into a plain value would show it: it must be typed again.
            self.add_error("value", "Type the value again: a secret's value is never shown, so it cannot "
                                    "become a plain one unseen.")
        return cleaned

    @property
    def new_value(self) -> str | None:
        """The value to store; None keeps the stored secret (nothing typed over it)."""
        typed = self.cleaned_data["value"]
        return None if self.variable.secret and not typed else typed
