"""Agent groups: defined per team, chosen per operation, routing its runs to that group's queue only;
the Agents page shows each group's live workers (Celery's control API, stubbed here)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from designer.authoring import projectfile
from designer.models import AgentGroup, AuditEntry, Run
from designer.running import agents, runs
from tests.helpers import url
from tests.web import test_canvas

# An operation of the Email connector, as the designer's pages show it.
connection, reader, sender = test_canvas.connection, test_canvas.reader, test_canvas.sender
workflow, operation = test_canvas.workflow, test_canvas.operation


def _agent(queue: str, name: str = "north@vm-north", runs_in_progress: tuple[int, ...] = ()) -> agents.Agent:
    now = timezone.now()
    return agents.Agent(name=name, host=name.partition("@")[2], pid=4242, versions="mailwright 0.1.0, celery 5",
                        started=now - timedelta(hours=1), last_heard=now, queues=(queue,),
                        runs_in_progress=runs_in_progress)


@pytest.fixture
def north(team) -> AgentGroup:
    return AgentGroup.objects.create(team=team, name="north", description="Inside the customer's network")


@pytest.fixture
def live(monkeypatch):
    """What the workers answer: set ``live.agents`` (None: the broker cannot say)."""
    class Live:
        agents: list[agents.Agent] | None = []

    monkeypatch.setattr(agents, "live_agents", lambda: Live.agents)
    return Live


def test_the_queue_of_a_group_names_its_team_and_the_default_group_is_the_default_queue(team, north, other_team,
                                                                                       settings):
    rival = AgentGroup.objects.create(team=other_team, name="north")
    assert agents.group_queue(None) == settings.CELERY_TASK_DEFAULT_QUEUE
    assert agents.group_queue(north) == f"{settings.CELERY_TASK_DEFAULT_QUEUE}.agents.support.north"
    assert agents.group_queue(rival) != agents.group_queue(north)


def test_a_run_goes_to_its_operations_group_queue(operation, north, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(runs.execute_run, "apply_async", lambda args, **options: sent.append(options))
    operation.agent_group = north
    operation.save()
    with django_capture_on_commit_callbacks(execute=True):
        runs.start(operation, Run.Trigger.MANUAL)
    operation.agent_group = None
    operation.save()
    with django_capture_on_commit_callbacks(execute=True):
        runs.start(operation, Run.Trigger.MANUAL)
    assert [options["queue"] for options in sent] == [agents.group_queue(north), agents.group_queue(None)]


def test_the_agents_page_lists_each_group_with_its_live_workers_and_says_so_in_red_when_none(
        alice_client, team, north, live):
    AgentGroup.objects.create(team=team, name="south")
    live.agents = [_agent(agents.group_queue(north), runs_in_progress=(7,)),
                   _agent(agents.group_queue(None), name="celery@vm-main")]
    page = alice_client.get(url("agents", team)).content.decode()
    assert "north@vm-north" in page and "vm-north" in page and "4242" in page and "mailwright 0.1.0" in page
    assert "#7" in page and "celery@vm-main" in page
    assert "No agent of group south is running" in page and "No agent of group north" not in page


def test_the_agents_page_says_when_the_broker_cannot_tell(charlie_client, team, north, live):
    live.agents = None
    page = charlie_client.get(url("agents", team)).content.decode()
    assert "Worker status is unavailable with this broker" in page
    assert "No agent of group" not in page
    assert "New agent group" not in page  # a viewer sees, an admin manages


def test_an_admin_creates_and_deletes_a_group_and_an_editor_may_not(alice_client, bob_client, team, live):
    assert bob_client.post(url("agents", team), {"name": "east"}).status_code == 403
    response = alice_client.post(url("agents", team), {"name": "east", "description": "Frankfurt"})
    assert response.status_code == 302
    group = AgentGroup.objects.get(team=team, name="east")
    duplicate = alice_client.post(url("agents", team), {"name": "east"})
    assert duplicate.status_code == 400 and "already" in duplicate.content.decode()
    alice_client.post(url("agent_group_delete", team, group=group.pk))
    assert not AgentGroup.objects.filter(pk=group.pk).exists()
    actions = AuditEntry.objects.filter(object_type="agentgroup").order_by("pk").values_list("action", flat=True)
    assert list(actions) == ["created", "deleted"]


def test_a_group_in_use_is_not_deleted_and_names_its_operations(alice_client, team, north, operation, live):
    operation.agent_group = north
    operation.save()
    response = alice_client.post(url("agent_group_delete", team, group=north.pk), follow=True)
    assert AgentGroup.objects.filter(pk=north.pk).exists()
    assert f"operations run on it ({operation.project.name} / {operation.name})" in response.content.decode()


def test_an_operation_whose_group_has_no_live_worker_says_so_on_its_page_and_on_run_now(
        bob_client, team, north, operation, live, monkeypatch):
    monkeypatch.setattr(runs.execute_run, "apply_async", lambda *a, **k: None)
    operation.agent_group = north
    operation.save()
    page = bob_client.get(url("operation", team, operation=operation.pk)).content.decode()
    assert "no agent of group north is running; the run waits in the queue" in page
    response = bob_client.post(url("operation_run", team, operation=operation.pk), follow=True)
    assert "no agent of group north is running; the run waits in the queue" in response.content.decode()
    live.agents = [_agent(agents.group_queue(north))]
    page = bob_client.get(url("operation", team, operation=operation.pk)).content.decode()
    assert "no agent of group north" not in page


def test_the_project_file_takes_and_gives_an_operations_agent_group(operation, team):
    document = projectfile.export(operation.project)
    assert "agent_group" not in document["operations"][0]  # the default group is not written
    operation.agent_group = AgentGroup.objects.create(team=team, name="north")
    operation.save()
    document = projectfile.export(operation.project)
    assert document["operations"][0]["agent_group"] == "north"
    document["operations"][0]["agent_group"] = "west"
    report = projectfile.apply(projectfile.plan(json.loads(json.dumps(document)), environ={"SUPPORT_PASSWORD": "x"}),
                               team)
    assert any(line.startswith("created agent group west") for line in report), report
    operation.refresh_from_db()
    assert operation.agent_group.name == "west" and operation.agent_group.team == team


def test_run_agent_names_the_groups_queue_and_refuses_an_unknown_group(team, north, capsys):
    call_command("run_agent", "--group", "north", "--concurrency", "2", "--print-only")
    out = capsys.readouterr().out
    assert f"celery -A designer worker -Q {agents.group_queue(north)} -n north@%h" in out
    assert "--concurrency 2" in out
    with pytest.raises(CommandError, match="no agent group 'south'.*groups: north"):
        call_command("run_agent", "--group", "south", "--print-only")
