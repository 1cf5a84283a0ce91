"""Recording a bank transfer (webapp.payments.transfers): what is refused, at each boundary."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.unit.backoffice_world import make_order
from webapp.errors import DomainError, InvalidChoice, InvalidTransition
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.payments.transfers import TransferRefused, normalise_reference, record_bank_transfer
from webapp.shop.order_models import OrderKind, OrderStatus


@pytest.fixture
def order(db, catalogue, dummy_customer, now):
    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "bank_transfer", now)
    db.session.commit()
    return order


def record(order, now, reference="CRO123456", amount=None, value_date=None):
    amount = order.total_cents if amount is None else amount
    value_date = now.date() if value_date is None else value_date
    return record_bank_transfer(order, amount, value_date, reference, now, "op@pecshop.test")


def test_a_transfer_of_the_total_pays_the_order_and_is_recorded_as_received(db, order, now):
    payment = record(order, now, reference=" cro 12 3456 ", value_date=date(2026, 11, 20))
    db.session.commit()
    db.session.expire_all()
    assert order.status is OrderStatus.PAID
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.channel is PaymentChannel.BANK_TRANSFER
    assert (payment.order_id, payment.amount_cents, payment.currency) == (
        order.id,
        order.total_cents,
        "EUR",
    )
    assert (payment.transfer_reference, payment.idempotency_key) == (
        "CRO123456",
        "transfer-CRO123456",
    )
    assert (payment.value_date, payment.recorded_by) == (date(2026, 11, 20), "op@pecshop.test")
    assert payment.created_at.replace(tzinfo=now.tzinfo) == now


def test_the_reference_is_read_without_spaces_in_upper_case():
    assert normalise_reference(" ab 12\tcd\n34 ") == "AB12CD34"
    assert normalise_reference("") == "" and normalise_reference(None) == ""


@pytest.mark.parametrize("reference", ["A" * 6, "9" * 35, "ab12cd"])
def test_a_reference_of_6_to_35_letters_or_digits_is_taken(db, order, now, reference):
    assert record(order, now, reference=reference).transfer_reference == reference.upper()


@pytest.mark.parametrize("reference", ["A" * 5, "9" * 36, "CRO-123456", "CRÒ123456", ""])
def test_any_other_reference_is_refused(db, order, now, reference):
    with pytest.raises(InvalidChoice, match="CRO/TRN"):
        record(order, now, reference=reference)
    assert order.status is OrderStatus.PENDING_PAYMENT


@pytest.mark.parametrize("delta", [-1, 1, -100])
def test_an_amount_other_than_the_total_is_refused_not_paid_in_part(db, order, now, delta):
    with pytest.raises(TransferRefused, match="diverso dal totale"):
        record(order, now, amount=order.total_cents + delta)
    assert order.status is OrderStatus.PENDING_PAYMENT
    assert db.session.query(Payment).count() == 0


def test_the_value_date_may_be_today_not_tomorrow(db, order, now):
    with pytest.raises(InvalidChoice, match="futuro"):
        record(order, now, value_date=now.date() + timedelta(days=1))
    assert record(order, now, value_date=now.date()).value_date == now.date()


def test_a_card_order_or_a_renewal_is_not_paid_by_transfer(db, catalogue, dummy_customer, now):
    card = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    with pytest.raises(TransferRefused, match="non si paga con bonifico"):
        record(card, now)
    renewal = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "bank_transfer", now)
    renewal.kind = OrderKind.RENEWAL
    with pytest.raises(TransferRefused, match="non si paga con bonifico"):
        record(renewal, now, reference="CRO654321")


def test_a_paid_or_cancelled_order_takes_no_transfer(db, order, now):
    record(order, now)
    with pytest.raises(InvalidTransition, match="già stato pagato"):
        record(order, now, reference="CRO999999")
    order.status = OrderStatus.CANCELLED
    with pytest.raises(InvalidTransition, match="non può essere pagato"):
        record(order, now, reference="CRO888888")


def test_a_reference_already_recorded_is_refused_before_the_database(
    db, order, catalogue, dummy_customer, now
):
    record(order, now, reference="CRO123456")
    other = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "bank_transfer", now)
    with pytest.raises(TransferRefused, match="già stato registrato"):
        record(other, now, reference="cro 123456")
    assert other.status is OrderStatus.PENDING_PAYMENT
    assert issubclass(TransferRefused, DomainError)
