"""Issue 15's journey: from an empty project, drag Read Email and Send Email from the palette onto the
canvas, finish both wizards in their dialog and run the operation, never leaving the project page."""

from playwright.sync_api import expect

from designer.models import Connection
from tests.browser.conftest import screenshot
from tests.helpers import make_connection, message, real_server_config, smtp_with_auth
from tests.servers.fixtures import IMAP_PASSWORD


def test_an_operation_is_built_by_dragging_from_the_palette_and_run_in_place(
        login, live_server, bob, team, project, dovecot, mailbox, smtp_factory):
    smtp_server = smtp_with_auth(smtp_factory)
    make_connection(team, project, password=IMAP_PASSWORD, **real_server_config(dovecot, smtp_server))
    mailbox.append("INBOX", message(1, subject="Printer jammed"))
    page = login("bob")
    page.get_by_role("link", name="Support desk").click()
    project_url = page.url
    expect(page).to_have_title("Support desk · Support · Mailwright")
    expect(page.get_by_text("No operations yet")).to_be_visible()

    # Read Email dropped on the empty canvas: its wizard opens in a dialog over the page.
    chips = page.locator(".connectors")
    chips.get_by_role("link", name="Read Email").drag_to(page.locator("#canvas"))
    dialog = page.get_by_role("dialog", name="New Read Email activity")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name", exact=True).fill("Read support inbox")
    dialog.get_by_role("button", name="INBOX", exact=True).click()
    for _step in ("Filters and limits", "After delivery", "Output"):
        dialog.get_by_role("button", name="Next").click()
    screenshot(page, "palette-read-email-dialog")
    dialog.get_by_role("button", name="Create activity").click()
    expect(dialog).to_be_hidden()
    card = page.locator(".op-card")
    expect(card).to_have_count(1)
    expect(card.locator(".slot-source .placed")).to_contain_text("Read support inbox")
    expect(page.get_by_role("status").filter(has_text="placed as the source")).to_be_visible()
    # The palette lists the new activity without a reload.
    expect(page.locator("#palette .activity", has_text="Read support inbox")).to_be_visible()

    # Send Email dropped on the operation: it becomes its target.
    chips.get_by_role("link", name="Send Email").drag_to(card)
    dialog = page.get_by_role("dialog", name="New Send Email activity")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name", exact=True).fill("Send to helpdesk")
    dialog.get_by_label("From", exact=True).fill("Support <support@example.com>")
    dialog.get_by_label("To", exact=True).fill("helpdesk@example.com")
    dialog.get_by_role("button", name="Create activity").click()
    expect(dialog).to_be_hidden()
    expect(card.locator(".slot-target .placed")).to_contain_text("Send to helpdesk")
    expect(card.get_by_text("✓ Ready")).to_be_visible()
    screenshot(page, "palette-built-operation")

    # Run now answers in the card.
    card.get_by_role("button", name="Run now").click()
    expect(card.locator(".run-badge .status")).to_have_text("Succeeded", timeout=20000)
    expect(card.locator(".run-badge")).to_contain_text("1 read, 1 sent")
    assert page.url == project_url
    received = smtp_server.wait_for_messages(1)
    assert received[0].rcpt_tos == ("helpdesk@example.com",)
    screenshot(page, "palette-run-in-card")


def test_chains_are_drawn_as_labelled_arrows_between_cards(login, live_server, bob, team, project):
    from designer.models import Operation, Workflow

    workflow = Workflow.objects.create(project=project, name="Main")
    archive = Operation.objects.create(project=project, workflow=workflow, name="Archive", position=1)
    alert = Operation.objects.create(project=project, workflow=workflow, name="Alert", position=2)
    Operation.objects.create(project=project, workflow=workflow, name="Forward", position=0,
                             on_success=archive, on_failure=alert)
    page = login("bob")
    page.get_by_role("link", name="Support desk").click()
    forward = page.locator(".op-card", has=page.get_by_role("textbox", name="Operation name").and_(
        page.locator('[value="Forward"]')))
    expect(forward.get_by_text("On success, run Archive")).to_be_visible()
    expect(forward.get_by_text("On failure, run Alert")).to_be_visible()
    arrows = page.locator(".op-cards > svg.chain-arrows")
    expect(arrows.locator("path.success")).to_have_count(1)
    expect(arrows.locator("path.failure")).to_have_count(1)
    expect(arrows.locator("text")).to_have_text(["on success", "on failure"])
    # Each arrow ends at the card it runs next.
    end = arrows.locator("path.success").get_attribute("d").split(" ")[-1]
    target = page.locator(f"#op-{archive.pk}").bounding_box()
    origin = page.locator(".op-cards").bounding_box()
    y = float(end.split(",")[1])
    assert target["y"] - origin["y"] < y < target["y"] - origin["y"] + target["height"]
    screenshot(page, "canvas-chains")


def test_a_connection_made_in_a_dialog_from_the_wizard_is_chosen_where_you_were(
        login, live_server, bob, team, project, dovecot, mailbox, smtp_factory):
    smtp = smtp_with_auth(smtp_factory)
    page = login("bob")
    page.get_by_role("link", name="Support desk").click()
    page.locator(".connectors").get_by_role("link", name="Read Email").drag_to(page.locator("#canvas"))
    wizard = page.get_by_role("dialog", name="New Read Email activity")
    expect(wizard.get_by_text("No connection can serve a Read Email activity yet.")).to_be_visible()
    wizard.get_by_label("Name", exact=True).fill("Read support inbox")
    wizard.get_by_role("link", name="Create an Email connection").click()

    form = page.frame_locator("#connection-dialog iframe")
    form.get_by_label("Name", exact=True).fill("Support mailbox")
    form.get_by_label("IMAP host").fill("localhost")
    form.get_by_label("IMAP port").fill(str(dovecot.tls_port))
    form.get_by_label("SMTP host").fill("localhost")
    form.get_by_label("SMTP port").fill(str(smtp.port))
    form.get_by_label("SMTP security").select_option("none")
    form.get_by_label("Username").fill("alice")
    form.get_by_label("Password").fill(IMAP_PASSWORD)
    form.get_by_label("Custom CA certificate (PEM)").fill(dovecot.ca_pem)
    screenshot(page, "connection-dialog")
    form.get_by_role("button", name="Create connection").click()

    # Back in the wizard, on the step it was on, with what was typed and the new connection chosen.
    expect(page.locator("#connection-dialog")).to_be_hidden()
    expect(wizard.get_by_label("Name", exact=True)).to_have_value("Read support inbox")
    expect(wizard.get_by_label("Connection")).to_have_value(str(Connection.objects.get().pk))
    expect(wizard.get_by_role("button", name="INBOX", exact=True)).to_be_visible()  # its folders load
    expect(page.locator("#palette")).to_contain_text("Support mailbox")
