"""The renewal batch path's stages one at a time (PostgreSQL): what each writes and hands on.

test_renewal_batches.py runs whole passes; here each stage (claim, split, record, charge,
settle, release) and the batch invoices are called on their own, so that a wrong lease, price,
key, status or filter shows in the row it writes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.conftest import PG_URL
from tests.unit.renewal_fakes import FakeGateway, make_card, make_service
from webapp.extensions import db as _db
from webapp.renewals import batch_claim
from webapp.renewals.charging import open_renewals
from webapp.renewals.models import Renewal
from webapp.renewals.outcomes import RenewalReport
from webapp.renewals.services import settings

pytestmark = pytest.mark.skipif(not PG_URL, reason="the batch path is PostgreSQL's")

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
IN_WINDOW = EXPIRES - timedelta(days=14)
LEASE_NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def fake(app) -> FakeGateway:
    gateway = FakeGateway()
    app.extensions["gateway"] = gateway
    return gateway


@pytest.fixture
def card(dummy_customer):
    return make_card(dummy_customer)


def service(customer, catalogue, card, hours=0, sku="PEC-STD", **kw):
    product = catalogue["products"][sku]
    return make_service(
        customer, product, expires_at=EXPIRES + timedelta(hours=hours), card=card, **kw
    )


def renewal_of(svc) -> Renewal:
    _db.session.expire_all()
    return _db.session.scalar(select(Renewal).where(Renewal.service_id == svc.id))


def open_all(now: datetime = IN_WINDOW) -> None:
    open_renewals(now, settings(), RenewalReport())


def test_a_claim_leases_the_due_rows_to_the_worker_in_id_order(
    app, fake, dummy_customer, catalogue, card
):
    app.config["RENEWAL_CLAIM_SECONDS"] = 90
    services = [service(dummy_customer, catalogue, card, hours=h) for h in (2, 0, 1)]
    open_all()
    ids = sorted(renewal_of(s).id for s in services)
    assert batch_claim.claim_batch(IN_WINDOW, "w1", LEASE_NOW, limit=2) == ids[:2]
    rows = {r.id: r for r in _db.session.scalars(select(Renewal))}
    assert [rows[i].claimed_by for i in ids] == ["w1", "w1", None]
    assert rows[ids[0]].claimed_until == LEASE_NOW + timedelta(seconds=90)
    # The rest, for another worker; nothing left after.
    assert batch_claim.claim_batch(IN_WINDOW, "w2", LEASE_NOW, limit=2) == ids[2:]
    assert batch_claim.claim_batch(IN_WINDOW, "w3", LEASE_NOW, limit=2) == []
