"""The designer never loses work nor says Ready when it isn't, reads well on a phone and shows real data while
mapping (issue 17's acceptance), in Chromium as a new user would."""

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from designer.models import Activity, ConnectionCheck, Operation, Run
from tests.helpers import make_connection


@pytest.fixture
def designed(team, project):
    """An email operation (no server needed until it runs): Read support inbox → Send to helpdesk."""
    connection = make_connection(team, project)
    reader = Activity.objects.create(project=project, connection=connection, type="read_email",
                                     name="Read support inbox", settings={"folder": "INBOX"})
    sender = Activity.objects.create(project=project, connection=connection, type="send_email",
                                     name="Send to helpdesk", settings={"defaults": {"from": "support@example.com"}})
    return Operation.objects.create(project=project, name="Forward to helpdesk", source=reader, target=sender,
                                    mapping={"to": "helpdesk@example.com", "subject": "Fwd: {{ subject }}"})


def _operation_page(login, live_server, team, operation) -> Page:
    page = login("bob")
    page.goto(f"{live_server.url}/t/{team.slug}/operations/{operation.pk}/")
    return page


def test_an_invalid_cron_does_not_keep_a_subject_edit_from_saving(login, live_server, bob, team, designed):
    page = _operation_page(login, live_server, team, designed)
    page.locator("input[name=schedule][value=cron]").check()
    page.get_by_label("Cron", exact=True).fill("every day")
    page.get_by_label("subject", exact=True).fill("Re: {{ subject }}")
    page.get_by_label("subject", exact=True).blur()
    expect(page.locator("#save-status")).to_contain_text("1 field not saved")
    expect(page.locator("#err-cron")).to_contain_text("Must have five fields")
    designed.refresh_from_db()
    assert designed.mapping["subject"] == "Re: {{ subject }}" and designed.cron == ""

    page.get_by_label("Cron", exact=True).fill("0 8 * * *")
    page.get_by_label("Cron", exact=True).blur()
    expect(page.locator("#save-status")).to_have_text("Saved")
    expect(page.locator("#err-cron")).to_be_empty()
    designed.refresh_from_db()
    assert (designed.cron, designed.mapping["subject"]) == ("0 8 * * *", "Re: {{ subject }}")


def test_leaving_with_an_unsaved_edit_asks_first(login, live_server, bob, team, designed):
    page = _operation_page(login, live_server, team, designed)
    asked: list[str] = []

    def answer(dialog) -> None:
        asked.append(dialog.type)
        dialog.dismiss()  # stay on the page

    page.on("dialog", answer)
    page.get_by_label("subject", exact=True).press_sequentially("!")  # typed, not yet saved
    page.get_by_role("link", name="Read support inbox", exact=True).click()
    page.wait_for_timeout(300)
    assert asked == ["beforeunload"]
    expect(page.get_by_label("subject", exact=True)).to_have_value("!Fwd: {{ subject }}")

    page.get_by_label("subject", exact=True).blur()
    expect(page.locator("#save-status")).to_have_text("Saved")
    page.get_by_role("link", name="Read support inbox", exact=True).click()
    expect(page.get_by_label("Name", exact=True)).to_have_value("Read support inbox")
    assert asked == ["beforeunload"]  # a saved page leaves without a question


def test_run_now_on_an_operation_without_a_target_creates_no_run_and_says_why(login, live_server, bob, team,
                                                                            designed):
    designed.target = None
    designed.save()
    page = _operation_page(login, live_server, team, designed)
    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("alert")).to_contain_text("Not started: the operation cannot run yet.")
    expect(page.locator("#run-refused")).to_contain_text("target missing")
    assert not Run.objects.exists()


# The WCAG contrast ratio of an element's text against the first opaque background behind it.
CONTRAST = """element => {
  const rgb = text => text.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const [R, G, B] = [r, g, b].map(c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  let node = element, background = [255, 255, 255];
  while (node) {
    const colour = rgb(getComputedStyle(node).backgroundColor);
    if (colour.length < 4 || colour[3] > 0) { background = colour.slice(0, 3); break; }
    node = node.parentElement;
  }
  const [a, b] = [luminance(rgb(getComputedStyle(element).color)), luminance(background)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_a_failed_test_reads_clearly_and_goes_stale_after_an_edit(login, live_server, bob, team, project):
    connection = make_connection(team, project)
    ConnectionCheck.objects.create(connection=connection, status="failed", finished_at=timezone.now(), steps=[
        {"name": "IMAP login", "ok": False, "detail": "authentication rejected"}])
    page = login("bob")
    page.goto(f"{live_server.url}/t/{team.slug}/connections/{connection.pk}/")
    failed = page.get_by_text("Connection failed")
    expect(failed).to_be_visible()
    for text in (failed, page.locator("#check .muted"), page.locator("#check .steps li.fail .mark")):
        assert text.evaluate(CONTRAST) >= 4.5  # WCAG AA for normal text
    expect(page.get_by_role("note")).to_have_count(0)

    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Read timeout (seconds)").fill("45")
    page.get_by_role("button", name="Save").click()
    stale = page.locator("#check .stale-note")
    expect(stale).to_contain_text("Tested before the settings changed on")
    assert stale.evaluate(CONTRAST) >= 4.5
