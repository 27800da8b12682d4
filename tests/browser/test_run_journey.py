"""Run now, watch the run live, read the history, replay a failure, import and export: in Chromium.

Against the real Dovecot and aiosmtpd. Celery is eager in tests, which would finish a run inside
the Run now request; to watch live progress, the run's task goes to a thread instead, started a
moment later as a worker would be.
"""

import json
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from imapclient import IMAPClient
from playwright.sync_api import Page, expect

from designer import demo
from designer.models import Operation, Project, Run
from designer.running import engine
from tests.browser.conftest import SCREENSHOTS, screenshot
from tests.fixtures import PASSWORD
from tests.helpers import import_project, message, project_file, smtp_with_auth

# What a queued run shows before the "worker" picks it up, long enough to be seen polling.
WORKER_DELAY = 1.5


class _ThreadWorker:
    """Stands in for ``designer.running.runs.execute_run``: runs the engine in a thread after a delay."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def apply_async(self, args, **options) -> None:
        thread = threading.Thread(target=self._execute, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    @staticmethod
    def _execute(run_id: int) -> None:
        time.sleep(WORKER_DELAY)
        try:
            engine.execute(run_id)
        finally:
            connection.close()


@pytest.fixture
def worker(monkeypatch):
    fake = _ThreadWorker()
    monkeypatch.setattr("designer.running.runs.execute_run", fake)
    yield fake
    for thread in fake.threads:
        thread.join(timeout=30)


@pytest.fixture
def forward(transactional_db, dovecot, mailbox, smtp_factory, tmp_path, monkeypatch, team, bob, charlie):
    smtp = smtp_with_auth(smtp_factory)
    operation = import_project(tmp_path, monkeypatch, project_file(dovecot, smtp))
    return operation, smtp


def _history(page: Page, live_server, team, operation: Operation) -> None:
    page.goto(f"{live_server.url}/t/{team.slug}/runs/?operation={operation.pk}")


def test_it_runs_an_operation_and_watches_it_to_the_end(login, live_server, team, forward, mailbox, worker):
    operation, smtp = forward
    for n in range(3):
        mailbox.append("INBOX", message(n))
    page = login("bob")
    _history(page, live_server, team, operation)
    expect(page.get_by_text("No runs match these filters.")).to_be_visible()

    page.get_by_role("button", name="Run Forward to helpdesk now").click()
    expect(page.get_by_role("heading", name="Run ")).to_contain_text("Forward to helpdesk")
    expect(page.locator("#progress .status")).to_have_text("Queued")  # the page is up before the worker
    screenshot(page, "run-queued")
    expect(page.locator("#progress .status")).to_have_text("Succeeded", timeout=20000)
    expect(page).to_have_title(re.compile(r"^Run \d+ · Succeeded · Forward to helpdesk · Mailwright$"))
    counts = page.locator(".counts")
    expect(counts.locator("div", has_text="Read").locator("dd")).to_have_text("3")
    expect(counts.locator("div", has_text="Sent").locator("dd")).to_have_text("3")
    rows = page.locator("table.records tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Question 0")
    expect(rows.first).to_contain_text("customer0@example.org")
    expect(rows.first).to_contain_text("Fwd: Question 0")  # what it was sent as, beside what was read
    rows.first.get_by_role("link", name="Details of message 1").click()
    expect(page.get_by_role("heading", name="Delivery ledger")).to_be_visible()
    expect(page.locator(".ledger-steps")).to_contain_text("this run")
    page.go_back()
    expect(page.locator(".log")).to_contain_text("run ended succeeded")
    screenshot(page, "run-page")
    assert sorted(m.subject for m in smtp.messages) == [f"Fwd: Question {n}" for n in range(3)]

    page.get_by_role("link", name="Runs of Forward to helpdesk").click()
    row = page.locator("table.runs tbody tr").first
    expect(row).to_contain_text("Succeeded")
    expect(row.locator("td.num").nth(0)).to_have_text("3")  # source records read
    expect(row.locator("td.num").nth(1)).to_have_text("3")  # target records sent
    expect(page.locator("svg.chart").first).to_be_visible()
    screenshot(page, "history")
    # The chart follows the status filter too; a click anywhere on a row opens its run.
    page.get_by_label("Status", exact=True).select_option("failed")
    expect(page.locator("#chart")).to_contain_text("Nothing in the last 30 days for these filters.")
    page.get_by_label("Status", exact=True).select_option("")
    expect(page.locator("#chart svg.chart").first).to_be_visible()
    # force: the click lands where the message is, on the link stretched over it.
    page.locator("table.runs tbody tr").first.locator("td.message").click(force=True)
    expect(page.get_by_role("heading", name="Run ")).to_contain_text("Forward to helpdesk")
    page.go_back()

    page.goto(f"{live_server.url}/t/{team.slug}/runs/")
    page.get_by_role("link", name="Sources").click()
    expect(page.locator("table.sources")).to_contain_text("Read support inbox")
    expect(page.locator("table.sources .health")).to_have_text("Healthy")
    screenshot(page, "sources")


def test_it_replays_a_failed_message_once_after_confirmation(login, live_server, team, forward, mailbox, worker):
    operation, smtp = forward
    mailbox.append("INBOX", message(7))
    smtp.fail_always(554, "5.7.1 rejected by policy")
    engine.execute(Run.objects.create(operation=operation, trigger="command").pk)
    smtp.clear_faults()
    run = Run.objects.get()
    page = login("bob")
    page.goto(f"{live_server.url}/t/{team.slug}/runs/{run.pk}/")
    expect(page.locator("#progress .status")).to_have_text("Failed")
    expect(page.locator("table.records")).to_contain_text("554 5.7.1 rejected by policy")
    screenshot(page, "run-failed")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("link", name="Replay").click()
    expect(page.get_by_text("Replaying “Question 7” as run")).to_be_visible()
    expect(page.locator("#progress .status")).to_have_text("Succeeded", timeout=20000)
    expect(page.get_by_text(f"Run {run.pk} of Forward to helpdesk")).to_be_visible()  # the parent
    assert [m.subject for m in smtp.messages] == ["Fwd: Question 7"]

    page.goto(f"{live_server.url}/t/{team.slug}/runs/{run.pk}/")
    expect(page.locator("table.records")).to_contain_text("replayed")
    expect(page.get_by_role("link", name="Replay")).to_have_count(0)  # once
    expect(page.get_by_text("Runs started by this run")).to_be_visible()


def test_a_viewer_sees_runs_but_no_controls(login, live_server, team, forward, mailbox):
    operation, _ = forward
    running = Run.objects.create(operation=operation, status="running")
    page = login("charlie")
    _history(page, live_server, team, operation)
    expect(page.locator("table.runs")).to_contain_text("Running")
    expect(page.get_by_role("button", name="Run Forward to helpdesk now")).to_have_count(0)
    page.goto(f"{live_server.url}/t/{team.slug}/runs/{running.pk}/")
    expect(page.locator("#progress .status")).to_have_text("Running")
    expect(page.get_by_role("link", name="Cancel run")).to_have_count(0)
    response = page.request.post(f"{live_server.url}/t/{team.slug}/operations/{operation.pk}/run/")
    assert response.status == 403  # refused by the server too, whatever the page shows
    page.goto(f"{live_server.url}/t/{team.slug}/projects/import/")
    expect(page.get_by_text("you need to be an editor")).to_be_visible()


def test_it_exports_and_imports_a_project_in_the_browser(login, live_server, team, forward, tmp_path):
    operation, _ = forward
    page = login("bob")
    exported = page.request.get(f"{live_server.url}/t/{team.slug}/projects/{operation.project_id}/export/")
    assert exported.ok and "attachment" in exported.headers["content-disposition"]
    document = json.loads(exported.body())

    page.goto(f"{live_server.url}/t/{team.slug}/projects/import/")
    upload = tmp_path / "same.json"
    upload.write_text(json.dumps(document))
    page.get_by_label("Project file").set_input_files(upload)
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".import-report")).to_contain_text("unchanged project Support desk")
    expect(page.locator(".import-report")).to_contain_text("unchanged operation Forward to helpdesk")

    broken = json.loads(json.dumps(document))
    broken["name"] = "Support desk copy"
    broken["connections"][0]["imap"]["port"] = 0
    broken["operations"][0]["mapping"]["subject"] = "{{ subject"
    upload.write_text(json.dumps(broken))
    page.get_by_label("Project file").set_input_files(upload)
    page.get_by_role("button", name="Import").click()
    problems = page.locator(".problems li")
    expect(problems.filter(has_text="connections[0].imap.port:")).to_have_count(1)
    expect(problems.filter(has_text="operations[0].mapping.subject:")).to_have_count(1)
    screenshot(page, "import-errors")
    assert not Project.objects.filter(name="Support desk copy").exists()

    copy = json.loads(json.dumps(document))
    copy["name"] = "Support desk copy"
    copy["connections"][0]["auth"]["password"] = PASSWORD  # a new connection needs its secret
    upload.write_text(json.dumps(copy))
    page.get_by_label("Project file").set_input_files(upload)
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".import-report")).to_contain_text("created project Support desk copy")
    screenshot(page, "import-success")
    page.get_by_role("link", name="Open Support desk copy").click()
    expect(page.get_by_role("heading", name="Support desk copy")).to_be_visible()
    assert Project.objects.get(name="Support desk copy").operations.get().source.name == "Read support inbox"


def test_the_history_filters_pages_and_charts_many_runs(login, live_server, team, project, charlie):
    operation = Operation.objects.create(project=project, name="Nightly digest")
    statuses = ["succeeded"] * 7 + ["partial", "failed", "cancelled"]
    runs = Run.objects.bulk_create(
        Run(operation=operation, status=statuses[n % len(statuses)], read_count=n % 5, sent_count=n % 4,
            failed_count=1 if statuses[n % len(statuses)] == "failed" else 0, message=f"run number {n}")
        for n in range(120)
    )
    now = timezone.now()
    for n, run in enumerate(runs):  # spread over two weeks, oldest first
        Run.objects.filter(pk=run.pk).update(queued_at=now - timedelta(hours=(119 - n) * 3))
    page = login("charlie")
    page.goto(f"{live_server.url}/t/{team.slug}/runs/")
    expect(page.locator("table.runs tbody tr")).to_have_count(50)
    expect(page.locator(".legend").first).to_contain_text("Succeeded")
    expect(page.locator(".legend").first).to_contain_text("Failed")
    screenshot(page, "history-chart")

    page.get_by_role("link", name="Older →").click()
    expect(page).to_have_url(f"{live_server.url}/t/{team.slug}/runs/?before={runs[70].pk}")
    expect(page.locator("table.runs tbody tr").first).to_contain_text("run number 69")
    page.get_by_role("link", name="← Newer").click()
    expect(page.locator("table.runs tbody tr").first).to_contain_text("run number 119")

    page.get_by_label("Status", exact=True).select_option("failed")  # htmx submits the filters on change
    expect(page.locator("table.runs tbody tr")).to_have_count(12)
    expect(page).to_have_url(f"{live_server.url}/t/{team.slug}/runs/?operation=&status=failed&since=&until=")
    page.set_viewport_size({"width": 400, "height": 800})  # a phone: the table scrolls, the rest reflows
    page.goto(f"{live_server.url}/t/{team.slug}/runs/{runs[-1].pk}/")
    screenshot(page, "run-page-narrow")
    page.goto(f"{live_server.url}/t/{team.slug}/runs/")
    screenshot(page, "history-narrow")
    page.screenshot(path=str(SCREENSHOTS / "history-narrow-first-screen.png"))


@pytest.fixture
def sandbox(tmp_path):
    """The demo's sandbox mailbox, as `make run` starts it."""
    box = demo.prepare(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "designer.demo", str(tmp_path / demo.CONFIG_FILE)],
                               stdout=subprocess.PIPE, text=True)
    assert "sandbox mailbox: IMAP" in process.stdout.readline()  # printed once both servers listen
    yield box
    process.terminate()
    process.wait(timeout=10)


def test_a_newcomer_runs_the_demo_and_sees_mail_forwarded(login, live_server, team, alice, sandbox, worker):
    demo.install(team, sandbox, alice)
    demo.install(team, sandbox, alice)  # again, as every `make run` does: nothing doubles
    operation = Operation.objects.get(name=demo.OPERATION)
    page = login("alice")
    _history(page, live_server, team, operation)
    page.get_by_role("button", name=f"Run {demo.OPERATION} now").click()
    expect(page.locator("#progress .status")).to_have_text("Succeeded", timeout=20000)
    counts = page.locator(".counts")
    expect(counts.locator("div", has_text="Read").locator("dd")).to_have_text("5")
    expect(counts.locator("div", has_text="Sent").locator("dd")).to_have_text("4")
    expect(counts.locator("div", has_text="Skipped").locator("dd")).to_have_text("1")  # the out-of-office reply
    expect(page.locator("table.records")).to_contain_text("Invoice INV-2024-117 shows the wrong amount")
    screenshot(page, "demo-run")
    with IMAPClient(demo.HOST, port=sandbox.imap_port, ssl=False, timeout=5) as client:
        client.login("helpdesk", sandbox.password)
        client.select_folder("INBOX")
        envelopes = client.fetch(client.search(["ALL"]), ["ENVELOPE"]).values()
        subjects = sorted(e[b"ENVELOPE"].subject.decode() for e in envelopes)
    assert subjects == ["Fwd: Cannot log in since this morning", "Fwd: Feature request: export the run history",
                        "Fwd: Invoice INV-2024-117 shows the wrong amount", "Fwd: Order #4411 arrived damaged"]
