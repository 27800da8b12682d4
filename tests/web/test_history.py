"""The run history (filters, keyset pages, chart), source health and project import in the browser."""

import json
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from designer.history import health
from designer.history import queries as history
from designer.models import Activity, Connection, Operation, Project, Run
from tests.helpers import make_connection
from tests.helpers import url as _url
from tests.web.test_projectfile import SPEC_FILE


@pytest.fixture(autouse=True)
def empty_cache():
    # The chart keeps past days in the cache, keyed by ids that a later test's rows may reuse.
    cache.clear()


@pytest.fixture
def operations(project):
    return [Operation.objects.create(project=project, name=name) for name in ("Forward", "Archive")]


def _runs(operation, count, **fields):
    return Run.objects.bulk_create([Run(operation=operation, **fields) for _ in range(count)])


def _run_ids(response):
    return [run.pk for run in response.context["page"].runs]


# -- history ------------------------------------------------------------------------------------------


def test_it_lists_the_columns_of_a_run(charlie_client, team, operations):
    now = timezone.now()
    Run.objects.create(operation=operations[0], status="partial", started_at=now - timedelta(seconds=65),
                       finished_at=now, read_count=7, sent_count=5, skipped_count=1, failed_count=1,
                       message="SMTP refused one (7 read, 5 sent, 1 skipped, 1 failed)")
    page = charlie_client.get(_url("runs", team)).content.decode()
    for text in ("Support desk /", "Forward", "Run now", "Partial", "1 min 05 s", ">SMTP refused one</td>"):
        assert text in page
    # The counts have their columns: the Message column does not repeat them.
    assert "7 read, 5 sent" not in page
    for header in ("Operation", "Trigger", "Status", "Started", "Finished", "Duration", "Read", "Sent", "Skipped",
                   "Failed", "Message"):
        assert f">{header}</th>" in page


def test_it_shows_only_the_teams_runs(charlie_client, team, operations, other_team):
    theirs = Operation.objects.create(project=Project.objects.create(team=other_team, name="P"), name="Theirs")
    _runs(theirs, 3)
    mine = _runs(operations[0], 2)
    response = charlie_client.get(_url("runs", team))
    assert sorted(_run_ids(response)) == sorted(r.pk for r in mine)
    assert "Theirs" not in response.content.decode()
    # Another team's operation is not even a valid filter value.
    filtered = charlie_client.get(_url("runs", team), {"operation": theirs.pk})
    assert "Select a valid choice" in filtered.content.decode()
    assert charlie_client.get(_url("runs", other_team)).status_code == 404


def test_it_filters_by_operation_status_and_dates(charlie_client, team, operations):
    forward, archive = operations
    failed = _runs(forward, 2, status="failed")
    _runs(forward, 3, status="succeeded")
    _runs(archive, 4, status="failed")
    old = Run.objects.create(operation=forward, status="failed")
    Run.objects.filter(pk=old.pk).update(queued_at=timezone.now() - timedelta(days=10))

    response = charlie_client.get(_url("runs", team), {"operation": forward.pk, "status": "failed"})
    assert sorted(_run_ids(response)) == sorted([old.pk] + [r.pk for r in failed])

    today = timezone.localdate().isoformat()
    response = charlie_client.get(_url("runs", team), {"operation": forward.pk, "status": "failed", "since": today})
    assert sorted(_run_ids(response)) == sorted(r.pk for r in failed)

    until = (timezone.localdate() - timedelta(days=5)).isoformat()
    assert _run_ids(charlie_client.get(_url("runs", team), {"until": until})) == [old.pk]

    bad = charlie_client.get(_url("runs", team), {"since": today, "until": until})
    assert "Must be on or after the From date." in bad.content.decode()


def test_it_swaps_only_the_table_for_htmx(charlie_client, team, operations):
    _runs(operations[0], 2)
    history_part = charlie_client.get(_url("runs", team), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="history")
    body = history_part.content.decode()
    assert body.lstrip().startswith('<div id="history">') and "<html" not in body
    table_part = charlie_client.get(_url("runs", team), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="runs-table")
    assert table_part.content.decode().lstrip().startswith('<section class="card" id="runs-table">')


def test_it_pages_by_keyset_with_older_and_newer_links(charlie_client, team, operations):
    ids = sorted((r.pk for r in _runs(operations[0], 120)), reverse=True)
    first = charlie_client.get(_url("runs", team))
    assert _run_ids(first) == ids[:50]
    assert first.context["older_url"] == f"?before={ids[49]}"
    assert first.context["newer_url"] == ""

    second = charlie_client.get(_url("runs", team) + first.context["older_url"])
    assert _run_ids(second) == ids[50:100]
    third = charlie_client.get(_url("runs", team) + second.context["older_url"])
    assert _run_ids(third) == ids[100:]
    assert third.context["older_url"] == ""
    assert "Older →" not in third.content.decode()

    back = charlie_client.get(_url("runs", team) + third.context["newer_url"])
    assert _run_ids(back) == ids[50:100]
    assert back.context["newer_url"] == f"?after={ids[50]}"
    newest = charlie_client.get(_url("runs", team) + back.context["newer_url"])
    assert _run_ids(newest) == ids[:50]
    assert newest.context["newer_url"] == ""


def test_page_links_keep_the_filters(charlie_client, team, operations):
    _runs(operations[0], 60, status="failed")
    response = charlie_client.get(_url("runs", team), {"status": "failed"})
    assert response.context["older_url"].startswith("?status=failed&before=")


def test_it_reads_a_page_in_the_same_number_of_queries_whatever_the_history_holds(charlie_client, team,
                                                                                  operations):
    def queries(params=None):
        with CaptureQueriesContext(connection) as captured:
            assert charlie_client.get(_url("runs", team), params or {}).status_code == 200
        return [q["sql"].upper() for q in captured.captured_queries]

    _runs(operations[0], 5)
    small = len(queries()), len(queries({"status": "queued"}))
    _runs(operations[0], 300)
    _runs(operations[1], 300, status="failed")
    big = queries()
    assert (len(big), len(queries({"status": "queued"}))) == small
    assert not any("OFFSET" in sql or "COUNT(" in sql for sql in big)


def test_it_says_when_there_are_no_runs_yet(charlie_client, team, project, operations):
    assert "No runs yet." in charlie_client.get(_url("runs", team)).content.decode()
    filtered = charlie_client.get(_url("runs", team), {"status": "failed"}).content.decode()
    assert "No runs match these filters." in filtered


def test_the_project_history_holds_only_that_projects_runs(charlie_client, team, project, operations):
    elsewhere = Operation.objects.create(project=Project.objects.create(team=team, name="Other"), name="Elsewhere")
    _runs(elsewhere, 2)
    mine = _runs(operations[0], 1)
    response = charlie_client.get(_url("project_runs", team, project=project.pk))
    assert _run_ids(response) == [mine[0].pk]
    assert list(response.context["form"].fields["operation"].queryset) == sorted(operations, key=lambda o: o.name)


def test_it_offers_run_now_for_a_filtered_operation_to_editors_only(bob_client, charlie_client, team, operations):
    url = _url("runs", team) + f"?operation={operations[0].pk}"
    run_url = _url("operation_run", team, operation=operations[0].pk)
    assert run_url in bob_client.get(url).content.decode()
    assert run_url not in charlie_client.get(url).content.decode()


# -- chart --------------------------------------------------------------------------------------------


def test_the_chart_counts_runs_and_messages_per_day_by_status(team, operations):
    _runs(operations[0], 3, status="succeeded", read_count=4, sent_count=4)
    _runs(operations[0], 1, status="failed", read_count=2, failed_count=2)
    old = _runs(operations[1], 2, status="succeeded", sent_count=1)
    Run.objects.filter(pk__in=[r.pk for r in old]).update(queued_at=timezone.now() - timedelta(days=2))
    ancient = _runs(operations[1], 1, status="failed")
    Run.objects.filter(pk=ancient[0].pk).update(queued_at=timezone.now() - timedelta(days=45))

    days = history.per_day(history.team_operations(team))
    assert len(days) == 30 and days[-1].day == timezone.localdate()
    assert days[-1].runs == {"succeeded": 3, "failed": 1}
    assert days[-1].messages == {"sent": 12, "skipped": 0, "failed": 2}
    assert days[-3].runs == {"succeeded": 2}
    assert sum(sum(d.runs.values()) for d in days) == 6  # the 45-day-old run is outside the chart


def test_the_chart_renders_as_svg_with_tooltips(charlie_client, team, operations):
    _runs(operations[0], 3, status="succeeded", sent_count=2)
    _runs(operations[0], 1, status="failed", failed_count=1)
    response = charlie_client.get(_url("runs_chart", team), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.count("<svg class=\"chart\"") == 2
    assert "Runs per day by status" in body and "Messages per day by outcome" in body
    today = timezone.localdate().strftime("%b %d")
    assert f"<title>{today}: 3 succeeded runs</title>" in body
    assert f"<title>{today}: 6 sent messages</title>" in body
    assert 'class="seg seg-failed"' in body
    # Without JavaScript the chart is a page of its own.
    assert "<html" in charlie_client.get(_url("runs_chart", team)).content.decode()


def test_the_chart_follows_the_status_and_date_filters(charlie_client, team, operations):
    now = timezone.now()
    _runs(operations[0], 2, status="succeeded", sent_count=1)
    _runs(operations[0], 3, status="failed", failed_count=1)
    failed = charlie_client.get(_url("runs_chart", team) + "?status=failed", HTTP_HX_REQUEST="true")
    body = failed.content.decode()
    today = timezone.localdate()
    assert f"<title>{today:%b %d}: 3 failed runs</title>" in body and "succeeded runs" not in body
    assert "sent messages" not in body
    cancelled = charlie_client.get(_url("runs_chart", team) + "?status=cancelled", HTTP_HX_REQUEST="true")
    assert "Nothing in the last 30 days for these filters." in cancelled.content.decode()
    # A date range is the chart's period, day by day.
    since = (now - timedelta(days=6)).date()
    ranged = charlie_client.get(_url("runs_chart", team) + f"?since={since}&until={today}")
    body = ranged.content.decode()
    assert f"{since:%b %-d} – {today:%b %-d, %Y}" in body
    assert ranged.context["days"] == 7


def test_chained_runs_are_listed_under_the_run_that_started_them(charlie_client, team, operations):
    forward, archive = operations
    first = Run.objects.create(operation=forward, status="succeeded")
    chained = Run.objects.create(operation=archive, status="failed", trigger="chained", parent=first)
    deeper = Run.objects.create(operation=forward, status="succeeded", trigger="chained", parent=chained)
    later = Run.objects.create(operation=forward, status="succeeded")
    response = charlie_client.get(_url("runs", team))
    assert _run_ids(response) == [later.pk, first.pk]  # the rows of their own
    body = response.content.decode()
    rows = [body.index(f'href="{_url("run", team, run=run.pk)}"') for run in (later, first, chained, deeper)]
    assert rows == sorted(rows)
    assert 'style="--depth: 1"' in body and 'style="--depth: 2"' in body
    # Filtered by status, a chained run is a row of its own.
    assert _run_ids(charlie_client.get(_url("runs", team) + "?status=failed")) == [chained.pk]


def test_a_date_range_lists_a_chained_run_whose_starter_is_outside_it(charlie_client, team, operations):
    forward, archive = operations
    first = Run.objects.create(operation=forward, status="succeeded")
    Run.objects.filter(pk=first.pk).update(queued_at=timezone.now() - timedelta(days=3))
    chained = Run.objects.create(operation=archive, status="failed", trigger="chained", parent=first)
    today = timezone.localdate()
    assert _run_ids(charlie_client.get(_url("runs", team) + f"?since={today}")) == [chained.pk]


def test_a_runs_row_links_as_a_whole(charlie_client, team, operations):
    run = Run.objects.create(operation=operations[0], status="succeeded", message="1 read, 1 sent, 0 skipped, 0 failed")
    page = charlie_client.get(_url("runs", team)).content.decode()
    assert f'<a class="row-link" href="{_url("run", team, run=run.pk)}"' in page
    assert 'class="message" data-label="Message">—</td>' in page


def test_the_chart_says_so_when_empty(charlie_client, team):
    body = charlie_client.get(_url("runs_chart", team), HTTP_HX_REQUEST="true").content.decode()
    assert "Nothing in the last 30 days." in body
    assert "<svg class=\"chart\"" not in body


# -- source health ------------------------------------------------------------------------------------


@pytest.fixture
def source(project):
    connection = make_connection(project.team, project)
    return Activity.objects.create(project=project, connection=connection, type="read_email", name="Read inbox",
                                   settings={"folder": "INBOX"})


def _health(activity):
    return health.attach_health([Activity.objects.get(pk=activity.pk)])[0].health


def test_a_source_is_failing_when_its_last_poll_failed(source):
    Activity.objects.filter(pk=source.pk).update(last_poll_at=timezone.now(), last_error="IMAP login rejected")
    health = _health(source)
    assert (health.state, health.reason, health.alarm) == ("failing", "IMAP login rejected", True)


def test_a_scheduled_source_stalls_after_three_missed_polls(source, project):
    Operation.objects.create(project=project, name="Every 10", source=source, schedule="interval", interval_minutes=10)
    now = timezone.now()
    Activity.objects.filter(pk=source.pk).update(last_poll_at=now, last_success_at=now - timedelta(minutes=25))
    assert _health(source).state == "ok"
    Activity.objects.filter(pk=source.pk).update(last_success_at=now - timedelta(minutes=31))
    health = _health(source)
    assert health.state == "stalled" and "every 10 min" in health.reason


def test_a_source_stalls_on_the_page_when_its_own_warning_limit_says_so(source, project):
    # The sources page and the stall warning judge by the same limit (a source's "Warn when stalled" minutes).
    Operation.objects.create(project=project, name="Every 10", source=source, schedule="interval", interval_minutes=10)
    now = timezone.now()
    Activity.objects.filter(pk=source.pk).update(last_poll_at=now, last_success_at=now - timedelta(minutes=31),
                                                 stall_minutes=60)
    assert _health(source).state == "ok"
    Activity.objects.filter(pk=source.pk).update(stall_minutes=8, last_success_at=now - timedelta(minutes=9))
    health = _health(source)
    assert health.state == "stalled" and "every 10 min" in health.reason


def test_a_cron_schedule_counts_by_its_period(project, source):
    operation = Operation(project=project, name="Hourly", source=source, schedule="cron", cron="15 * * * *",
                          timezone="Europe/Paris")
    assert health.schedule_period(operation) == timedelta(hours=1)


def test_an_unscheduled_source_stalls_after_a_day_once_it_has_run(source):
    assert _health(source).state == "idle"
    Activity.objects.filter(pk=source.pk).update(last_poll_at=timezone.now() - timedelta(hours=30),
                                                 last_success_at=timezone.now() - timedelta(hours=30))
    assert _health(source).state == "stalled"


def test_the_sources_page_lists_every_source_with_its_health(charlie_client, team, source, project):
    now = timezone.now()
    Activity.objects.filter(pk=source.pk).update(last_poll_at=now, last_success_at=now, backlog=12,
                                                 oldest_unread_at=now - timedelta(hours=3))
    broken = Activity.objects.create(project=project, connection=source.connection, type="read_email",
                                     name="Read archive", last_poll_at=now, last_error="folder Archive is gone")
    Activity.objects.create(project=project, connection=source.connection, type="send_email", name="Send")
    page = charlie_client.get(_url("sources", team)).content.decode()
    assert "Read inbox" in page and "Read archive" in page
    assert ">Send<" not in page  # targets are not sources
    assert "Healthy" in page and "Failing" in page and "folder Archive is gone" in page
    assert "12" in page and "3\xa0hours" in page
    assert page.count("alarm-row") == 1
    runs_page = charlie_client.get(_url("runs", team)).content.decode()
    assert "1 source needs attention" in runs_page and broken.name in runs_page


def test_the_sources_page_has_an_empty_state_and_is_team_only(charlie_client, team, other_team):
    assert "No sources yet." in charlie_client.get(_url("sources", team)).content.decode()
    assert charlie_client.get(_url("sources", other_team)).status_code == 404


# -- project import -----------------------------------------------------------------------------------


def _upload(client, team, document, name="project.json"):
    content = document if isinstance(document, bytes) else json.dumps(document).encode()
    return client.post(_url("project_import", team), {"file": SimpleUploadedFile(name, content, "application/json")})


def _spec_file(**changes):
    document = json.loads(json.dumps(SPEC_FILE))
    document["connections"][0]["auth"]["password"] = "literal-secret"
    for key, value in changes.items():
        document[key] = value
    return document


def test_it_imports_a_project_file_and_reports_what_it_did(bob_client, team):
    response = _upload(bob_client, team, _spec_file())
    assert response.status_code == 200
    body = response.content.decode()
    project = Project.objects.get(team=team, name="Support desk")
    for line in ("created project Support desk", "created connection Support mailbox",
                 "created activity Read support inbox", "created operation Forward to helpdesk"):
        assert line in body
    assert _url("project", team, project=project.pk) in body
    assert Connection.objects.get(project=project).get_secrets() == {"password": "literal-secret"}
    assert "literal-secret" not in body


def test_it_round_trips_an_exported_file(bob_client, team):
    _upload(bob_client, team, _spec_file())
    project = Project.objects.get(team=team)
    exported = bob_client.get(_url("project_export", team, project=project.pk)).content
    again = _upload(bob_client, team, exported).content.decode()
    assert "unchanged project Support desk" in again
    assert "unchanged operation Forward to helpdesk" in again
    assert Project.objects.count() == 1 and Connection.objects.count() == 1


def test_it_shows_every_error_with_its_path_and_imports_nothing(bob_client, team):
    document = _spec_file()
    document["connections"][0]["imap"]["port"] = 70000
    document["activities"][0]["after_read"] = "shred"
    document["operations"][0]["mapping"]["subject"] = "{{ subject"
    response = _upload(bob_client, team, document)
    assert response.status_code == 400
    body = response.content.decode()
    assert "Nothing was imported: 4 problems" in body  # the 4th: the operation's source is now invalid
    assert "connections[0].imap.port:" in body
    assert "activities[0].after_read:" in body
    assert "operations[0].source:" in body
    assert "operations[0].mapping.subject:" in body
    assert not Project.objects.exists() and not Connection.objects.exists()


def test_it_names_the_line_of_broken_json(bob_client, team):
    response = _upload(bob_client, team, b'{"format": "mailwright.project/1",\n "name": }')
    assert response.status_code == 400
    assert "line 2 column" in response.content.decode()


def test_it_never_reads_the_servers_environment_from_a_browser_upload(bob_client, team, monkeypatch):
    monkeypatch.setenv("SUPPORT_PASSWORD", "server-side-secret")
    response = _upload(bob_client, team, json.loads(json.dumps(SPEC_FILE)))
    assert response.status_code == 400
    assert "connections[0].auth.password: environment variable SUPPORT_PASSWORD is not set" in response.content.decode()
    assert not Connection.objects.exists()


def test_it_refuses_import_to_a_viewer(charlie_client, team):
    assert charlie_client.get(_url("project_import", team)).status_code == 403
    assert _upload(charlie_client, team, _spec_file()).status_code == 403
    assert not Project.objects.exists()


def test_the_import_form_needs_a_file(bob_client, team):
    response = bob_client.post(_url("project_import", team), {})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_the_chart_keeps_past_days_that_can_no_longer_change(team, operations):
    yesterday = timezone.now() - timedelta(days=1)
    ended, going = _runs(operations[0], 2, status="succeeded")
    Run.objects.filter(pk__in=[ended.pk, going.pk]).update(queued_at=yesterday)
    Run.objects.filter(pk=going.pk).update(status="running")
    scope = history.team_operations(team)
    assert history.per_day(scope, cache_key="t")[-2].runs == {"succeeded": 1, "running": 1}
    Run.objects.filter(pk=going.pk).update(status="failed")
    # A day with a run still going is counted again; once all have ended it is kept.
    assert history.per_day(scope, cache_key="t")[-2].runs == {"succeeded": 1, "failed": 1}
    Run.objects.filter(pk=ended.pk).delete()
    assert history.per_day(scope, cache_key="t")[-2].runs == {"succeeded": 1, "failed": 1}
    _runs(operations[0], 1, status="queued")
    assert history.per_day(scope, cache_key="t")[-1].runs == {"queued": 1}  # today is always counted


# -- query plans: the indexes that keep a small team's history fast among other teams' runs -----------


def _plan(queryset) -> str:
    """The database's plan for ``queryset`` (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL)."""
    if connection.vendor == "postgresql":
        # A test table of a few rows is cheaper to scan than to seek: make PostgreSQL show which
        # index it would use once the table is large.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
    return queryset.explain()


def _seeks_by_operation(plan: str) -> bool:
    """Whether the runs are found through an index led by the operation (a seek per operation of
    the team), rather than by walking a range that holds every team's runs."""
    if connection.vendor == "postgresql":
        # "= ANY (ids)", or "= designer_operation.id" in a nested loop over the team's operations.
        return re.search(r"on designer_run .*\n\s+Index Cond: \(+operation_id = ", plan) is not None
    return "USING INDEX run_by_operation" in plan and "(operation_id=?" in plan


def _busy(team, operations, other_team):
    """The team's few runs among many of another team's, all today; on PostgreSQL with the statistics
    autovacuum keeps (it plans by them; SQLite has none unless ANALYZE is run, and a test table of
    900 rows would make a scan look cheapest)."""
    other_project = Project.objects.create(team=other_team, name="Busy")
    others = [Operation.objects.create(project=other_project, name=f"Op {n}") for n in range(3)]
    for operation in operations:
        _runs(operation, 5, status="succeeded")
    for operation in others:
        _runs(operation, 300, status="succeeded")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Run._meta.db_table}")


def test_the_charts_day_query_seeks_the_teams_operations_by_date(team, operations, other_team):
    _busy(team, operations, other_team)
    wanted = sorted(history.team_operations(team).values_list("pk", flat=True))

    plan = _plan(history.day_runs(wanted, timezone.localdate()).values("status").annotate(n=Count("pk")).order_by())
    status_plan = _plan(history.day_runs(wanted, timezone.localdate(), "succeeded"))

    assert _seeks_by_operation(plan), plan
    assert _seeks_by_operation(status_plan), status_plan
    if connection.vendor == "sqlite":  # no statistics to weigh: the index made for it
        assert "run_by_operation_queued (operation_id=? AND queued_at>? AND queued_at<?)" in plan, plan


def test_a_date_range_page_seeks_the_teams_operations_not_every_run(team, operations, other_team):
    _busy(team, operations, other_team)
    since = history.start_of(timezone.localdate() - timedelta(days=6))

    runs = history.team_runs(team).filter(queued_at__gte=since).order_by("-pk")[: history.PAGE_SIZE + 1]
    plan = _plan(runs)

    assert _seeks_by_operation(plan), plan
    # The same query, whatever the history holds: one query for the page.
    with CaptureQueriesContext(connection) as queries:
        history.page(history.team_runs(team).filter(queued_at__gte=since))
    assert len(queries) == 1


def test_active_runs_are_found_by_an_index_not_by_walking_the_history(project, operations):
    _runs(operations[0], 5, status="succeeded")
    _runs(operations[0], 1, status="running")

    plan = _plan(Run.objects.filter(operation__project=project, status__in=["queued", "running"]))

    # By status or by operation, the existing indexes find them: a partial index would add nothing.
    assert "SCAN designer_run\n" not in plan + "\n" and "Seq Scan on designer_run" not in plan, plan
