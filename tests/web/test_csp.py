"""Every page carries the Content-Security-Policy (django-csp), and no template runs inline script."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from tests.helpers import make_connection

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _policy(response) -> dict[str, str]:
    header = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in header.split(";") if part.strip()}


@pytest.mark.django_db
def test_every_page_has_the_policy(alice_client: Client, alice, bob, team, project) -> None:
    connection = make_connection(team, project)
    slug = team.slug
    urls = ["/", f"/t/{slug}/", f"/t/{slug}/members/", f"/t/{slug}/projects/{project.pk}/",
            f"/t/{slug}/connections/", f"/t/{slug}/connections/{connection.pk}/",
            f"/t/{slug}/connections/{connection.pk}/edit/", "/admin/", "/no/such/page/"]
    for url in urls:
        response = alice_client.get(url)
        assert response.status_code in (200, 302, 404), url
        policy = _policy(response)
        assert policy["default-src"] == "default-src 'self'", url
        assert policy["script-src"] == "script-src 'self'", url
    anonymous = Client()
    assert "Content-Security-Policy" in anonymous.get("/login/").headers
    assert "Content-Security-Policy" in anonymous.get("/admin/login/").headers


def test_no_template_has_inline_script_or_event_handlers() -> None:
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), path  # every <script> has a src
        assert not re.search(r"\son[a-z]+\s*=", text), path  # onclick=, onchange=, ...
        assert "hx-on" not in text, path  # htmx would need eval for it
        assert "javascript:" not in text, path
        assert not re.search(r"<style(?![^>]*\bnonce=)", text), path  # a <style> needs the page's nonce
