"""The invoices of many orders paid at once (payments' `orders_paid`), PostgreSQL only.

The renewal engine settles hundreds of renewals in one transaction; issuing their invoices one
by one (find, number, load the buyer, flush, build, flush) was ~95% of its time. Here a batch
costs four reads, one counter update and one multi-row INSERT, whatever its size:

- the orders not invoiced yet (a replay, or an order invoiced per row, is skipped): the unique
  index `uq_invoice_one_per_order` stays the guard, a twin's insert would fail the batch;
- their lines, buyers and billing data, read set-based into the same snapshot the per-row issue
  takes (shop.billing.snapshot_of, services.lines_of);
- the XML of each document, built and checked against the XSD as `_finish` does, with a
  stand-in for its number;
- the numbers: one `UPDATE invoice_counter SET last = last + n RETURNING last`
  (numbering.take_numbers) in the paying transaction, as late as possible, since its row lock
  is held until the commit: a rollback gives the whole run back, so the series stays gap-free;
  then the numbers in the XML and all the rows in one INSERT.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import exists, select

from webapp.bulk import any_of, insert_unnest, next_ids
from webapp.clock import rome_date
from webapp.extensions import db
from webapp.invoicing import fatturapa
from webapp.invoicing.models import DocumentKind, Invoice
from webapp.invoicing.numbering import progressive, take_numbers
from webapp.invoicing.services import PAYMENT_CODES, initial_state, lines_of, seller_from_config
from webapp.invoicing.xsd import schema_errors
from webapp.payments.events import PaidOrder
from webapp.shop.billing import snapshot_of
from webapp.shop.models import BillingProfile, Customer
from webapp.shop.order_models import Order, OrderLine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Draft:
    """An invoice to issue, all but its id, number and XML."""

    order_id: int
    order_number: str
    payment_id: int
    customer_id: int
    customer: dict
    lines: list[dict]
    net_cents: int
    vat_cents: int
    paid_cents: int
    split_payment: bool
    payment_method: str


def issue_invoices(paid: Sequence[PaidOrder], now: datetime) -> int:
    """The invoices (TD01) of orders paid together; flushes rows, returns how many it issued."""
    drafts = _drafts(paid)
    if not drafts:
        return 0
    issued_on = rome_date(now)
    ids = next_ids(Invoice.__table__, len(drafts))
    seller = seller_from_config()
    rate = current_app.config["VAT_RATE_PERCENT"]
    xml = [_xml(d, i, issued_on, rate, seller) for d, i in zip(drafts, ids, strict=True)]
    # Last: the counter's row lock is held from here until the commit.
    numbers = take_numbers(issued_on.year, len(drafts))
    xml = [_numbered(x, f"{issued_on.year}/{n:06d}") for x, n in zip(xml, numbers, strict=True)]
    _insert(drafts, ids, issued_on.year, numbers, xml, now, rate, seller)
    return len(drafts)


# The number is the one part of a document that needs the counter's lock: the XML is built and
# checked before the lock is taken with this stand-in, then the number (Invoice.number_label)
# replaces it. Both are Basic Latin strings of at most 20 characters (the XSD's String20Type),
# so the check holds for the numbered document (tests compare it with the per-row issue's).
PENDING_NUMBER = "<Numero>NUMERO-DA-ASSEGNARE</Numero>"


def _numbered(xml: bytes, label: str) -> bytes:
    pending = PENDING_NUMBER.encode()
    if xml.count(pending) != 1:
        raise RuntimeError("an invoice's XML lacks its one number to assign")
    return xml.replace(pending, f"<Numero>{label}</Numero>".encode())


def _drafts(paid: Sequence[PaidOrder]) -> list[Draft]:
    """The paid orders that have no invoice yet, with their lines and buyers' data."""
    payment_of = {p.order_id: p.payment_id for p in paid}
    invoiced = exists().where(Invoice.order_id == Order.id, Invoice.kind == DocumentKind.INVOICE)
    orders = db.session.execute(
        select(Order.__table__)
        .where(any_of(Order.id, list(payment_of)), ~invoiced)
        .order_by(Order.id)
    ).all()
    if not orders:
        return []
    lines = _lines_by_order([o.id for o in orders])
    buyers = _snapshots({o.customer_id for o in orders})
    return [
        Draft(
            order_id=o.id,
            order_number=f"{o.created_at.year}-{o.id:06d}",  # Order.number
            payment_id=payment_of[o.id],
            customer_id=o.customer_id,
            customer=dict(o.buyer) if o.buyer else buyers[o.customer_id],
            lines=lines_of(o.kind, o.discount_code, lines[o.id]),
            net_cents=o.net_cents,
            vat_cents=o.vat_cents,
            paid_cents=o.total_cents,
            split_payment=o.split_payment,
            payment_method=PAYMENT_CODES[o.payment_method],
        )
        for o in orders
    ]


def _lines_by_order(order_ids: list[int]) -> dict[int, list]:
    rows = db.session.execute(
        select(OrderLine.__table__)
        .where(any_of(OrderLine.order_id, order_ids))
        .order_by(OrderLine.order_id, OrderLine.id)
    )
    lines: dict[int, list] = defaultdict(list)
    for row in rows:
        lines[row.order_id].append(row)
    return lines


def _snapshots(customer_ids: set[int]) -> dict[int, dict]:
    """customer_snapshot of each buyer, from two set-based reads."""
    ids = sorted(customer_ids)
    profiles = {
        p.customer_id: p
        for p in db.session.execute(
            select(BillingProfile.__table__).where(any_of(BillingProfile.customer_id, ids))
        )
    }
    customers = db.session.execute(
        select(Customer.id, Customer.name, Customer.tax_code, Customer.email).where(
            any_of(Customer.id, ids)
        )
    )
    return {c.id: snapshot_of(c.name, c.tax_code, c.email, profiles.get(c.id)) for c in customers}


def _xml(draft: Draft, invoice_id: int, issued_on, rate: int, seller: fatturapa.Seller) -> bytes:
    """The document's FatturaPA XML, checked against the XSD (a failure is logged, as _finish),
    its number still to assign."""
    doc = fatturapa.Document(
        kind=DocumentKind.INVOICE.value,
        number=PENDING_NUMBER.removeprefix("<Numero>").removesuffix("</Numero>"),
        issued_on=issued_on,
        progressive=progressive(invoice_id),
        customer=draft.customer,
        lines=draft.lines,
        net_cents=draft.net_cents,
        vat_cents=draft.vat_cents,
        vat_rate_percent=rate,
        total_cents=draft.net_cents + draft.vat_cents,
        paid_cents=draft.paid_cents,
        split_payment=draft.split_payment,
        payment_method=draft.payment_method,
        order_number=draft.order_number,
    )
    xml = fatturapa.build(doc, seller)
    try:
        errors = schema_errors(xml)
    except Exception:  # a broken schema install must not undo a payment
        log.exception("invoice %s: the FatturaPA schema could not be loaded", invoice_id)
        errors = []
    if errors:
        log.error("invoice %s does not match the FatturaPA schema: %s", invoice_id, errors[:5])
    return xml


def _insert(
    drafts: list[Draft],
    ids: list[int],
    year: int,
    numbers: range,
    xml: list[bytes],
    now: datetime,
    rate: int,
    seller: fatturapa.Seller,
) -> None:
    n = len(drafts)
    insert_unnest(
        Invoice.__table__,
        dict(
            id=("integer", ids),
            kind=("varchar", [DocumentKind.INVOICE.value] * n),
            year=("integer", [year] * n),
            number=("integer", list(numbers)),
            customer_id=("integer", [d.customer_id for d in drafts]),
            order_id=("integer", [d.order_id for d in drafts]),
            payment_id=("integer", [d.payment_id for d in drafts]),
            customer=("json", [json.dumps(d.customer) for d in drafts]),
            lines=("json", [json.dumps(d.lines) for d in drafts]),
            net_cents=("integer", [d.net_cents for d in drafts]),
            vat_cents=("integer", [d.vat_cents for d in drafts]),
            vat_rate_percent=("integer", [rate] * n),
            total_cents=("integer", [d.net_cents + d.vat_cents for d in drafts]),
            paid_cents=("integer", [d.paid_cents for d in drafts]),
            split_payment=("boolean", [d.split_payment for d in drafts]),
            payment_method=("varchar", [d.payment_method for d in drafts]),
            currency=("varchar", ["EUR"] * n),
            issued_at=("timestamptz", [now] * n),
            file_name=("varchar", [fatturapa.file_name(seller, progressive(i)) for i in ids]),
            xml=("bytea", xml),
            sdi_state=("varchar", [initial_state(d.customer).value for d in drafts]),
        ),
    )
