import pytest

import tests.fakes  # noqa: F401  (registers the in-memory connector the engine tests use)

pytest_plugins = ["tests.servers.fixtures", "tests.fixtures"]

_DB_FIXTURES = {"db", "transactional_db", "django_db_setup"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Mark every test that touches the database so `make test` can run them again on PostgreSQL.
    for item in items:
        if _DB_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("django_db"):
            item.add_marker(pytest.mark.database)
