"""The invariants of money after the first payment (issue 20), checked on the database against
what the (fake) bank holds: the stateful property test calls `check_all` after every step."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from sqlalchemy import select

from webapp.clock import add_years, as_utc
from webapp.extensions import db
from webapp.invoicing.models import DocumentKind, Invoice
from webapp.outbox.models import OutboxEmail
from webapp.payments.models import (
    Payment,
    PaymentChannel,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceEvent, ServiceStatus
from webapp.shop.order_models import Order, OrderLine


def bank_ledger(fake, captured_elsewhere: dict[str, int]) -> tuple[dict, dict]:
    """What the bank captured and refunded, by payment reference (hosted payments and transfers
    the test made itself are in `captured_elsewhere`)."""
    captured = dict(captured_elsewhere)
    for charge in fake.charges.values():
        if charge.succeeded:
            captured[charge.charge_id] = charge.amount_cents
    refunded: dict[str, int] = defaultdict(int)
    for result in fake.refunds.values():
        refunded[result.payment_ref] += result.amount_cents
    return captured, refunded


def check_money_at_the_bank(fake, captured_elsewhere: dict[str, int]) -> None:
    """Money at the bank = payments - refunds, per payment, per order and in total."""
    captured, refunded = bank_ledger(fake, captured_elsewhere)
    payments = db.session.scalars(
        select(Payment).where(Payment.status == PaymentStatus.SUCCEEDED)
    ).all()
    refunds = db.session.scalars(select(Refund).where(Refund.status == RefundStatus.SUCCEEDED))
    done: dict[int, int] = defaultdict(int)
    for refund in refunds:
        done[refund.payment_id] += refund.amount_cents
    by_order_db: dict[int, int] = defaultdict(int)
    by_order_bank: dict[int, int] = defaultdict(int)
    for p in payments:
        key = p.gateway_ref or p.idempotency_key
        assert captured.get(key) == p.amount_cents, f"payment {p.id}: not what the bank has"
        assert refunded.get(key, 0) == p.refunded_cents == done[p.id], f"refunds of {p.id}"
        by_order_db[p.order_id] += p.amount_cents - done[p.id]
        by_order_bank[p.order_id] += captured[key] - refunded.get(key, 0)
    assert by_order_db == by_order_bank
    keys = {p.gateway_ref or p.idempotency_key for p in payments}
    # A held answer ("Da verificare"): whatever the bank took is given back, all of it.
    for p in db.session.scalars(select(Payment).where(Payment.status == PaymentStatus.TO_VERIFY)):
        key = p.gateway_ref or p.idempotency_key
        assert refunded.get(key, 0) == captured.get(key, 0) == p.refunded_cents, f"held {p.id}"
        assert not db.session.scalar(select(Invoice.id).where(Invoice.payment_id == p.id))
        keys.add(key)
    assert set(captured) == keys, "money at the bank that no payment accounts for"
    assert sum(captured.values()) - sum(refunded.values()) == sum(by_order_db.values())


def check_invoices(payments: list[Payment]) -> None:
    """One invoice per payment with the amount paid; its credit notes = its refunds, to the cent."""
    for p in payments:
        invoices = db.session.scalars(
            select(Invoice).where(Invoice.payment_id == p.id, Invoice.kind == DocumentKind.INVOICE)
        ).all()
        assert len(invoices) == 1, f"payment {p.id} has {len(invoices)} invoices"
        invoice = invoices[0]
        assert invoice.paid_cents == p.amount_cents
        notes = db.session.scalars(
            select(Invoice).where(Invoice.related_invoice_id == invoice.id)
        ).all()
        assert sum(n.paid_cents for n in notes) == p.refunded_cents
        if p.refunded_cents == p.amount_cents:
            assert sum(n.net_cents for n in notes) == invoice.net_cents
            assert sum(n.vat_cents for n in notes) == invoice.vat_cents


def covering_years(service: Service) -> list[tuple[Payment, int]]:
    """The payments that paid periods of the service, with the years each paid."""
    line = db.session.get(OrderLine, service.order_line_id)
    out = [
        (p, line.years)
        for p in db.session.scalars(
            select(Payment).where(
                Payment.order_id == line.order_id, Payment.status == PaymentStatus.SUCCEEDED
            )
        )
    ]
    renewals = db.session.scalars(
        select(Renewal).where(
            Renewal.service_id == service.id, Renewal.status == RenewalStatus.SUCCEEDED
        )
    )
    for renewal in renewals:
        if renewal.order_line_id is not None:  # renewed by hand: its line's order paid it
            paid = db.session.get(OrderLine, renewal.order_line_id)
            order_id, years = paid.order_id, paid.years
        else:
            order = db.session.get(Order, renewal.order_id)
            order_id, years = order.id, order.lines[0].years
        for p in db.session.scalars(
            select(Payment).where(
                Payment.order_id == order_id, Payment.status == PaymentStatus.SUCCEEDED
            )
        ):
            out.append((p, years))
    return out


def check_paid_up_to() -> None:
    """Each service's expiry = its start + the periods its unrefunded payments cover."""
    for service in db.session.scalars(select(Service)):
        years = sum(y for p, y in covering_years(service) if p.refunded_cents < p.amount_cents)
        expected = add_years(as_utc(service.started_at), years)
        assert as_utc(service.expires_at) == expected, f"service {service.id}: paid-up-to"
        if years == 0:
            assert service.status is ServiceStatus.CANCELLED and not service.auto_renew
        else:
            assert service.status is not ServiceStatus.CANCELLED


def check_charges_announced(new_payments: list[Payment]) -> None:
    """Every renewal charge equals the last amount announced for its period."""
    for p in new_payments:
        if p.channel is not PaymentChannel.RENEWAL:
            continue
        renewal = db.session.scalar(select(Renewal).where(Renewal.order_id == p.order_id))
        service = renewal.service
        period = as_utc(renewal.period_expires_at)
        assert as_utc(service.announced_period) == period, f"charge {p.id} never announced"
        assert service.announced_cents == p.amount_cents, f"charge {p.id} not as announced"
        stamp = int(period.timestamp())
        notices = db.session.scalars(
            select(OutboxEmail.dedupe_key)
            .where(OutboxEmail.dedupe_key.like(f"notice-{service.id}-{stamp}-%"))
            .order_by(OutboxEmail.id)
        ).all()
        if notices:
            assert notices[-1].split("-")[3] == str(p.amount_cents), "last notice differs"
        else:  # the customer's reminder of the day listed it (its timeline says so)
            assert db.session.scalar(
                select(ServiceEvent.id).where(
                    ServiceEvent.service_id == service.id,
                    ServiceEvent.kind == "email",
                    ServiceEvent.detail.startswith("Promemoria")
                    | ServiceEvent.detail.startswith("La carta per il rinnovo"),
                )
            ), f"charge {p.id}: no e-mail announced it"


def withdrawal_expected(order: Order, buyer_type: str, now) -> bool:
    """The recesso: a private buyer (at confirm), by card, within 14 days, nothing refunded."""
    payment = db.session.scalar(
        select(Payment).where(
            Payment.order_id == order.id, Payment.status == PaymentStatus.SUCCEEDED
        )
    )
    any_refund = payment is not None and db.session.scalar(
        select(Refund.id).where(Refund.payment_id == payment.id)
    )
    return (
        buyer_type == "private"
        and payment is not None
        and payment.channel is not PaymentChannel.BANK_TRANSFER
        and now <= as_utc(order.paid_at) + timedelta(days=14)
        and not any_refund
    )


def check_all(fake, captured_elsewhere: dict[str, int]) -> None:
    db.session.expire_all()
    check_money_at_the_bank(fake, captured_elsewhere)
    payments = db.session.scalars(
        select(Payment).where(Payment.status == PaymentStatus.SUCCEEDED)
    ).all()
    check_invoices(payments)
    check_paid_up_to()
