"""The one check of a bank answer (webapp.payments.verify), field by field."""

from __future__ import annotations

import pytest

from webapp.payments import verify
from webapp.payments.gateway import (
    ChargeResult,
    GatewayStatus,
    PaymentStatusInfo,
    RefundResult,
)
from webapp.payments.models import Payment, Refund
from webapp.shop.order_models import Order

MERCHANT = "pec-shop"  # TestConfig's BANK_MERCHANT_ID


@pytest.fixture
def payment(app):
    with app.test_request_context():
        payment = Payment(amount_cents=1220, currency="EUR", gateway_ref="ch_1")
        payment.order = Order(total_cents=1220)
        yield payment


def _charge(**changes) -> ChargeResult:
    fields = dict(
        charge_id="ch_1",
        status=GatewayStatus.SUCCEEDED,
        amount_cents=1220,
        currency="EUR",
        order_ref="ORD-7",
        decline_code=None,
        decline_message=None,
        merchant_id=MERCHANT,
    )
    return ChargeResult(**{**fields, **changes})


def test_a_matching_charge_answer_has_no_difference(payment):
    assert verify.charge_differences(payment, "ORD-7", _charge()) == []
    declined = _charge(status=GatewayStatus.DECLINED, decline_code="card_declined")
    assert verify.charge_differences(payment, "ORD-7", declined) == []


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"amount_cents": 1000}, "importo: chiesto € 12,20, la banca risponde € 10,00"),
        ({"amount_cents": 1221}, "importo: chiesto € 12,20, la banca risponde € 12,21"),
        ({"currency": "USD"}, "valuta: chiesto EUR, la banca risponde USD"),
        ({"order_ref": "ORD-8"}, "riferimento: chiesto ORD-7, la banca risponde ORD-8"),
        ({"merchant_id": "altro"}, "esercente: chiesto pec-shop, la banca risponde altro"),
        ({"merchant_id": None}, "esercente: chiesto pec-shop, la banca risponde None"),
        ({"status": GatewayStatus.PENDING}, "stato non definitivo: pending"),
        ({"status": GatewayStatus.AUTHORISED}, "stato non definitivo: authorised"),
    ],
)
def test_each_field_that_differs_is_named(payment, change, said):
    assert verify.charge_differences(payment, "ORD-7", _charge(**change)) == [said]


def test_every_difference_is_listed(payment):
    answer = _charge(amount_cents=1, currency="USD", order_ref="X", status=GatewayStatus.PENDING)
    assert len(verify.charge_differences(payment, "ORD-7", answer)) == 4


def _info(**changes) -> PaymentStatusInfo:
    fields = dict(
        payment_id="ch_1",
        status=GatewayStatus.AUTHORISED,
        amount_cents=1220,
        currency="EUR",
        order_ref="ORD-7",
        decline_code=None,
        decline_message=None,
        card=None,
        merchant_id=MERCHANT,
    )
    return PaymentStatusInfo(**{**fields, **changes})


def test_a_hosted_payment_answer_is_checked_the_same_way(payment):
    assert verify.payment_differences(payment, "ORD-7", _info()) == []
    for final in (GatewayStatus.DECLINED, GatewayStatus.FAILED):
        assert verify.payment_differences(payment, "ORD-7", _info(status=final)) == []
    assert verify.payment_differences(payment, "ORD-7", _info(status=GatewayStatus.SUCCEEDED))
    assert verify.payment_differences(payment, "ORD-7", _info(merchant_id="x"))
    [other] = verify.payment_differences(payment, "ORD-7", _info(payment_id="pay_other"))
    assert "pay_other" in other


def test_a_refund_answer_must_be_this_payments_amount_currency_and_merchant(payment):
    refund = Refund(amount_cents=500, currency="EUR")
    refund.payment = payment
    ok = RefundResult("re_1", "ch_1", GatewayStatus.SUCCEEDED, 500, "EUR", "r", MERCHANT)
    assert verify.refund_differences(refund, ok) == []
    for wrong in (
        RefundResult("re_1", "ch_1", GatewayStatus.SUCCEEDED, 250, "EUR", "r", MERCHANT),
        RefundResult("re_1", "ch_2", GatewayStatus.SUCCEEDED, 500, "EUR", "r", MERCHANT),
        RefundResult("re_1", "ch_1", GatewayStatus.SUCCEEDED, 500, "USD", "r", MERCHANT),
        RefundResult("re_1", "ch_1", GatewayStatus.SUCCEEDED, 500, "EUR", "r", "altro"),
        RefundResult("re_1", "ch_1", GatewayStatus.PENDING, 500, "EUR", "r", MERCHANT),
    ):
        assert len(verify.refund_differences(refund, wrong)) == 1, wrong


def test_money_taken_is_what_an_authorised_or_succeeded_answer_says():
    assert verify.money_taken(GatewayStatus.AUTHORISED, 1320) == 1320
    assert verify.money_taken(GatewayStatus.SUCCEEDED, 1320) == 1320
    assert verify.money_taken(GatewayStatus.SUCCEEDED, 0) == 0  # a card verification
    for status in (GatewayStatus.PENDING, GatewayStatus.DECLINED, GatewayStatus.FAILED):
        assert verify.money_taken(status, 1320) == 0


def test_a_payment_for_another_total_than_the_orders_is_a_difference(payment):
    payment.order.total_cents = 1000  # e.g. the net amount, without VAT
    [said] = verify.charge_differences(payment, "ORD-7", _charge())
    assert said == "totale dell'ordine: € 10,00, il pagamento era di € 12,20"
    assert verify.payment_differences(payment, "ORD-7", _info()) == [said]


def test_money_taken_counts_even_one_cent():
    assert verify.money_taken(GatewayStatus.SUCCEEDED, 1) == 1


def _open_payment(db, order, ref: str | None) -> Payment:
    from webapp.payments.models import PaymentChannel

    payment = Payment(
        order_id=order.id,
        channel=PaymentChannel.SAVED_CARD,
        amount_cents=order.total_cents,
        idempotency_key=f"k-{ref}",
        gateway_ref=ref,
    )
    db.session.add(payment)
    db.session.commit()
    return payment


def test_hold_marks_the_payment_to_verify_and_refunds_what_was_taken(
    db, catalogue, dummy_customer, now, caplog
):
    import logging

    from tests.unit.backoffice_world import make_order
    from webapp.payments.models import PaymentStatus, RefundKind, RefundStatus
    from webapp.payments.settlement import PAYMENT_TRANSITIONS

    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    payment = _open_payment(db, order, "ch_held")
    with caplog.at_level(logging.ERROR, logger="webapp.payments.verify"):
        refund = verify.hold(
            payment,
            ["a" * 200, "b" * 200],
            taken_cents=1,
            currency="USD",
            now=now,
            allowed=PAYMENT_TRANSITIONS,
        )
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert payment.status is PaymentStatus.TO_VERIFY and payment.failure_code == "to_verify"
    assert payment.completed_at == now
    assert len(payment.failure_message) == 300
    assert payment.failure_message.startswith("Da verificare: " + "a" * 200 + "; b")
    assert (refund.kind, refund.status) == (RefundKind.MISMATCH, RefundStatus.PENDING)
    assert (refund.amount_cents, refund.currency) == (1, "USD") and refund.payment_id == payment.id
    assert refund.payment is payment
    assert refund.idempotency_key == f"mismatch-{payment.id}" and refund.created_at == now
    assert payment.refunded_cents == 1


def test_hold_refunds_nothing_when_nothing_was_taken_or_nothing_can_be_named(
    db, catalogue, dummy_customer, now
):
    from tests.unit.backoffice_world import make_order
    from webapp.payments.settlement import PAYMENT_TRANSITIONS

    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    nothing_taken = _open_payment(db, order, "ch_0")
    assert (
        verify.hold(
            nothing_taken,
            ["x"],
            taken_cents=0,
            currency="EUR",
            now=now,
            allowed=PAYMENT_TRANSITIONS,
        )
        is None
    )
    no_ref = _open_payment(db, order, None)
    assert (
        verify.hold(
            no_ref, ["x"], taken_cents=500, currency="EUR", now=now, allowed=PAYMENT_TRANSITIONS
        )
        is None
    )
    assert nothing_taken.refunded_cents == no_ref.refunded_cents == 0


@pytest.mark.parametrize(
    ("status", "given", "refunded"),
    [(GatewayStatus.SUCCEEDED, 250, 250), (GatewayStatus.PENDING, 250, 0)],
)
def test_hold_refund_records_what_the_bank_gave_back(
    db, catalogue, dummy_customer, now, status, given, refunded
):
    from tests.unit.backoffice_world import paid_by_card
    from webapp.payments import refunds
    from webapp.payments.models import RefundKind, RefundStatus

    _, payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    refund = refunds.refund_payment(payment, 500, kind=RefundKind.OPERATOR, reason="r", now=now)
    answer = RefundResult("re_short", payment.gateway_ref, status, given, "EUR", "r", MERCHANT)
    found = verify.refund_differences(refund, answer)
    verify.hold_refund(refund, answer, found, now, refunds.REFUND_TRANSITIONS)
    assert refund.status is RefundStatus.TO_VERIFY and refund.failure_code == "to_verify"
    assert (refund.gateway_ref, refund.completed_at) == ("re_short", now)
    assert payment.refunded_cents == refunded
    # An answer about another payment, or in another currency, moves nothing.
    other = refunds.refund_payment(payment, 100, kind=RefundKind.OPERATOR, reason="r", now=now)
    elsewhere = RefundResult("re_x", "pay_other", GatewayStatus.SUCCEEDED, 1, "EUR", "r", MERCHANT)
    verify.hold_refund(other, elsewhere, ["x", "y"], now, refunds.REFUND_TRANSITIONS)
    assert payment.refunded_cents == refunded + 100
    assert other.failure_message == "Da verificare: x; y"
