"""Log in, create a connection in the browser, press Test and read Connection Success."""

import re
import socket

from playwright.sync_api import expect

from designer.models import Connection
from tests.browser.conftest import screenshot
from tests.servers.fixtures import IMAP_PASSWORD


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_it_creates_a_connection_and_tests_it(login, live_server, alice, team, project, dovecot, mailbox,
                                              smtp_factory, settings):
    settings.MAILWRIGHT_CHECK_PICKUP_SECONDS = 30
    smtp = smtp_factory("starttls", {"alice": IMAP_PASSWORD})
    page = login("alice")
    screenshot(page, "team")
    page.get_by_role("link", name="Support desk").click()
    # The palette opens the form in a dialog (test_palette_journey); here it is a page of its own.
    page.goto(live_server.url + page.get_by_role("link", name="New Email connection").get_attribute("href"))
    page.get_by_label("Name", exact=True).fill("Support mailbox")
    page.get_by_label("IMAP host").fill("localhost")
    page.get_by_label("IMAP port").fill(str(dovecot.tls_port))
    page.get_by_label("SMTP host").fill("localhost")
    page.get_by_label("SMTP port").fill(str(smtp.port))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(IMAP_PASSWORD)
    page.get_by_label("Custom CA certificate (PEM)").fill(dovecot.ca_pem)
    screenshot(page, "connection-form")
    # Test before saving: a wrong port fails readably, the right one succeeds, nothing is saved yet.
    page.get_by_label("IMAP port").fill(str(_closed_port()))
    page.get_by_role("button", name="Test").click()
    result = page.locator("#form-test")
    expect(result.get_by_text("Connection failed")).to_be_visible()
    expect(result.locator(".steps li.fail").first).to_be_visible()
    screenshot(page, "connection-form-test-failed")
    page.get_by_label("IMAP port").fill(str(dovecot.tls_port))
    page.get_by_role("button", name="Test").click()
    expect(result.get_by_text("Connection Success")).to_be_visible()
    expect(result.get_by_text("IMAP login")).to_be_visible()
    assert not Connection.objects.exists()
    page.get_by_role("button", name="Create connection").click()
    expect(page.get_by_role("heading", name="Support mailbox")).to_be_visible()
    page.get_by_role("button", name="Test").click()
    expect(page.get_by_text("Connection Success")).to_be_visible()
    expect(page.get_by_text("IMAP login")).to_be_visible()
    screenshot(page, "connection-tested")
    assert IMAP_PASSWORD not in page.content()


def test_it_shows_field_errors_inline_without_losing_input(login, live_server, alice, team, project):
    page = login("alice")
    page.goto(f"{live_server.url}/t/{team.slug}/projects/{project.pk}/connections/new/")
    page.get_by_label("Name", exact=True).fill("Bad/name")
    page.get_by_label("IMAP host").fill("imap.example.com")
    page.get_by_label("IMAP port").fill("70000")
    page.get_by_label("SMTP port").fill("abc")
    page.get_by_label("SMTP host").fill("smtp.example.com")
    page.get_by_label("Username").fill("support@example.com")
    page.get_by_label("Password").fill("typed-once")
    page.get_by_role("button", name="Create connection").click()
    expect(page.get_by_text("A name may not contain")).to_be_visible()
    expect(page.get_by_text("Enter a whole number.")).to_be_visible()  # letters are not silently dropped
    expect(page.get_by_label("SMTP port")).to_have_value("abc")
    expect(page.get_by_label("IMAP host")).to_have_value("imap.example.com")
    # The first field in error has the focus; the password is kept, not shown.
    expect(page.get_by_label("Name", exact=True)).to_be_focused()
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_label("Password")).to_have_attribute("placeholder", re.compile("Entered, not shown"))
    screenshot(page, "connection-form-errors")
    page.get_by_label("Name", exact=True).fill("Support mailbox")
    page.get_by_label("SMTP port").fill("587")
    page.get_by_role("button", name="Create connection").click()
    expect(page.get_by_text("Must be between 1 and 65535.")).to_be_visible()
    expect(page.get_by_label("IMAP port")).to_be_focused()
    page.get_by_label("IMAP port").fill("993")
    page.get_by_role("button", name="Create connection").click()
    expect(page.get_by_role("heading", name="Support mailbox")).to_be_visible()
    assert Connection.objects.get().get_secrets() == {"password": "typed-once"}
