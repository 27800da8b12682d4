import pytest

from designer.models import Activity, Connection, Operation, Run
from tests import fakes


@pytest.fixture
def world():
    fakes.WORLD = fakes.FakeWorld()
    return fakes.WORLD


@pytest.fixture
def operation(project, world) -> Operation:
    connection = Connection.objects.create(team=project.team, project=project, name="Fake", connector="fake")
    source = Activity.objects.create(project=project, connection=connection, type="fake_read", name="Read")
    target = Activity.objects.create(project=project, connection=connection, type="fake_write", name="Write")
    return Operation.objects.create(
        project=project, name="Forward", source=source, target=target, retry_backoff_seconds=0,
        mapping={"to": "helpdesk@example.com", "subject": "Fwd: {{ subject }}", "text": "{{ text }}"},
    )


@pytest.fixture
def run_once(operation):
    from designer.running import runs

    def run(op=None, **fields) -> Run:
        created = Run.objects.create(operation=op or operation, trigger=Run.Trigger.COMMAND, **fields)
        return runs.execute(created.pk)

    return run
