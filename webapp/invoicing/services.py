"""Issuing invoices and credit notes, with the buyer's data of the day. Services flush.

Documents are issued inside the paying (or refunding) transaction, by the subscribers, and are
never edited afterwards: each keeps the buyer's data, its lines, its totals and its XML.
Their numbers come from webapp.invoicing.numbering; reading them back is
webapp.invoicing.archive's.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from webapp.clock import rome_date
from webapp.extensions import db
from webapp.invoicing import fatturapa
from webapp.invoicing.models import DocumentKind, Invoice
from webapp.invoicing.numbering import next_number, progressive
from webapp.invoicing.sdi_states import SdiState
from webapp.invoicing.xsd import schema_errors
from webapp.money import round_half_up_div, vat_cents
from webapp.payments.models import Payment, Refund, RefundStatus
from webapp.shop.billing import buyer_now
from webapp.shop.models import Customer, PaymentMethod
from webapp.shop.order_models import Order, OrderKind

log = logging.getLogger(__name__)

PAYMENT_CODES = {PaymentMethod.CARD: "MP08", PaymentMethod.BANK_TRANSFER: "MP05"}


def customer_snapshot(customer: Customer) -> dict:
    """The buyer's billing data now, copied into the document (later edits do not change it)."""
    return buyer_now(customer)


def buyer_of(order: Order) -> dict:
    """The order's buyer: the copy made at confirm; older orders, the billing data now."""
    if order.buyer:
        return dict(order.buyer)
    return customer_snapshot(db.session.get(Customer, order.customer_id))


def initial_state(snapshot: dict) -> SdiState:
    """A document whose buyer gave no billing data is "Dati mancanti": it is never sent invalid
    (the customer is asked, and it is rebuilt with the same number once the data is given)."""
    return SdiState.TO_SEND if snapshot.get("address") else SdiState.MISSING_DATA


def display_name(snapshot: dict) -> str:
    if snapshot.get("customer_type") == "private":
        return f"{snapshot.get('first_name', '')} {snapshot.get('last_name', '')}".strip()
    return snapshot.get("company_name", "")


def _order_lines(order: Order) -> list[dict]:
    return lines_of(order.kind, order.discount_code, order.lines)


def lines_of(kind: OrderKind, discount_code: str | None, order_lines) -> list[dict]:
    """The document's lines of an order's lines (objects or rows with the OrderLine columns)."""
    lines = []
    for line in order_lines:
        years = "1 anno" if line.years == 1 else f"{line.years} anni"
        period = _period_of(line)
        what = "Rinnovo" if kind is OrderKind.RENEWAL or period else "Servizio"
        description = f"{what} {line.product_name} ({line.kind.label}), {years}"
        if period:
            start, end = (date.fromisoformat(day) for day in period.values())
            description += f", dal {start:%d/%m/%Y} al {end:%d/%m/%Y}"
        if line.discount_cents and discount_code:
            description += f", codice sconto {discount_code}"
        lines.append(
            {
                "description": description,
                "quantity": line.years,
                "unit": "anni",
                "unit_price_cents": line.yearly_price_cents,
                "discount_cents": line.discount_cents,
                "net_cents": line.net_cents,
                **period,
            }
        )
    return lines


def _period_of(line) -> dict:
    """A renewal line's period (FatturaPA DataInizioPeriodo/DataFinePeriodo): from the day
    after the renewed expiry (a service is valid through its expiry day) to the new expiry day."""
    renews_from = getattr(line, "renews_from", None)
    renews_to = getattr(line, "renews_to", None)
    if renews_from is None or renews_to is None:
        return {}
    start = rome_date(renews_from) + timedelta(days=1)
    return {"period_start": start.isoformat(), "period_end": rome_date(renews_to).isoformat()}


def invoice_of_order(order_id: int, session: Session | None = None) -> Invoice | None:
    """The invoice (TD01) of a paid order, if issued (read through `session`, default the
    request's: the outbox renders e-mails from a session of its own)."""
    return (session or db.session).scalar(
        select(Invoice).where(Invoice.order_id == order_id, Invoice.kind == DocumentKind.INVOICE)
    )


def issue_invoice(order: Order, payment: Payment, now: datetime) -> Invoice:
    """The invoice of a paid order (purchase or renewal); issued once, found on a replay."""
    existing = invoice_of_order(order.id)
    if existing is not None:
        return existing
    issued_on = rome_date(now)
    invoice = Invoice(
        kind=DocumentKind.INVOICE,
        year=issued_on.year,
        number=next_number(issued_on.year),
        customer_id=order.customer_id,
        order_id=order.id,
        payment_id=payment.id,
        customer=buyer_of(order),
        lines=_order_lines(order),
        net_cents=order.net_cents,
        vat_cents=order.vat_cents,
        vat_rate_percent=current_app.config["VAT_RATE_PERCENT"],
        total_cents=order.net_cents + order.vat_cents,
        paid_cents=order.total_cents,
        split_payment=order.split_payment,
        payment_method=PAYMENT_CODES[order.payment_method],
        issued_at=now,
    )
    return _finish(invoice, order)


def issue_credit_note(refund: Refund, now: datetime) -> Invoice | None:
    """The credit note (TD04) of a refund of an invoiced payment; None when nothing was invoiced
    (an automatic refund of a duplicate capture) or the refund gave nothing back."""
    if refund.status is RefundStatus.FAILED or refund.amount_cents <= 0:
        return None
    existing = db.session.scalar(select(Invoice).where(Invoice.refund_id == refund.id))
    if existing is not None:
        return existing
    invoice = db.session.scalar(
        select(Invoice).where(
            Invoice.payment_id == refund.payment_id, Invoice.kind == DocumentKind.INVOICE
        )
    )
    if invoice is None:
        return None
    order = db.session.get(Order, invoice.order_id)
    net, vat, lines = _credited(invoice, refund.amount_cents, order)
    issued_on = rome_date(now)
    note = Invoice(
        kind=DocumentKind.CREDIT_NOTE,
        year=issued_on.year,
        number=next_number(issued_on.year),
        customer_id=invoice.customer_id,
        order_id=invoice.order_id,
        payment_id=invoice.payment_id,
        refund_id=refund.id,
        related_invoice_id=invoice.id,
        related_invoice=invoice,
        # The credit note corrects the invoice: same buyer as on the invoice.
        customer=dict(invoice.customer),
        lines=lines,
        net_cents=net,
        vat_cents=vat,
        vat_rate_percent=invoice.vat_rate_percent,
        total_cents=net + vat,
        paid_cents=refund.amount_cents,
        split_payment=invoice.split_payment,
        payment_method=invoice.payment_method,
        issued_at=now,
    )
    return _finish(note, order)


def _credited(invoice: Invoice, refunded: int, order: Order) -> tuple[int, int, list[dict]]:
    """Net, VAT and lines credited for a refund of `refunded` cents of what the buyer paid.

    The refund that completes the payment credits what the invoice still has (its net and VAT
    minus the earlier credit notes'), so the notes add up to the invoice to the cent."""
    if refunded == invoice.paid_cents:
        return invoice.net_cents, invoice.vat_cents, [dict(line) for line in invoice.lines]
    paid, net_before, vat_before = _credited_before(invoice)
    rate = invoice.vat_rate_percent
    total = paid + refunded  # rounded on the running total, so no note drifts
    if total == invoice.paid_cents:
        net_after, vat_after = invoice.net_cents, invoice.vat_cents
    elif invoice.split_payment:
        net_after = total  # the buyer paid the net only: the VAT is credited on top
        vat_after = min(vat_cents(net_after, rate), invoice.vat_cents)
    else:
        net_after = min(round_half_up_div(total * 100, 100 + rate), invoice.net_cents)
        vat_after = total - net_after
    net, vat = net_after - net_before, vat_after - vat_before
    return net, vat, [_credit_line(invoice, order, net)]


def _credited_before(invoice: Invoice) -> tuple[int, int, int]:
    """What the invoice's earlier credit notes gave back: paid, net and VAT."""
    paid, net, vat = db.session.execute(
        select(
            func.coalesce(func.sum(Invoice.paid_cents), 0),
            func.coalesce(func.sum(Invoice.net_cents), 0),
            func.coalesce(func.sum(Invoice.vat_cents), 0),
        ).where(Invoice.related_invoice_id == invoice.id, Invoice.kind == DocumentKind.CREDIT_NOTE)
    ).one()
    return int(paid), int(net), int(vat)


def _credit_line(invoice: Invoice, order: Order, net: int) -> dict:
    return {
        "description": f"Rimborso parziale dell'ordine {order.number}, "
        f"fattura n. {invoice.number_label}",
        "quantity": 1,
        "unit": "",
        "unit_price_cents": net,
        "discount_cents": 0,
        "net_cents": net,
    }


def _finish(document: Invoice, order: Order) -> Invoice:
    """Give the document its id, file name and XML (checked against the XSD: a failure is
    logged, never raised, since it must not undo the payment)."""
    document.sdi_state = initial_state(document.customer)
    db.session.add(document)
    db.session.flush()
    seller = seller_from_config()
    name = progressive(document.id)
    document.file_name = fatturapa.file_name(seller, name)
    document.xml = fatturapa.build(document_of(document, order, name), seller)
    try:
        errors = schema_errors(document.xml)
    except Exception:  # a broken schema install must not undo a payment
        log.exception("invoice %s: the FatturaPA schema could not be loaded", document.id)
        errors = []
    if errors:
        log.error("invoice %s does not match the FatturaPA schema: %s", document.id, errors[:5])
    db.session.flush()
    return document


def document_of(invoice: Invoice, order: Order, progressive_code: str) -> fatturapa.Document:
    related = invoice.related_invoice
    return fatturapa.Document(
        kind=invoice.kind.value,
        number=invoice.number_label,
        issued_on=rome_date(invoice.issued_at),
        progressive=progressive_code,
        customer=invoice.customer,
        lines=invoice.lines,
        net_cents=invoice.net_cents,
        vat_cents=invoice.vat_cents,
        vat_rate_percent=invoice.vat_rate_percent,
        total_cents=invoice.total_cents,
        paid_cents=invoice.paid_cents,
        split_payment=invoice.split_payment,
        payment_method=invoice.payment_method,
        order_number=order.number,
        related=fatturapa.Related(related.number_label, rome_date(related.issued_at))
        if related is not None
        else None,
    )


def seller_from_config() -> fatturapa.Seller:
    cfg = current_app.config
    return fatturapa.Seller(
        name=cfg["SELLER_NAME"],
        vat_number=cfg["SELLER_VAT_NUMBER"],
        tax_code=cfg["SELLER_TAX_CODE"],
        address=cfg["SELLER_ADDRESS"],
        cap=cfg["SELLER_CAP"],
        city=cfg["SELLER_CITY"],
        province=cfg["SELLER_PROVINCE"],
        rea_office=cfg["SELLER_REA_OFFICE"],
        rea_number=cfg["SELLER_REA_NUMBER"],
        email=cfg["SELLER_EMAIL"],
        phone=cfg["SELLER_PHONE"],
        iban=cfg["SELLER_IBAN"],
        regime=cfg["SELLER_REGIME_FISCALE"],
    )
