"""Paying orders through the mock bank: path 1 (hosted page + 3-D Secure), replays, forgeries,
notifications, path 2 (saved card) and its idempotency. The bank runs in process."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from sqlalchemy import func, select

from tests.unit.bank_browser import BankBrowser
from webapp.clock import now_utc
from webapp.extensions import mail
from webapp.outbox.models import OutboxEmail
from webapp.payments.models import Payment, PaymentStatus, Refund, RefundStatus, SavedCard
from webapp.renewals.models import Service
from webapp.shop import cart as shop_cart
from webapp.shop import checkout
from webapp.shop.models import PaymentMethod
from webapp.shop.order_models import Order, OrderStatus

OTP_CARD = "4111111111111111"
APP_CARD = "5555555555554444"
EASY_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"


@pytest.fixture
def order_for(db, catalogue):
    """Create a confirmed card order for a customer: PEC Standard for 2 years + Firma Digitale."""

    def make(customer, skus=("PEC-STD", "FIRMA-R"), years=2, method="card"):
        cart = shop_cart.get_or_create_cart(customer.id, None)
        for sku in skus:
            line = shop_cart.add_product(cart, catalogue["products"][sku].id)
            if line.product.auto_renewable:
                shop_cart.set_years(cart, line.id, years)
        shop_cart.set_payment_method(cart, PaymentMethod(method))
        order = checkout.confirm_order(cart, customer.id, cart.checkout_token, True, now_utc())
        db.session.commit()
        return order

    return make


@pytest.fixture
def shopper(client, auth, dummy_customer):
    auth.login()
    return dummy_customer


def _pay_now(client, order):
    response = client.post(f"/ordini/{order.id}/paga")
    assert response.status_code == 303
    return response.headers["Location"]


def _return(client, url):
    parts = urlsplit(url)
    return client.get(parts.path, query_string=parts.query)


def _emails(db):
    return db.session.scalar(select(func.count(OutboxEmail.id)))


def test_path1_otp_pays_once_and_replay_changes_nothing(client, db, bank, shopper, order_for):
    order = order_for(shopper)
    bank_url = _pay_now(client, order)
    assert bank_url.startswith("http://localhost/pay/")
    back = BankBrowser(bank).pay(bank_url, OTP_CARD)

    with mail.record_messages() as outbox:
        response = _return(client, back)
        assert response.status_code == 303
        assert response.headers["Location"].endswith(f"/ordini/{order.id}")
        db.session.expire_all()
        assert order.status is OrderStatus.PAID
        # Replayed twice: nothing more is paid, created or sent.
        _return(client, back)
        _return(client, back)
    assert len(outbox) == 1
    assert f"ordine {order.number}" in outbox[0].subject
    assert "Rinnovo automatico attivato" in outbox[0].body
    assert "Visa •••• 1111" in outbox[0].body
    assert _emails(db) == 1

    payments = db.session.scalars(select(Payment).where(Payment.order_id == order.id)).all()
    assert [p.status for p in payments] == [PaymentStatus.SUCCEEDED]
    card = db.session.scalar(select(SavedCard).where(SavedCard.customer_id == shopper.id))
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("visa", "1111", 12, 2030)
    services = db.session.scalars(select(Service).order_by(Service.id)).all()
    assert len(services) == 2
    pec, firma = services
    assert pec.auto_renew and pec.frequency_years == 2 and pec.saved_card_id == card.id
    assert pec.expires_at.year == order.paid_at.year + 2
    assert not firma.auto_renew and firma.saved_card_id is None

    page = client.get(f"/ordini/{order.id}").text
    assert "Pagato il" in page and "Paga ora su server sicuro" not in page


def test_path1_app_approval(client, db, bank, shopper, order_for):
    order = order_for(shopper)
    _return(client, BankBrowser(bank).pay(_pay_now(client, order), APP_CARD))
    db.session.expire_all()
    assert order.status is OrderStatus.PAID


@pytest.mark.parametrize(
    ("number", "kwargs", "status", "message"),
    [
        (DECLINED_CARD, {}, PaymentStatus.DECLINED, "Carta rifiutata"),
        (OTP_CARD, {"otp": "000000"}, PaymentStatus.FAILED, "3-D Secure"),
        (APP_CARD, {"approve": False}, PaymentStatus.FAILED, "3-D Secure"),
    ],
)
def test_failed_payment_leaves_order_payable(
    client, db, bank, shopper, order_for, number, kwargs, status, message
):
    order = order_for(shopper)
    back = BankBrowser(bank).pay(_pay_now(client, order), number, **kwargs)
    response = _return(client, back)
    page = client.get(response.headers["Location"]).text
    assert message in page
    assert "Paga ora su server sicuro" in page
    db.session.expire_all()
    assert order.status is OrderStatus.PENDING_PAYMENT
    assert db.session.scalar(select(Payment.status).where(Payment.order_id == order.id)) is status
    assert _emails(db) == 0 and db.session.scalar(select(func.count(Service.id))) == 0
    # The order can be paid again with another card: a new bank payment is created.
    second = _pay_now(client, order)
    _return(client, BankBrowser(bank).pay(second, EASY_CARD))
    db.session.expire_all()
    assert order.status is OrderStatus.PAID


def test_double_click_on_pay_now_reuses_the_bank_payment(client, bank, shopper, order_for):
    order = order_for(shopper)
    assert _pay_now(client, order) == _pay_now(client, order)


@pytest.mark.parametrize("tamper", ["amount_cents", "sig", "status"])
def test_forged_return_is_refused(client, db, bank, shopper, order_for, tamper):
    order = order_for(shopper)
    back = BankBrowser(bank).pay(_pay_now(client, order), DECLINED_CARD)
    parts = urlsplit(back)
    params = dict(parse_qsl(parts.query))
    params[tamper] = {"amount_cents": "1", "sig": "0" * 64, "status": "authorised"}[tamper]
    response = client.get(parts.path, query_string=urlencode(params))
    assert response.status_code == 400
    db.session.expire_all()
    assert order.status is OrderStatus.PENDING_PAYMENT
    assert db.session.scalar(select(Payment.status).where(Payment.order_id == order.id)) is (
        PaymentStatus.PENDING
    )


def test_amount_mismatch_with_the_bank_is_never_paid(client, db, bank, shopper, order_for):
    order = order_for(shopper)
    back = BankBrowser(bank).pay(_pay_now(client, order), EASY_CARD)
    # Someone altered the order total after the payment was created.
    order.total_cents += 100
    db.session.commit()
    _return(client, back)
    db.session.expire_all()
    assert order.status is OrderStatus.PENDING_PAYMENT
    payment = db.session.scalar(select(Payment).where(Payment.order_id == order.id))
    assert payment.status is PaymentStatus.TO_VERIFY and payment.failure_code == "to_verify"
    assert "totale dell'ordine: € " in payment.failure_message
    # The money the bank took for it is given back at once, in full.
    [refund] = db.session.scalars(select(Refund).where(Refund.payment_id == payment.id))
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.amount_cents == payment.refunded_cents == payment.amount_cents


def test_bank_down_on_return_then_settled_later(client, db, bank, shopper, order_for):
    order = order_for(shopper)
    back = BankBrowser(bank).pay(_pay_now(client, order), EASY_CARD)
    bank.transport.down = True
    response = _return(client, back)
    assert response.status_code == 303
    db.session.expire_all()
    assert order.status is OrderStatus.PENDING_PAYMENT
    bank.transport.down = False
    _return(client, back)
    db.session.expire_all()
    assert order.status is OrderStatus.PAID


def test_notification_pays_when_the_customer_closes_the_tab(client, db, bank, shopper, order_for):
    """The bank's signed notification settles the order; the late return adds nothing."""
    from webapp.bank.notifier import deliver_due

    order = order_for(shopper)
    back = BankBrowser(bank).pay(_pay_now(client, order), EASY_CARD)
    posted = []

    def post(url, data, headers, timeout):
        posted.append(url)
        return client.post(urlsplit(url).path, data=data, headers=headers)

    with bank.app_context():
        assert deliver_due(now_utc() + timedelta(minutes=1), post=post) == 1
    assert [urlsplit(u).path for u in posted] == ["/pagamenti/notifica"]
    db.session.expire_all()
    assert order.status is OrderStatus.PAID and _emails(db) == 1
    _return(client, back)
    assert _emails(db) == 1


def test_notification_with_bad_signature_is_refused(client, db, bank, shopper, order_for):
    response = client.post(
        "/pagamenti/notifica",
        json={"payment_id": "pay_x"},
        headers={"X-Signature-Timestamp": "1", "X-Signature": "00"},
    )
    assert response.status_code == 401


# --- path 2: saved card on the portal ----------------------------------------------------------


def _saved_card(client, db, bank, customer, order_for, number=EASY_CARD):
    order = order_for(customer, skus=("MARCHE-50",))
    _return(client, BankBrowser(bank).pay(_pay_now(client, order), number))
    return db.session.scalar(select(SavedCard).where(SavedCard.customer_id == customer.id))


def _portal_form(client, order):
    page = client.get(f"/portale-pagamenti/ordini/{order.id}").text
    return {
        "attempt": re.search(r'name="attempt" value="([^"]+)"', page).group(1),
        "amount_cents": re.search(r'name="amount_cents" value="([^"]+)"', page).group(1),
    }, page


def _charges(bank):
    from webapp.bank.extensions import db as bank_db
    from webapp.bank.models import Charge

    with bank.app_context():
        return bank_db.session.scalar(
            select(func.count(Charge.id)).where(Charge.status == "succeeded")
        )


def test_path2_saved_card_pays_once_even_posted_twice(client, db, bank, shopper, order_for):
    card = _saved_card(client, db, bank, shopper, order_for)
    order = order_for(shopper)
    assert _pay_now(client, order).endswith(f"/portale-pagamenti/ordini/{order.id}")
    form, page = _portal_form(client, order)
    assert "Nuova carta di pagamento" in page and "•••• 4242" in page
    assert "Il rinnovo automatico non è disponibile per Firma Digitale." in page  # no Marca here
    form["choice"] = str(card.id)
    first = client.post(f"/portale-pagamenti/ordini/{order.id}/procedi", data=form)
    second = client.post(f"/portale-pagamenti/ordini/{order.id}/procedi", data=form)
    assert first.status_code == 303 and second.status_code == 303
    db.session.expire_all()
    assert order.status is OrderStatus.PAID
    assert _charges(bank) == 1
    assert (
        db.session.scalar(
            select(func.count(OutboxEmail.id)).where(
                OutboxEmail.dedupe_key == f"order-paid-{order.id}"
            )
        )
        == 1
    )
    pec = db.session.scalar(select(Service).where(Service.product.has(sku="PEC-STD")))
    assert pec.auto_renew and pec.saved_card_id == card.id


def test_path2_refuses_another_customers_card_and_tampered_amount(
    client, db, bank, shopper, order_for, create_customer, auth
):
    other = create_customer(email="luigi@example.it")
    auth.logout()
    auth.login("luigi@example.it")
    their_card = _saved_card(client, db, bank, other, order_for)
    auth.logout()
    auth.login()
    own_card = _saved_card(client, db, bank, shopper, order_for)
    order = order_for(shopper)
    charges_before = _charges(bank)

    form, _ = _portal_form(client, order)
    response = client.post(
        f"/portale-pagamenti/ordini/{order.id}/procedi", data={**form, "choice": str(their_card.id)}
    )
    assert response.status_code == 422 and "Carta non trovata." in response.text

    response = client.post(
        f"/portale-pagamenti/ordini/{order.id}/procedi",
        data={**form, "choice": str(own_card.id), "amount_cents": "1"},
    )
    assert response.status_code == 422 and "importo non corrisponde" in response.text

    db.session.expire_all()
    assert order.status is OrderStatus.PENDING_PAYMENT and _charges(bank) == charges_before


def test_path2_expired_card_cannot_be_chosen(client, db, bank, shopper, order_for):
    card = _saved_card(client, db, bank, shopper, order_for)
    card.exp_year = 2020
    db.session.commit()
    order = order_for(shopper)
    form, page = _portal_form(client, order)
    assert "Scaduta" in page
    response = client.post(
        f"/portale-pagamenti/ordini/{order.id}/procedi", data={**form, "choice": str(card.id)}
    )
    assert response.status_code == 422 and "è scaduta" in response.text


def test_path2_decline_leaves_order_payable_with_another_card(client, db, bank, shopper, order_for):
    from webapp.payments import cards, settlement

    poor = _saved_card(client, db, bank, shopper, order_for, number=EASY_CARD)
    # Point the saved card at the bank's insufficient-funds card by verifying it at zero amount.
    gateway = settlement.gateway()
    hosted = gateway.create_payment(
        amount_cents=0,
        currency="EUR",
        order_ref="VERIFY-1",
        description="Verifica carta",
        return_url="http://localhost/x",
        notify_url=None,
        save_card=True,
        idempotency_key="v-1",
    )
    BankBrowser(bank).pay(hosted.redirect_url, "4000000000009995")
    details = gateway.get_payment(hosted.payment_id).card
    broke = cards.save_card(shopper.id, details)
    db.session.commit()

    order = order_for(shopper)
    form, _ = _portal_form(client, order)
    response = client.post(
        f"/portale-pagamenti/ordini/{order.id}/procedi", data={**form, "choice": str(broke.id)}
    )
    assert response.status_code == 422 and "Fondi insufficienti" in response.text
    db.session.expire_all()
    assert order.status is OrderStatus.PENDING_PAYMENT
    form, _ = _portal_form(client, order)
    client.post(
        f"/portale-pagamenti/ordini/{order.id}/procedi", data={**form, "choice": str(poor.id)}
    )
    db.session.expire_all()
    assert order.status is OrderStatus.PAID


def test_charge_with_lost_answer_is_resolved_by_asking_not_charging(
    client, db, bank, shopper, order_for
):
    from webapp.payments import charges, settlement
    from webapp.payments.gateway import GatewayUnavailable

    card = _saved_card(client, db, bank, shopper, order_for)
    order = order_for(shopper)
    payment = charges.begin_saved_card_payment(
        order, shopper.id, card.id, "attempt-1", now_utc().date()
    )
    db.session.commit()
    real = bank.transport

    def lose_answer(method, url, body, headers, timeout):
        real(method, url, body, headers, timeout)  # the bank charges...
        raise GatewayUnavailable("timeout")  # ...but the answer never arrives

    settlement.gateway().transport = lose_answer
    charges.execute_card_charge(payment, now_utc())
    db.session.commit()
    assert payment.status is PaymentStatus.UNKNOWN and order.status is OrderStatus.PENDING_PAYMENT
    settlement.gateway().transport = real
    charges.execute_card_charge(payment, now_utc())
    db.session.commit()
    assert payment.status is PaymentStatus.SUCCEEDED and order.status is OrderStatus.PAID
    assert _charges(bank) == 1  # charged once at the bank, although the shop asked twice
    assert ("GET", f"/api/charges/by-key/{payment.idempotency_key}") in real.calls


def test_bank_transfer_order_is_not_paid_by_card(client, db, bank, shopper, order_for):
    order = order_for(shopper, method="bank_transfer")
    assert order.payment_method is PaymentMethod.BANK_TRANSFER
    assert not order.has_auto_renew
    response = client.post(f"/ordini/{order.id}/paga")
    assert response.status_code == 303 and response.headers["Location"].endswith(
        f"/ordini/{order.id}"
    )
    assert db.session.scalar(select(func.count(Payment.id))) == 0


def test_other_customers_order_cannot_be_paid(
    client, db, bank, shopper, order_for, create_customer
):
    other = create_customer(email="anna@example.it")
    order = order_for(other)
    assert client.post(f"/ordini/{order.id}/paga").status_code == 404
    assert client.get(f"/portale-pagamenti/ordini/{order.id}").status_code == 404
    assert db.session.get(Order, order.id).status is OrderStatus.PENDING_PAYMENT


def test_second_bank_payment_for_a_paid_order_is_refunded(client, db, bank, shopper, order_for):
    """Two bank pages open for one order, both paid: one activation, the second refunded at the
    bank with one e-mail about it, and the refund shown among the customer's orders."""
    from webapp.bank.extensions import db as bank_db
    from webapp.bank.models import Refund as BankRefund
    from webapp.payments import hosted as payments_hosted

    order = order_for(shopper)
    first = _pay_now(client, order)
    later = now_utc() + payments_hosted.HOSTED_PAYMENT_REUSE + timedelta(minutes=1)
    second_payment = payments_hosted.start_hosted_payment(
        order, return_url="http://localhost/pagamenti/ritorno", notify_url=None, now=later
    )
    db.session.commit()
    assert second_payment.redirect_url != first
    _return(client, BankBrowser(bank).pay(first, EASY_CARD))
    second_return = BankBrowser(bank).pay(second_payment.redirect_url, EASY_CARD)
    back = _return(client, second_return)
    db.session.expire_all()
    statuses = sorted(p.status.value for p in db.session.scalars(select(Payment)))
    assert statuses == ["duplicate", "succeeded"]
    assert second_payment.failure_code == "duplicate"
    refund = db.session.scalar(select(Refund))
    assert (refund.payment_id, refund.amount_cents) == (second_payment.id, order.total_cents)
    assert refund.status is RefundStatus.SUCCEEDED
    with bank.app_context():
        refunds_at_bank = bank_db.session.scalars(select(BankRefund)).all()
    assert [r.amount_cents for r in refunds_at_bank] == [order.total_cents]
    subjects = sorted(e.subject for e in db.session.scalars(select(OutboxEmail)))
    assert len(subjects) == 2 and subjects[1].startswith("Rimborso di € ")
    assert db.session.scalar(select(func.count(Service.id))) == 2
    # The customer is told on return, and sees the refund among the orders.
    page = client.get(back.headers["Location"]).get_data(as_text=True)
    assert "era già stato pagato" in page and "è stato rimborsato sulla tua carta" in page
    orders = client.get("/area-clienti/ordini").get_data(as_text=True)
    assert f'id="refund-{refund.id}"' in orders and "Rimborsato" in orders
    # Replaying the return changes nothing: no second refund, no second e-mail.
    _return(client, second_return)
    assert db.session.scalar(select(func.count(Refund.id))) == 1
    assert _emails(db) == 2
    # A duplicate whose refund the bank has not confirmed yet is told it will be refunded.
    from webapp.payments import flows

    refund.status = RefundStatus.UNKNOWN
    told = flows.result_of(db.session.get(Payment, second_payment.id))
    assert told.outcome is flows.Outcome.DUPLICATE and told.category == "info"
    assert "verrà rimborsato" in told.message and "€ " in told.message


def test_the_portal_front_page_lists_orders_to_pay_and_saved_cards(
    client, db, bank, shopper, order_for
):
    card = _saved_card(client, db, bank, shopper, order_for)
    unpaid = order_for(shopper)
    page = client.get("/portale-pagamenti/")
    assert page.status_code == 200
    assert f'id="payable-{unpaid.id}"' in page.text and unpaid.number in page.text
    assert f'id="portal-card-{card.id}"' in page.text and "•••• 4242" in page.text
    paid = db.session.scalar(select(Order).where(Order.status == OrderStatus.PAID))
    assert f'id="payable-{paid.id}"' not in page.text


def test_annulla_e_torna_al_negozio_leaves_the_order_to_pay_with_a_new_page(
    client, db, bank, shopper, order_for
):
    """The customer cancels on the bank's card page: nothing is paid, the order page says the
    payment was cancelled, and "Paga ora" opens a new bank page."""
    order = order_for(shopper)
    first = _pay_now(client, order)
    back = BankBrowser(bank).cancel(first)
    response = _return(client, back)
    assert response.status_code == 303
    db.session.expire_all()
    assert order.status is OrderStatus.PENDING_PAYMENT
    [payment] = db.session.scalars(select(Payment).where(Payment.order_id == order.id)).all()
    assert payment.status is PaymentStatus.FAILED and payment.failure_code == "cancelled"
    page = client.get(response.headers["Location"]).text
    assert "Pagamento annullato" in page
    second = _pay_now(client, order)
    assert second != first  # a new page: the cancelled one is not reused
