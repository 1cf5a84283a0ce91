"""Fixtures the unit tests of payments and renewals share."""

import pytest

from tests.unit.renewal_fakes import FakeGateway, make_card


@pytest.fixture
def fake(app) -> FakeGateway:
    """The app's payment gateway replaced by the in-process fake bank (scripted answers)."""
    gateway = FakeGateway()
    app.extensions["gateway"] = gateway
    return gateway


@pytest.fixture
def card(dummy_customer):
    """A valid saved card of the dummy customer."""
    return make_card(dummy_customer)
