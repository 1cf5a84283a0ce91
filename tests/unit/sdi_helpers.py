"""Factories for the SdI tests: a buyer of each kind with a test recipient code, a paid order's
invoice, one transmission pass followed by the sandbox's webhooks."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import insert, select

from tests.unit.invoicing_helpers import PROFILES, confirmed_order, pay
from webapp.extensions import db
from webapp.invoicing.models import Invoice, Transmission
from webapp.invoicing.sdi_jobs import transmit_pass
from webapp.shop.billing import save_profile


def buyer_with_code(create_customer, code: str | None, email: str):
    """A business (7-character code), a public office (6) or a private person (None)."""
    customer = create_customer(email=email, billing=False)
    if code is None:
        data = PROFILES["private"]
    elif len(code) == 6:
        data = replace(PROFILES["public"], sdi_code=code)
    else:
        data = replace(PROFILES["business_code"], sdi_code=code)
    save_profile(customer.id, data)
    db.session.commit()
    return customer


def paid_invoice(customer, products, now: datetime) -> Invoice:
    order = confirmed_order(customer, products, now)
    pay(order, now)
    db.session.commit()
    return db.session.scalar(select(Invoice).where(Invoice.order_id == order.id))


def copies(invoice: Invoice, n: int, **attempt) -> list[int]:
    """n more documents like this one (numbers after it), inserted at once: credit notes of it,
    since one order has one invoice. With `attempt` (a state, tries ...), one attempt each."""
    table = Invoice.__table__
    row = dict(db.session.execute(select(table).where(table.c.id == invoice.id)).mappings().one())
    del row["id"]
    base = row["number"] + 1000
    rows = [
        {**row, "number": base + i, "file_name": None, "kind": "TD04"}
        | {"related_invoice_id": invoice.id}
        for i in range(1, n + 1)
    ]
    db.session.execute(insert(table), rows)
    ids = db.session.scalars(
        select(table.c.id).where(table.c.number > base).order_by(table.c.id)
    ).all()
    if attempt:
        now = row["issued_at"]
        db.session.execute(
            insert(Transmission.__table__),
            [
                {"invoice_id": i, "file_name": f"IT0_{i}.xml", "xml": b"<x/>", "sha256": ""}
                | {"intermediary": "t", "created_at": now, "next_try_at": now, **attempt}
                for i in ids
            ],
        )
    return ids


def run(sdi, now: datetime, push: bool = True):
    """One shop transmission pass; then the sandbox's notifier pushes its webhooks."""
    report = transmit_pass(now)
    if push:
        sdi.push()
    db.session.expire_all()
    return report


def attempts(invoice_id: int) -> list[Transmission]:
    return list(
        db.session.scalars(
            select(Transmission)
            .where(Transmission.invoice_id == invoice_id)
            .order_by(Transmission.id)
        )
    )


def sandbox_files(sdi) -> list:
    from webapp.sdi.extensions import db as sdi_db
    from webapp.sdi.models import ReceivedFile

    with sdi.app_context():
        files = sdi_db.session.scalars(select(ReceivedFile).order_by(ReceivedFile.id)).all()
        return [(f.file_name, f.outcome, [n.kind for n in f.notifications]) for f in files]


def sandbox_messages(sdi) -> list[bytes]:
    from webapp.sdi.extensions import db as sdi_db
    from webapp.sdi.models import Notification

    with sdi.app_context():
        return [n.xml for n in sdi_db.session.scalars(select(Notification))]
