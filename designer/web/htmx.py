"""Answers that work for htmx requests and plain ones alike."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django_htmx.http import HttpResponseClientRedirect


def redirect_to(request: HttpRequest, url: str, status: int = 302) -> HttpResponse:
    """After an action, a full page load of ``url``: htmx follows ``HX-Redirect``, a browser the redirect."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url, status=status)
