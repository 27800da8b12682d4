import pytest

from tests.helpers import smtp_with_auth


@pytest.fixture
def smtp(smtp_factory):
    return smtp_with_auth(smtp_factory)
