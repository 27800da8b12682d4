"""Secrets typed into a form that came back with an error (a connection's, a secret project variable's):
kept for that form, so the page need not ask for them again, and never rendered.

They are encrypted with the key that encrypts connection secrets and stored in the session under a
random token; the form carries only the token. A field typed again wins; saving discards them.
"""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.http import HttpRequest, QueryDict

from designer.crypto import SecretsUnreadable, decrypt_secrets, encrypt_secrets

SESSION_KEY = "mailwright-kept-secrets"
FIELD = "kept_secrets"
# Forms open at once in one session whose secrets are kept; the oldest is forgotten first.
MAX_FORMS = 5
NOTE = "Entered, not shown: kept for this form. Type it again to change it."


def restore(request: HttpRequest) -> QueryDict:
    """The posted data, with the kept secrets filling the secret fields left empty."""
    data = request.POST.copy()
    token = data.get(FIELD, "")
    stored = request.session.get(SESSION_KEY, {}).get(token)
    if stored:
        try:
            kept = decrypt_secrets(stored)
        except SecretsUnreadable:
            kept = {}
        for name, value in kept.items():
            if not data.get(name):
                data[name] = value
    return data


def keep(request: HttpRequest, form: forms.Form, data: QueryDict) -> str:
    """Keep the secrets typed in ``form`` (bound to ``data``); the token for the form, "" when none."""
    typed = {name: data[name] for name, field in form.fields.items()
             if isinstance(field.widget, forms.PasswordInput) and data.get(name)}
    if not typed:
        return ""
    token = data.get(FIELD) or secrets.token_urlsafe(16)
    store: dict[str, Any] = dict(request.session.get(SESSION_KEY, {}))
    store.pop(token, None)
    store[token] = encrypt_secrets(typed)
    request.session[SESSION_KEY] = dict(list(store.items())[-MAX_FORMS:])
    for name in typed:
        form.fields[name].widget.attrs["placeholder"] = NOTE
    return token


def discard(request: HttpRequest) -> None:
    token = request.POST.get(FIELD, "")
    store = dict(request.session.get(SESSION_KEY, {}))
    if store.pop(token, None) is not None:
        request.session[SESSION_KEY] = store
