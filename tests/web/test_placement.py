"""A palette chip dropped on the canvas: its wizard, then the new activity placed where it was dropped."""

import pytest

from designer.models import Activity, Operation, Workflow
from tests.helpers import make_connection, url
from tests.web.test_canvas import HX, wizard_data


@pytest.fixture
def connection(team, project):
    return make_connection(team, project)


@pytest.fixture
def workflow(project):
    return Workflow.objects.create(project=project, name="Main")


def send_data(connection, **overrides):
    return {"name": "Send to helpdesk", "connection": connection.pk, "step": "0", "action": "save",
            "defaults_from": "support@example.com", "defaults_to": "helpdesk@example.com", **overrides}


def test_a_dropped_read_email_becomes_the_source_of_a_new_operation(bob_client, team, project, connection, workflow):
    first = Operation.objects.create(project=project, workflow=workflow, name="Existing", position=0)
    create = (url("activity_create", team, project=project.pk, kind="read_email")
              + f"?place=new&workflow={workflow.pk}&position=0")
    opened = bob_client.get(create, **HX).content.decode()
    assert "data-close-dialog" in opened  # Cancel closes the dialog instead of leaving the page
    response = bob_client.post(create, wizard_data(connection, step="2", action="save"), **HX)
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#canvas" and "mailwright:placed" in response["HX-Trigger"]
    body = response.content.decode()
    activity = Activity.objects.get(name="Read invoices")
    created = Operation.objects.exclude(pk=first.pk).get()
    assert created.source == activity and created.target is None and created.workflow == workflow
    # Dropped above the existing card: the new operation comes first.
    assert list(workflow.operations.order_by("position").values_list("pk", flat=True)) == [created.pk, first.pk]
    assert "Read invoices created and placed as the source of a new operation, New operation." in body
    assert 'id="palette"' in body and 'hx-swap-oob="true"' in body and "Read invoices</a>" in body


def test_a_send_email_dropped_on_an_operation_fills_its_target(bob_client, team, project, connection, workflow):
    operation = Operation.objects.create(project=project, workflow=workflow, name="Forward")
    create = url("activity_create", team, project=project.pk, kind="send_email") + f"?place={operation.pk}"
    response = bob_client.post(create, send_data(connection), **HX)
    assert response.status_code == 200, response.content.decode()
    operation.refresh_from_db()
    assert operation.target.name == "Send to helpdesk" and operation.version == 2
    assert Operation.objects.count() == 1
    assert "placed as the target of Forward." in response.content.decode()


def test_without_javascript_the_chip_link_places_the_activity_and_returns_to_the_page(bob_client, team, project,
                                                                                      connection, workflow):
    create = url("activity_create", team, project=project.pk, kind="send_email") + f"?place=new&workflow={workflow.pk}"
    response = bob_client.post(create, send_data(connection), follow=True)
    assert response.redirect_chain[-1][0].endswith(f"/projects/{project.pk}/?workflow={workflow.pk}")
    assert Operation.objects.get().target.name == "Send to helpdesk"
    assert "placed as the target of a new operation" in response.content.decode()


def test_an_operation_deleted_while_the_wizard_was_open_keeps_the_activity(bob_client, team, project, connection):
    create = url("activity_create", team, project=project.pk, kind="send_email") + "?place=987654"
    response = bob_client.post(create, send_data(connection), **HX)
    assert response.status_code == 200
    assert Activity.objects.filter(name="Send to helpdesk").exists() and not Operation.objects.exists()
    assert "no longer exists" in response.content.decode()


def test_the_palette_offers_draggable_chips_and_connections(bob_client, team, project, connection, workflow):
    page = bob_client.get(url("project", team, project=project.pk)).content.decode()
    read_url = url("activity_create", team, project=project.pk, kind="read_email")
    assert f'data-new-source="{read_url}"' in page and 'data-source-label="Read Email"' in page
    assert f'data-new-source="{read_url}?connection={connection.pk}"' in page  # the connection itself
    assert f'href="{read_url}?place=new&amp;workflow={workflow.pk}"' in page  # keyboard and no-JS path
    assert 'id="wizard-dialog"' in page and f'data-workflow="{workflow.pk}"' in page


def test_a_viewer_gets_no_chips_to_drag(charlie_client, team, project, connection):
    page = charlie_client.get(url("project", team, project=project.pk)).content.decode()
    assert "data-new-source" not in page and 'id="wizard-dialog"' not in page
