"""Project administration in the browser: a variable defined and used in a Send Email default, the preview
rendering it, a project renamed and deleted, the team's Activity page, and an operation's design history."""

from playwright.sync_api import expect

from designer.authoring import canvas as design
from designer.models import Activity, Operation, Project, Variable, Workflow
from tests.browser.conftest import screenshot
from tests.helpers import make_connection


def test_a_variable_is_defined_and_used_in_a_default(login, live_server, bob, team, project):
    connection = make_connection(team, project)
    reader = Activity.objects.create(project=project, connection=connection, type="read_email",
                                     name="Read support inbox", settings={"folder": "INBOX"})
    page = login("bob")
    page.get_by_role("link", name="Support desk").click()

    panel = page.locator("#variables")
    expect(panel.get_by_role("heading", name="Variables")).to_be_visible()
    expect(panel.get_by_text("No variables yet.")).to_be_visible()
    panel.get_by_label("Name").fill("helpdesk address")
    panel.get_by_label("Value").fill("desk@example.net")
    panel.get_by_role("button", name="Add variable").click()
    expect(panel.get_by_text("Use letters, digits and _ only")).to_be_visible()
    expect(panel.get_by_label("Value")).to_have_value("desk@example.net")  # nothing typed is lost
    panel.get_by_label("Name").fill("helpdesk_address")
    panel.get_by_role("button", name="Add variable").click()
    expect(panel.get_by_role("cell", name="vars.helpdesk_address")).to_be_visible()
    panel.get_by_label("Name").fill("api_token")
    panel.get_by_label("Value").fill("t0ps3cret")
    panel.get_by_label("Secret: stored encrypted and never shown again").check()
    panel.get_by_role("button", name="Add variable").click()
    expect(panel.get_by_role("cell", name="vars.api_token")).to_be_visible()
    expect(panel.get_by_text("•••••• secret")).to_be_visible()
    assert "t0ps3cret" not in page.content()
    screenshot(page, "project-variables")

    # A default that names a variable the project lacks is refused where it is typed; the right one saves.
    page.get_by_role("link", name="+ New Send Email activity on Support mailbox").click()
    page.get_by_label("Name", exact=True).fill("Send to helpdesk")
    page.get_by_label("From", exact=True).fill("support@example.com")
    page.get_by_label("To", exact=True).fill("{{ vars.helpdesk_adress }}")
    page.get_by_role("button", name="Create activity").click()
    expect(page.get_by_text("uses vars.helpdesk_adress, which this project does not define")).to_be_visible()
    page.get_by_label("To", exact=True).fill("{{ vars.helpdesk_address }}")
    page.get_by_role("button", name="Create activity").click()
    expect(page.get_by_text("Activity Send to helpdesk created.")).to_be_visible()

    # The preview shows the default rendered.
    sender = Activity.objects.get(name="Send to helpdesk")
    workflow = Workflow.objects.create(project=project, name="Main")
    operation = Operation.objects.create(project=project, workflow=workflow, name="Forward", source=reader,
                                         target=sender, mapping={"subject": "Fwd: {{ subject }}"})
    page.goto(f"{live_server.url}/t/{team.slug}/operations/{operation.pk}/")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview").get_by_text("desk@example.net").first).to_be_visible()

    # A variable in use keeps its name, and says where it is used.
    page.goto(f"{live_server.url}/t/{team.slug}/projects/{project.pk}/variables/")
    page.get_by_role("button", name="Delete helpdesk_address").click()
    expect(page.get_by_text("helpdesk_address cannot be deleted while it is used:")).to_be_visible()
    expect(page.get_by_text("activity Send to helpdesk: defaults.to")).to_be_visible()


def test_a_project_is_renamed_and_deleted_and_the_activity_page_shows_it(login, live_server, bob, team, project):
    Variable.objects.create(project=project, name="helpdesk_address", value="desk@example.net")
    page = login("bob")
    page.get_by_role("link", name="Support desk").click()
    page.get_by_role("link", name="Rename or delete").click()
    page.get_by_label("Name").fill("Helpdesk")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Project Support desk renamed to Helpdesk.")).to_be_visible()
    expect(page.get_by_role("heading", name="Helpdesk")).to_be_visible()

    page.get_by_role("link", name="Rename or delete").click()
    page.get_by_role("link", name="Delete project…").click()
    expect(page.get_by_role("heading", name="Delete Helpdesk")).to_be_visible()
    expect(page.get_by_text("vars.helpdesk_address")).to_be_visible()  # what goes is listed
    screenshot(page, "project-delete")
    page.get_by_role("button", name="Delete project").click()
    expect(page.get_by_text("Project Helpdesk deleted.")).to_be_visible()
    assert not Project.objects.filter(pk=project.pk).exists()

    page.get_by_role("link", name="Activity").click()
    expect(page.get_by_role("heading", name="Activity")).to_be_visible()
    expect(page.get_by_text("name: Support desk → Helpdesk")).to_be_visible()
    page.get_by_label("Object").select_option("project")
    page.get_by_label("Person").select_option("bob")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("cell", name="deleted", exact=True)).to_be_visible()
    screenshot(page, "team-activity")


def test_the_operation_page_shows_its_design_history_and_restores_a_version(login, live_server, bob, team, project):
    connection = make_connection(team, project)
    reader = Activity.objects.create(project=project, connection=connection, type="read_email",
                                     name="Read support inbox", settings={"folder": "INBOX"})
    workflow = Workflow.objects.create(project=project, name="Main")
    operation = Operation.objects.create(project=project, workflow=workflow, name="Forward", source=reader,
                                         mapping={"subject": "Fwd: {{ subject }}"})
    design.save_operation(operation, operation.version, {"mapping": {"subject": "Re: {{ subject }}"}}, bob)
    page = login("bob")
    page.goto(f"{live_server.url}/t/{team.slug}/operations/{operation.pk}/")
    history = page.locator("#design-history")
    expect(history.get_by_text("mapping.subject: Fwd: {{ subject }} → Re: {{ subject }}")).to_be_visible()
    screenshot(page, "design-history")
    history.get_by_role("button", name="Restore operation version 1").click()
    expect(page.get_by_text("Restored version 1.")).to_be_visible()
    expect(page.locator("#design-history").get_by_text("mapping.subject: Re: {{ subject }} → Fwd: {{ subject }}")
           ).to_be_visible()
    operation.refresh_from_db()
    assert operation.mapping == {"subject": "Fwd: {{ subject }}"}
