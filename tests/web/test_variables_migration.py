"""0008_project_variables: the old JSON variables (set in Django admin) become rows, plain values."""

from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("designer", "0006_lease_token")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_old_json_variables_become_rows(transactional_db):
    old = _migrate(BEFORE)
    team = old.get_model("designer", "Team").objects.create(name="T", slug="t")
    old.get_model("designer", "Project").objects.create(
        team=team, name="P", variables={"helpdesk_address": "desk@example.net", "2nd try": 3})
    # Forward to the newest migration, so the tests after this one find the schema they expect.
    new = _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes("designer"))
    rows = new.get_model("designer", "Variable").objects.order_by("name").values_list("name", "value", "secret")
    assert list(rows) == [("_2nd_try", "3", False), ("helpdesk_address", "desk@example.net", False)]
