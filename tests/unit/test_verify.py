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
from webapp.shop.models import Order

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
    assert verify.money_taken(GatewayStatus.SUCCEEDED, 0) == 0
    for status in (GatewayStatus.PENDING, GatewayStatus.DECLINED, GatewayStatus.FAILED):
        assert verify.money_taken(status, 1320) == 0


def test_a_payment_for_another_total_than_the_orders_is_a_difference(payment):
    payment.order.total_cents = 1000  # e.g. the net amount, without VAT
    [said] = verify.charge_differences(payment, "ORD-7", _charge())
    assert said == "totale dell'ordine: € 10,00, il pagamento era di € 12,20"
    assert verify.payment_differences(payment, "ORD-7", _info()) == [said]
