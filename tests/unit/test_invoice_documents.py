"""What an issued document says, field by field: the buyer's name on the pages, a credit note's
share and line, the numbers, the FatturaPA elements of each kind of buyer (mutation round 3)."""

from __future__ import annotations

import pytest

from webapp.invoicing.services import display_name


@pytest.mark.parametrize(
    ("snapshot", "name"),
    [
        ({"customer_type": "private", "first_name": "Mario", "last_name": "Rossi"}, "Mario Rossi"),
        ({"customer_type": "private", "last_name": "Rossi"}, "Rossi"),
        ({"customer_type": "private", "first_name": "Mario"}, "Mario"),
        ({"customer_type": "private"}, ""),
        ({"customer_type": "business", "company_name": "Rossi S.r.l."}, "Rossi S.r.l."),
        ({"customer_type": "public", "first_name": "Mario", "company_name": "Comune"}, "Comune"),
        ({"customer_type": "business"}, ""),
        ({}, ""),
    ],
)
def test_the_buyers_name_on_the_pages(snapshot, name):
    assert display_name(snapshot) == name
