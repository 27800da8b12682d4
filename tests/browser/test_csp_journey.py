"""The pages run under their Content-Security-Policy: no violation reported by the browser."""

from __future__ import annotations

from html import escape

from django.test import Client
from playwright.sync_api import Page, expect

from designer.running.preview import sandboxed_document
from tests.helpers import make_connection

# The browser reports each blocked script, style or handler on the console, and as a DOM event.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));
"""


def _watch(page: Page) -> list[str]:
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text) if "Content Security Policy" in message.text
            else None)
    page.on("pageerror", lambda error: seen.append(str(error)))
    page.add_init_script(RECORD_VIOLATIONS)
    return seen


def _violations(page: Page) -> list[str]:
    return page.evaluate("window.__cspViolations")


def test_the_project_connection_and_members_pages_report_no_csp_violation(login, live_server, alice, bob,
                                                                            team, project) -> None:
    connection = make_connection(team, project)
    page = login("alice")
    seen = _watch(page)
    base = f"{live_server.url}/t/{team.slug}"

    page.goto(f"{base}/projects/{project.pk}/")
    expect(page.get_by_role("heading", name="Support desk")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert _violations(page) == []

    page.goto(f"{base}/connections/{connection.pk}/")
    expect(page.get_by_role("heading", name="Support mailbox")).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert _violations(page) == []

    # The connection form hides the fields of other sign-in methods with a nonce'd <style>, which an
    # htmx swap of the form (here: errors) must not lose.
    page.goto(f"{base}/projects/{project.pk}/connections/new/")
    page.get_by_label("Authentication").select_option("oauth2_microsoft365")
    expect(page.get_by_label("Password")).to_be_hidden()
    page.get_by_role("button", name="Create connection").click()
    expect(page.get_by_text("Please correct the fields marked below")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_hidden()
    assert _violations(page) == []

    # The confirm that used to be an inline onclick comes from static/js/app.js now.
    page.goto(f"{base}/members/")
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Remove").last.click()
    assert asked == ["Remove bob from the team?"]
    expect(page.get_by_role("cell", name="bob")).to_be_visible()  # dismissed: nothing removed
    assert _violations(page) == []

    assert seen == []



def test_the_sanitised_html_preview_keeps_its_inline_styles_under_the_page_policy(page: Page, live_server) -> None:
    # The preview's iframe (sandbox + srcdoc) inherits the page's policy: mail HTML is mostly inline
    # styles, which must still show. Served with the very header the login page gets.
    policy = Client().get("/login/").headers["Content-Security-Policy"]
    srcdoc = sandboxed_document('<p style="color: rgb(200, 0, 0)">Hello</p><script>alert(1)</script>')
    body = f'<!doctype html><iframe sandbox srcdoc="{escape(srcdoc)}"></iframe>'
    url = f"{live_server.url}/preview-probe"
    page.route(url, lambda route: route.fulfill(status=200, body=body, content_type="text/html",
                                                headers={"Content-Security-Policy": policy}))
    page.goto(url)
    frame = page.frames[1]
    frame.wait_for_selector("p")

    assert frame.eval_on_selector("p", "e => getComputedStyle(e).color") == "rgb(200, 0, 0)"
    assert "<script" not in srcdoc
