"""Design an operation in the browser: activities from the palette, place them, map, preview a real message."""

import re

from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.helpers import make_connection, message, real_server_config
from tests.servers.fixtures import IMAP_PASSWORD


def test_it_designs_an_operation_and_previews_a_real_message(login, live_server, bob, charlie, team, project,
                                                              dovecot, mailbox, smtp_server):
    make_connection(team, project, password=IMAP_PASSWORD, **real_server_config(dovecot, smtp_server))
    mailbox.create_folder("Archive")
    mailbox.append("INBOX", message(1, subject="Printer jammed"))
    flags = mailbox.flags()
    page = login("bob")
    page.get_by_role("link", name="Support desk").click()
    expect(page.get_by_role("link", name="Project endpoints and connectors")).to_be_visible()
    expect(page.get_by_text("No operations yet")).to_be_visible()
    screenshot(page, "designer-empty")

    # Read Email, in four steps.
    page.get_by_role("link", name="+ New Read Email activity on Support mailbox").click()
    page.get_by_label("Name", exact=True).fill("Read support inbox")
    expect(page.get_by_role("button", name="Archive")).to_be_visible()
    page.get_by_label("Search folders").fill("inb")
    expect(page.get_by_role("button", name="Archive")).to_be_hidden()
    # A folder the server does not have is refused while the wizard has its list.
    page.get_by_label("Folder", exact=True).fill("Achive")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("The server has no folder “Achive”.")).to_be_visible()
    page.get_by_role("button", name="INBOX", exact=True).click()
    screenshot(page, "read-email-step-1")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Messages per run, at most").fill("50")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("Move to folder")).to_be_hidden()  # only when a move is chosen
    page.get_by_label("After a message is delivered").select_option("move")
    expect(page.get_by_label("Move to folder")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("This field is required.")).to_be_visible()  # move needs a folder
    page.get_by_label("Move to folder").fill("Archive")
    screenshot(page, "read-email-step-2")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Output: one record per message")).to_be_visible()
    screenshot(page, "read-email-step-3")
    page.get_by_role("button", name="Create activity").click()
    expect(page.get_by_text("Activity Read support inbox created.")).to_be_visible()
    # Editing it later is one page of sections, not the wizard again.
    page.locator("#palette").get_by_role("link", name="Read support inbox").click()
    expect(page.get_by_role("group", name="After delivery")).to_be_visible()
    expect(page.get_by_role("button", name="Next")).to_have_count(0)
    page.get_by_label("Messages per run, at most").fill("60")
    screenshot(page, "read-email-edit")
    page.get_by_role("button", name="Save activity").click()
    expect(page.get_by_text("Activity Read support inbox saved.")).to_be_visible()

    # Send Email, one form of defaults.
    page.get_by_role("link", name="+ New Send Email activity on Support mailbox").click()
    page.get_by_label("Name", exact=True).fill("Send to helpdesk")
    page.get_by_label("From", exact=True).fill("Support <support@example.com>")
    screenshot(page, "send-email-form")
    page.get_by_role("button", name="Create activity").click()
    expect(page.get_by_text("Activity Send to helpdesk created.")).to_be_visible()

    # An operation: the source placed with the keyboard alternative, the target dragged in.
    page.get_by_role("button", name="+ Add operation").click()
    card = page.locator(".op-card", has=page.get_by_label("Operation name"))
    expect(card.get_by_text("empty: place a source and a target")).to_be_visible()
    card.get_by_label("Source of New operation").select_option(label="Read support inbox")
    card.get_by_role("button", name="Place source of New operation").click()
    expect(card.get_by_text("Saved")).to_be_visible()
    page.locator(".activity", has_text="Send to helpdesk").drag_to(card.locator(".slot-target"))
    expect(card.locator(".slot-target .placed")).to_contain_text("Send to helpdesk")
    # Not ready until something gives the message its recipients (the mapping, below).
    expect(card.get_by_text("Send to helpdesk has no default 'to'")).to_be_visible()
    card.get_by_label("Operation name").fill("Forward to helpdesk")
    card.get_by_label("Operation name").press("Enter")
    expect(page.get_by_label("Operation name")).to_have_value("Forward to helpdesk")
    expect(page.locator(".op-card")).not_to_have_class(re.compile("htmx-request"))
    screenshot(page, "designer-canvas")

    # The mapping: an error shows while typing, a click inserts a source field, autosave says Saved.
    page.get_by_role("link", name="Edit mapping of Forward to helpdesk").click()
    page.get_by_label("To", exact=True).fill("helpdesk@example.com")
    page.get_by_label("Text body", exact=True).fill("{{ text ")
    expect(page.locator("#err-map_text")).to_contain_text("unexpected end of template")
    page.get_by_label("Text body", exact=True).fill("{{ text }}")
    expect(page.locator("#err-map_text")).to_be_empty()
    page.get_by_label("Subject", exact=True).fill("Fwd: ")
    page.get_by_role("button", name="subject", exact=True).click()
    expect(page.get_by_label("Subject", exact=True)).to_have_value("Fwd: {{ subject }}")
    expect(page.locator("#save-status")).to_have_text("Saved")
    expect(page.get_by_text("✓ Ready to run")).to_be_visible()
    screenshot(page, "operation-mapping")

    # Preview with the newest message of the source: rendered, nothing sent, nothing marked.
    page.get_by_role("link", name=re.compile("Load latest messages")).click()
    newest = page.get_by_label("Message").locator("option", has_text="Printer jammed")
    page.get_by_label("Message").select_option(newest.get_attribute("value"))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview")).to_contain_text("Fwd: Printer jammed")
    expect(page.locator("#preview")).to_contain_text("Nothing was sent.")
    screenshot(page, "operation-preview")
    assert mailbox.flags() == flags

    # The viewer sees the design but no control to change it.
    page.context.clear_cookies()
    page = login("charlie")
    page.get_by_role("link", name="Support desk").click()
    expect(page.get_by_role("heading", name="Forward to helpdesk")).to_be_visible()
    expect(page.get_by_role("button", name="+ Add operation")).to_have_count(0)
    screenshot(page, "designer-viewer")
    page.set_viewport_size({"width": 600, "height": 900})
    screenshot(page, "designer-narrow")
