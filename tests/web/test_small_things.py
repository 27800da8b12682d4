"""Issue 17's lesser items: a favicon, breadcrumbs, plain words on the run page and the demo, and no
Remove for the only admin."""

from django.contrib.staticfiles import finders

from designer import demo
from designer.models import Project, Run
from tests.helpers import url


def test_every_page_names_a_favicon_that_exists(alice_client, team):
    page = alice_client.get(url("team", team)).content.decode()
    assert 'rel="icon"' in page and "favicon" in page
    assert finders.find("favicon.svg")


def test_the_project_breadcrumb_has_no_stray_slash(alice_client, team):
    project = Project.objects.create(team=team, name="Desk")
    page = alice_client.get(url("project", team, project=project.pk)).content.decode()
    crumbs = page.split('class="crumbs"', 1)[1].split("</p>", 1)[0]
    assert not crumbs.rstrip().endswith("/")


def test_the_run_page_says_where_a_run_ran_in_words(alice_client, team, operation):
    run = Run.objects.create(operation=operation, trigger=Run.Trigger.MANUAL, status=Run.Status.SUCCEEDED,
                             worker="vm:11365")
    page = alice_client.get(url("run", team, run=run.pk)).content.decode()
    assert "Ran on" in page and "vm, process 11365" in page and "Worker" not in page


def test_the_only_admin_is_not_offered_remove(alice_client, bob, team):
    page = alice_client.get(url("members", team)).content.decode()
    assert page.count(">Remove</button>") == 1  # bob's row only
    assert "the only admin" in page


def test_the_demo_connection_description_has_no_markdown():
    document = demo.project_document(demo.Sandbox(imap_port=1, smtp_port=2, password="x"))
    assert "`" not in document["connections"][0]["description"]
