"""Issue 20: money after the first payment. One buyer per order, the announced price is the
charged price, a refund undoes what it paid, one state shown everywhere, strict amounts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.unit.invoicing_helpers import confirmed_order, give_billing
from tests.unit.money_world import pay_by_card
from tests.unit.renewal_fakes import FakeGateway
from webapp.invoicing.models import Invoice
from webapp.invoicing.services import invoice_of_order
from webapp.payments.withdrawal import withdraw, withdrawal_refusal
from webapp.shop.models import CustomerType


@pytest.fixture(autouse=True)
def fake_bank(app) -> FakeGateway:
    gateway = FakeGateway()
    app.extensions["gateway"] = gateway
    return gateway


# --- 1. the recesso is for orders invoiced to a private person ---------------------------------


def test_a_person_billed_as_a_business_cannot_withdraw(db, dummy_customer, catalogue, now):
    assert len(dummy_customer.tax_code) == 16  # registered with a personal codice fiscale
    give_billing(dummy_customer, "business_code")
    order = confirmed_order(dummy_customer, catalogue["products"], now)
    pay_by_card(order, now)
    assert order.buyer_type is CustomerType.BUSINESS
    assert "consumatori" in withdrawal_refusal(order, dummy_customer, now + timedelta(days=1))
    with pytest.raises(Exception, match="consumatori"):
        withdraw(order, dummy_customer, now + timedelta(days=1))


def test_a_public_administration_cannot_withdraw(db, dummy_customer, catalogue, now):
    give_billing(dummy_customer, "public")
    order = confirmed_order(dummy_customer, catalogue["products"], now)
    pay_by_card(order, now)
    assert "consumatori" in withdrawal_refusal(order, dummy_customer, now)


def test_a_p_iva_registration_billed_as_a_person_can_withdraw(db, dummy_customer, catalogue, now):
    dummy_customer.tax_code = "00743110157"  # registered with a partita IVA
    give_billing(dummy_customer, "private")
    order = confirmed_order(dummy_customer, catalogue["products"], now)
    pay_by_card(order, now)
    assert withdrawal_refusal(order, dummy_customer, now + timedelta(days=1)) is None


def test_the_buyer_at_confirm_decides_not_a_later_edit(db, dummy_customer, catalogue, now):
    give_billing(dummy_customer, "private")
    order = confirmed_order(dummy_customer, catalogue["products"], now)
    give_billing(dummy_customer, "business_code")  # changed after confirm: later orders only
    pay_by_card(order, now)
    assert withdrawal_refusal(order, dummy_customer, now) is None


# --- 2. one buyer per order: the invoice is made out to the buyer copied at confirm ---------------


def test_a_pa_order_paid_after_switching_to_private_is_invoiced_to_the_pa(
    db, dummy_customer, catalogue, now
):
    give_billing(dummy_customer, "public")
    order = confirmed_order(dummy_customer, catalogue["products"], now, skus=("PEC-PRO",))
    assert order.split_payment
    give_billing(dummy_customer, "private")
    payment = pay_by_card(order, now)
    invoice = invoice_of_order(order.id)
    assert invoice.customer["customer_type"] == "public"
    assert invoice.customer["company_name"] == "Comune di Esempio"
    assert invoice.split_payment and b"<EsigibilitaIVA>S</EsigibilitaIVA>" in invoice.xml
    assert invoice.paid_cents == payment.amount_cents == order.net_cents
    # A later order is for the new buyer.
    later = confirmed_order(dummy_customer, catalogue["products"], now, skus=("PEC-PRO",))
    assert later.buyer_type is CustomerType.PRIVATE and not later.split_payment
    assert later.total_cents == later.net_cents + later.vat_cents


def test_a_private_order_paid_after_switching_to_pa_is_charged_vat_and_invoiced_to_the_person(
    db, dummy_customer, catalogue, now
):
    give_billing(dummy_customer, "private")
    order = confirmed_order(dummy_customer, catalogue["products"], now, skus=("PEC-PRO",))
    give_billing(dummy_customer, "public")
    pay_by_card(order, now)
    invoice = db.session.scalar(select(Invoice).where(Invoice.order_id == order.id))
    assert invoice.customer["customer_type"] == "private" and not invoice.split_payment
    assert invoice.paid_cents == invoice.total_cents == order.total_cents
