"""Fixtures the unit tests of payments and renewals share."""

import pytest

from tests.unit.renewal_fakes import FakeGateway


@pytest.fixture
def fake(app) -> FakeGateway:
    """The app's payment gateway replaced by the in-process fake bank (scripted answers)."""
    gateway = FakeGateway()
    app.extensions["gateway"] = gateway
    return gateway
