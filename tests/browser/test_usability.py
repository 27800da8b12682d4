"""The designer never loses work nor says Ready when it isn't, reads well on a phone and shows real data while
mapping (issue 17's acceptance), in Chromium as a new user would."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from designer.models import Activity, ConnectionCheck, Operation, Run, RunLog, RunRecord
from tests.browser.conftest import screenshot
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
    page.get_by_label("Subject", exact=True).fill("Re: {{ subject }}")
    page.get_by_label("Subject", exact=True).blur()
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
    expect(page.locator("#save-status")).to_have_text(re.compile(r"\s*Saved \d+ s ago\s*"), timeout=8000)


def test_leaving_with_an_unsaved_edit_asks_first(login, live_server, bob, team, designed):
    page = _operation_page(login, live_server, team, designed)
    asked: list[str] = []

    def answer(dialog) -> None:
        asked.append(dialog.type)
        dialog.dismiss()  # stay on the page

    page.on("dialog", answer)
    page.get_by_label("Subject", exact=True).press_sequentially("!")  # typed, not yet saved
    page.get_by_role("link", name="Read support inbox", exact=True).click()
    for _ in range(50):  # the question comes as the navigation starts
        if asked:
            break
        page.wait_for_timeout(100)
    assert asked == ["beforeunload"]
    expect(page.get_by_label("Subject", exact=True)).to_have_value("!Fwd: {{ subject }}")

    page.get_by_label("Subject", exact=True).blur()
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
    refusal = page.locator("#run-refused").get_by_role("alert")
    expect(refusal).to_contain_text("Not started: the operation cannot run yet.")
    expect(refusal).to_contain_text("target missing")
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


@pytest.fixture
def finished_run(designed):
    """A failed run with a long error, a long subject and log lines: what pushes a narrow page wide."""
    started = timezone.now() - timedelta(minutes=3)
    run = Run.objects.create(operation=designed, status=Run.Status.PARTIAL, started_at=started,
                             finished_at=started + timedelta(seconds=42), read_count=2, sent_count=1,
                             failed_count=1, worker="celery@worker-host-with-a-long-name.example.internal:11365",
                             message="1 message failed: 550 5.7.1 <helpdesk@example.com>: Recipient address rejected")
    RunRecord.objects.create(run=run, position=1, identity="<a-very-long-message-id-1234567890@mail.example.com>",
                             subject="Printer on fire in the third-floor meeting room, again, please send help",
                             sender="Ada Lovelace <ada.lovelace@analytical-engines.example.org>",
                             recipients="helpdesk@example.com", status=RunRecord.Status.SENT)
    RunRecord.objects.create(run=run, position=2, identity="<another-long-message-id-0987654321@mail.example.com>",
                             subject="Invoice question", sender="billing@example.com", recipients="x@example.com",
                             status=RunRecord.Status.FAILED,
                             error="550 5.7.1 <helpdesk@example.com>: Recipient address rejected: user unknown in "
                                   "virtual mailbox table")
    RunLog.objects.create(run=run, level="error", text="Send to helpdesk refused the message: 550 5.7.1 " + "x" * 80)
    return run


def test_at_390_px_neither_the_run_page_nor_the_history_scrolls_sideways(login, live_server, bob, team, project,
                                                                         finished_run):
    page = login("bob")
    page.set_viewport_size({"width": 390, "height": 844})
    for name, path in (("run", f"runs/{finished_run.pk}/"), ("team-history", "runs/"),
                       ("history", f"projects/{project.pk}/runs/")):
        page.goto(f"{live_server.url}/t/{team.slug}/{path}")
        page.wait_for_load_state("networkidle")
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (path, width)
        screenshot(page, f"{name}-390px")
    # The history stacks each run's counts and times where they can be read, and its chart is legible.
    row = page.locator("#runs-table tbody tr").first
    for label, value in (("Sent", "1"), ("Failed", "1"), ("Duration", "42 s"), ("Started", ":")):
        cell = row.locator(f'td[data-label="{label}"]')
        expect(cell).to_be_visible()
        expect(cell).to_contain_text(value)
        box = cell.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (label, box)
        assert cell.evaluate("td => getComputedStyle(td, '::before').content") == f'"{label}"'
    labels = page.locator("#chart svg text")
    expect(labels.first).to_be_visible()
    sizes = labels.evaluate_all("""nodes => nodes.map(n => parseFloat(getComputedStyle(n).fontSize)
        * n.ownerSVGElement.getBoundingClientRect().width / n.ownerSVGElement.viewBox.baseVal.width)""")
    assert min(sizes) >= 11, sizes


def test_the_mapping_shows_the_real_messages_values_beside_the_fields(login, live_server, bob, team, designed):
    page = _operation_page(login, live_server, team, designed)
    # At load the sample message is previewed: its values sit beside the source's chips.
    expect(page.locator("#src-subject")).to_have_text("Printer on floor 3 is jammed again")
    expect(page.locator("#out-map_subject")).to_have_text("Fwd: Printer on floor 3 is jammed again")
    screenshot(page, "mapping-live-values")
    # Typing renders again through the sandbox, a moment after the last key.
    page.get_by_label("Subject", exact=True).fill("[{{ from }}] {{ subject|lower }}")
    expect(page.locator("#out-map_subject")).to_contain_text("] printer on floor 3 is jammed again")
    expect(page.locator("#preview")).to_contain_text("Nothing was sent.")
    page.get_by_label("Subject", exact=True).fill("{{ subjcet }}")
    expect(page.locator("#err-map_subject")).to_contain_text("did you mean subject?")
