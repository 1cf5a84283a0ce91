"""The shop checks every answer of the bank before acting on it (webapp.payments.verify).

Each wrong-answer test card of the mock bank (docs/bank-api.md) is driven through the place
that acts on it: the hosted page's return, a saved-card charge, a renewal charge, a refund.
In each, the order is not paid (or the refund not done), the back office shows "Da verificare"
with what differed, and the money is right at the bank (what was taken is given back).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from tests.unit.backoffice_world import make_staff, staff_session
from tests.unit.bank_browser import BankBrowser
from tests.unit.renewal_fakes import make_service
from webapp.clock import now_utc, rome_date, rome_midnight
from webapp.invoicing.models import DocumentKind, Invoice
from webapp.payments import cards, flows, settlement
from webapp.payments import charges as payments_charges
from webapp.payments.gateway import CardDetails
from webapp.payments.models import (
    Payment,
    PaymentChannel,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
    SavedCard,
)
from webapp.renewals.engine import run_renewals
from webapp.renewals.models import Renewal, RenewalStatus
from webapp.shop import cart as shop_cart
from webapp.shop import checkout
from webapp.shop.models import PaymentMethod
from webapp.shop.order_models import Order, OrderStatus

EASY_CARD = "4242424242424242"
WRONG_AMOUNT = "4000000000000101"
WRONG_ORDER = "4000000000000200"
PENDING = "4000000000000309"
SHORT_REFUND = "4000000000000408"
NO_ANSWER = "4000000000000507"
SCA_CARD = "4000002760003184"  # customer-initiated token charges: authentication_required


@pytest.fixture
def order_for(db, catalogue):
    """A confirmed card order for PEC Standard, 1 year."""

    def make(customer):
        cart = shop_cart.get_or_create_cart(customer.id, None)
        shop_cart.add_product(cart, catalogue["products"]["PEC-STD"].id)
        shop_cart.set_payment_method(cart, PaymentMethod.CARD)
        order = checkout.confirm_order(cart, customer.id, cart.checkout_token, True, now_utc())
        db.session.commit()
        return order

    return make


@pytest.fixture
def shopper(client, auth, dummy_customer):
    auth.login()
    return dummy_customer


def _pay_on_bank_page(client, bank, order, number: str):
    response = client.post(f"/ordini/{order.id}/paga")
    assert response.status_code == 303
    back = urlsplit(BankBrowser(bank).pay(response.headers["Location"], number))
    return client.get(back.path, query_string=back.query)


def _bank_card(db, bank, customer, number: str) -> SavedCard:
    """Save `number` the way the customer area does: a zero-amount verification at the bank."""
    hosted = settlement.gateway().create_payment(
        amount_cents=0,
        currency="EUR",
        order_ref=f"CARTA-{customer.id}-{number}",
        description="Verifica",
        return_url="http://localhost/x",
        notify_url=None,
        save_card=True,
        idempotency_key=f"verify-{number}",
    )
    BankBrowser(bank).pay(hosted.redirect_url, number)
    details: CardDetails = settlement.gateway().get_payment(hosted.payment_id).card
    card = cards.save_card(customer.id, details)
    db.session.commit()
    return card


def _at_bank(bank) -> dict[str, int]:
    """What the bank holds: money taken (payments and charges) and given back (refunds)."""
    from webapp.bank.extensions import db as bank_db
    from webapp.bank.models import Charge
    from webapp.bank.models import Payment as BankPayment
    from webapp.bank.models import Refund as BankRefund

    with bank.app_context():
        s = bank_db.session
        taken = s.scalar(
            select(func.coalesce(func.sum(BankPayment.amount_cents), 0)).where(
                BankPayment.status == "authorised"
            )
        ) + s.scalar(
            select(func.coalesce(func.sum(Charge.amount_cents), 0)).where(
                Charge.status == "succeeded"
            )
        )
        given = s.scalar(select(func.coalesce(func.sum(BankRefund.amount_cents), 0)))
        charges = s.scalar(select(func.count(Charge.id)))
        refunds = s.scalar(select(func.count(BankRefund.id)))
    return {"taken": taken, "given": given, "charges": charges, "refunds": refunds}


def _payment(db, order) -> Payment:
    db.session.expire_all()
    return db.session.scalars(
        select(Payment).where(Payment.order_id == order.id).order_by(Payment.id.desc())
    ).first()


def _back_office_shows(client, order, *texts: str, row: str | None = None) -> None:
    """The operators see the payment as "Da verificare" with what differed on the order's
    timeline, and (`row`) in the queue of answers to verify."""
    staff = _staff_client(client)
    timeline = staff.get(f"/backoffice/ordini/{order.id}").get_data(as_text=True)
    for text in ("Da verificare", *texts):
        assert text in timeline, text
    if row is not None:
        queue = staff.get("/backoffice/pagamenti/anomalie").get_data(as_text=True)
        title = queue[queue.index("<title>") : queue.index("</title>")]
        assert "<" not in title[len("<title>") :], title  # the page's title is words only
        assert queue.count('id="to-verify"') == 1  # one section, not a copy in the <head>
        found = queue[queue.index(f'id="{row}"') :]
        found = found[: found.index("</tr>")]
        for text in (order.number, *texts):
            assert text in found, text


def _staff_client(client):
    """A browser of its own for the operator (a customer's session gets 404 there)."""
    staff = client.application.test_client()
    staff_session(staff, make_staff())
    return staff


def _invoices(db, kind: DocumentKind) -> int:
    return db.session.scalar(select(func.count(Invoice.id)).where(Invoice.kind == kind))


# --- hosted page (return) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "differs", "extra"),
    [(WRONG_AMOUNT, "importo", 100), (WRONG_ORDER, "riferimento", 0)],
)
def test_hosted_answer_with_another_amount_or_order_is_held_and_refunded(
    client, db, bank, shopper, order_for, number, differs, extra
):
    order = order_for(shopper)
    page = _pay_on_bank_page(client, bank, order, number)
    payment = _payment(db, order)
    assert payment.order.status is OrderStatus.PENDING_PAYMENT
    assert payment.status is PaymentStatus.TO_VERIFY and differs in payment.failure_message
    # The money the bank took is given back at once, all of it, by one refund.
    [refund] = db.session.scalars(select(Refund))
    assert refund.kind is RefundKind.MISMATCH and refund.status is RefundStatus.SUCCEEDED
    assert refund.amount_cents == payment.refunded_cents == order.total_cents + extra
    bank_state = _at_bank(bank)
    assert bank_state["taken"] == bank_state["given"] == order.total_cents + extra
    # No card saved, no service, no invoice from an answer that did not match.
    assert db.session.scalar(select(func.count(SavedCard.id))) == 0
    assert _invoices(db, DocumentKind.INVOICE) == 0
    assert "non ha confermato il pagamento" in client.get(page.headers["Location"]).text
    _back_office_shows(client, order, differs, row=f"to-verify-{payment.id}")


def test_hosted_answer_pending_is_held_and_nothing_is_refunded(
    client, db, bank, shopper, order_for
):
    order = order_for(shopper)
    _pay_on_bank_page(client, bank, order, PENDING)
    payment = _payment(db, order)
    assert payment.order.status is OrderStatus.PENDING_PAYMENT
    assert payment.status is PaymentStatus.TO_VERIFY
    assert "stato non definitivo: pending" in payment.failure_message
    assert db.session.scalar(select(func.count(Refund.id))) == 0  # nothing was taken
    assert _at_bank(bank) == {"taken": 0, "given": 0, "charges": 0, "refunds": 0}
    _back_office_shows(client, order, "stato non definitivo", row=f"to-verify-{payment.id}")


def test_a_held_order_can_still_be_paid_with_a_good_card(client, db, bank, shopper, order_for):
    order = order_for(shopper)
    _pay_on_bank_page(client, bank, order, WRONG_AMOUNT)
    _pay_on_bank_page(client, bank, order, EASY_CARD)
    db.session.expire_all()
    assert db.session.get(Order, order.id).status is OrderStatus.PAID
    bank_state = _at_bank(bank)
    assert bank_state["taken"] - bank_state["given"] == order.total_cents


# --- saved card (path 2) -------------------------------------------------------------------


def _pay_with(db, order, card) -> flows.PaymentResult:
    return flows.pay_with_saved_card(order, order.customer_id, str(card.id), "a1", now_utc())


@pytest.mark.parametrize(
    ("number", "differs", "extra"),
    [(WRONG_AMOUNT, "importo", 100), (WRONG_ORDER, "riferimento", 0)],
)
def test_saved_card_answer_with_another_amount_or_order_is_held_and_refunded(
    client, db, bank, shopper, order_for, number, differs, extra
):
    card = _bank_card(db, bank, shopper, number)
    order = order_for(shopper)
    result = _pay_with(db, order, card)
    assert result.outcome is flows.Outcome.TO_VERIFY
    payment = _payment(db, order)
    assert payment.order.status is OrderStatus.PENDING_PAYMENT
    assert payment.status is PaymentStatus.TO_VERIFY and differs in payment.failure_message
    [refund] = db.session.scalars(select(Refund))
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.amount_cents == order.total_cents + extra
    bank_state = _at_bank(bank)
    assert bank_state["taken"] == bank_state["given"] == order.total_cents + extra
    assert bank_state["charges"] == 1
    _back_office_shows(client, order, differs, row=f"to-verify-{payment.id}")


def test_saved_card_answer_pending_is_held_not_paid(client, db, bank, shopper, order_for):
    card = _bank_card(db, bank, shopper, PENDING)
    order = order_for(shopper)
    assert _pay_with(db, order, card).outcome is flows.Outcome.TO_VERIFY
    payment = _payment(db, order)
    assert payment.order.status is OrderStatus.PENDING_PAYMENT
    assert payment.status is PaymentStatus.TO_VERIFY
    assert db.session.scalar(select(func.count(Refund.id))) == 0
    assert _at_bank(bank)["taken"] == 0
    _back_office_shows(client, order, "stato non definitivo", row=f"to-verify-{payment.id}")


def test_saved_card_without_answer_is_looked_up_never_charged_again(
    client, db, bank, shopper, order_for
):
    card = _bank_card(db, bank, shopper, NO_ANSWER)
    order = order_for(shopper)
    before = len(bank.transport.calls)
    told = _pay_with(db, order, card)
    assert told.outcome is flows.Outcome.UNKNOWN and told.payment.order_id == order.id
    assert "non ripetere il pagamento" in told.message
    assert bank.transport.calls[before:] == [("POST", "/api/charges")]
    payment = _payment(db, order)
    assert payment.status is PaymentStatus.UNKNOWN
    assert payment.order.status is OrderStatus.PENDING_PAYMENT
    assert _at_bank(bank)["charges"] == 1  # the bank did charge: only its answer was lost
    _back_office_shows(client, order, "Da verificare: esito sconosciuto")
    calls = len(bank.transport.calls)
    assert flows.reconcile(now_utc()) == 1
    sent = [path for method, path in bank.transport.calls[calls:]]
    assert sent == [f"/api/charges/by-key/{payment.idempotency_key}"]  # asked, not sent
    assert _payment(db, order).order.status is OrderStatus.PAID
    bank_state = _at_bank(bank)
    assert (bank_state["charges"], bank_state["taken"]) == (1, order.total_cents)


# --- refunds --------------------------------------------------------------------------------


def _paid_order(client, db, bank, shopper, order_for, number):
    order = order_for(shopper)
    _pay_on_bank_page(client, bank, order, number)
    payment = _payment(db, order)
    assert payment.status is PaymentStatus.SUCCEEDED
    return order, payment


def _refund_all(payment) -> Refund:
    return flows.refund(
        payment,
        payment.amount_cents,
        kind=RefundKind.OPERATOR,
        reason="Rimborso di prova",
        now=now_utc(),
        requested_by="admin@pecshop.test",
    )


def test_a_refund_of_less_than_asked_is_not_done_and_the_money_stays_right(
    client, db, bank, shopper, order_for
):
    order, payment = _paid_order(client, db, bank, shopper, order_for, SHORT_REFUND)
    refund = _refund_all(payment)
    db.session.expire_all()
    assert refund.status is RefundStatus.TO_VERIFY and "importo" in refund.failure_message
    assert refund.completed_at is not None and refund.gateway_ref.startswith("re_")
    # What the bank gave back is what the shop records: half, not the whole.
    given = _at_bank(bank)["given"]
    assert given == payment.amount_cents // 2
    assert db.session.get(Payment, payment.id).refunded_cents == given
    # Not done: no credit note, the services go on, no refund e-mail.
    assert _invoices(db, DocumentKind.CREDIT_NOTE) == 0
    assert db.session.get(Order, order.id).status is OrderStatus.PAID
    _back_office_shows(client, order, "importo", row=f"to-verify-refund-{refund.id}")


def test_a_refund_without_answer_is_looked_up_never_sent_again(
    client, db, bank, shopper, order_for
):
    order, payment = _paid_order(client, db, bank, shopper, order_for, NO_ANSWER)
    before = len(bank.transport.calls)
    refund = _refund_all(payment)
    assert bank.transport.calls[before:] == [("POST", "/api/refunds")]  # a new one: just sent
    assert refund.status is RefundStatus.UNKNOWN
    assert _invoices(db, DocumentKind.CREDIT_NOTE) == 0
    _back_office_shows(client, order, "Da verificare: esito sconosciuto")
    calls = len(bank.transport.calls)
    done = flows.run_refund(refund.id, now_utc())
    sent = [path for method, path in bank.transport.calls[calls:]]
    assert sent == [f"/api/refunds/by-key/{refund.idempotency_key}"]
    assert done.status is RefundStatus.SUCCEEDED
    assert _invoices(db, DocumentKind.CREDIT_NOTE) == 1
    bank_state = _at_bank(bank)
    assert (bank_state["refunds"], bank_state["given"]) == (1, payment.amount_cents)


def test_the_reconciliation_pass_settles_each_lost_answer_and_counts_them(
    client, db, bank, shopper, order_for
):
    _, payment = _paid_order(client, db, bank, shopper, order_for, NO_ANSWER)
    asked = [
        flows.refund(payment, cents, kind=RefundKind.OPERATOR, reason="parte", now=now_utc())
        for cents in (100, 200)
    ]
    assert [refund.status for refund in asked] == [RefundStatus.UNKNOWN] * 2
    card = _bank_card(db, bank, shopper, NO_ANSWER)
    charged = [order_for(shopper), order_for(shopper)]
    for order in charged:
        assert _pay_with(db, order, card).outcome is flows.Outcome.UNKNOWN
    later = now_utc().replace(microsecond=0) + timedelta(minutes=3)
    bank.transport.down = True  # a pass while the bank cannot be asked settles nothing
    assert flows.reconcile(later) == 0
    assert [db.session.get(Refund, r.id).status for r in asked] == [RefundStatus.UNKNOWN] * 2
    bank.transport.down = False
    # two charges and two refunds reach their final state, each counted once
    assert flows.reconcile(later) == 4
    db.session.expire_all()
    assert [db.session.get(Order, o.id).status for o in charged] == [OrderStatus.PAID] * 2
    for refund in asked:
        done = db.session.get(Refund, refund.id)
        assert (done.status, done.completed_at) == (RefundStatus.SUCCEEDED, later)
    assert flows.reconcile(later) == 0  # nothing left open
    bank_state = _at_bank(bank)
    assert (bank_state["charges"], bank_state["refunds"]) == (2, 2)  # none sent twice


def test_refunds_run_at_once_only_for_the_payment_or_held_order_named(
    client, db, bank, shopper, order_for
):
    order, payment = _paid_order(client, db, bank, shopper, order_for, NO_ANSWER)
    refund = flows.refund(payment, 100, kind=RefundKind.OPERATOR, reason="parte", now=now_utc())
    assert refund.status is RefundStatus.UNKNOWN  # left to the reconciliation job
    other = order_for(shopper)
    stranger = Payment(
        order_id=other.id, channel=PaymentChannel.HOSTED_PAGE, amount_cents=1, idempotency_key="s"
    )
    db.session.add(stranger)
    db.session.commit()
    calls = len(bank.transport.calls)
    flows.refund_held(order.id, now_utc())  # this order, but its payment is not held
    payment.status = PaymentStatus.TO_VERIFY  # held now: its refunds run at once...
    db.session.commit()
    flows.execute_open_refunds(stranger, now_utc())  # ...not for another payment
    flows.refund_held(other.id, now_utc())  # ...nor for another order
    assert bank.transport.calls[calls:] == []
    assert db.session.get(Refund, refund.id).status is RefundStatus.UNKNOWN
    at = now_utc().replace(microsecond=0)
    flows.refund_held(order.id, at)
    done = db.session.get(Refund, refund.id)
    assert (done.status, done.completed_at) == (RefundStatus.SUCCEEDED, at)


def test_a_saved_card_the_issuer_wants_authenticated_sends_the_customer_to_3ds(
    client, db, bank, shopper, order_for
):
    card = _bank_card(db, bank, shopper, SCA_CARD)
    order = order_for(shopper)
    told = _pay_with(db, order, card)
    assert told.outcome is flows.Outcome.AUTHENTICATION_REQUIRED
    assert told.payment.order_id == order.id and "3-D Secure" in told.message
    assert told.category == "info"  # not an error: the customer goes on on the bank's page
    assert db.session.get(Order, order.id).status is OrderStatus.PENDING_PAYMENT
    assert _at_bank(bank)["taken"] == 0


# --- renewal charges ------------------------------------------------------------------------

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "differs", "taken"),
    [(WRONG_AMOUNT, "importo", 100), (WRONG_ORDER, "riferimento", 0), (PENDING, "stato", None)],
)
def test_a_renewal_answer_that_does_not_match_is_held_and_never_retried(
    client, db, bank, dummy_customer, catalogue, number, differs, taken
):
    card = _bank_card(db, bank, dummy_customer, number)
    service = make_service(
        dummy_customer, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=card
    )
    window = rome_midnight(rome_date(EXPIRES) - timedelta(days=15)) + timedelta(hours=1)
    report = run_renewals(window)
    assert report.charged == 0
    db.session.expire_all()
    renewal = db.session.scalar(select(Renewal).where(Renewal.service_id == service.id))
    payment = db.session.get(Payment, db.session.scalar(select(func.max(Payment.id))))
    assert payment.status is PaymentStatus.TO_VERIFY and differs in payment.failure_message
    assert payment.order.status is OrderStatus.PENDING_PAYMENT
    assert renewal.status is RenewalStatus.FAILED and renewal.next_attempt_at is None
    # The customer area shows why: what the check found, as the payment records it.
    assert (renewal.failure_code, renewal.failure_reason) == ("to_verify", payment.failure_message)
    assert db.session.get(type(service), service.id).expires_at == EXPIRES  # not extended
    bank_state = _at_bank(bank)
    if taken is None:
        assert bank_state["taken"] == bank_state["given"] == 0
    else:  # refunded at once, in the same pass
        assert bank_state["taken"] == bank_state["given"] == payment.amount_cents + taken
        [refund] = db.session.scalars(select(Refund).where(Refund.payment_id == payment.id))
        assert refund.completed_at == window  # on the pass's clock
    # The retry days come and go: never charged again while an operator checks it.
    for days in (10, 5, 1):
        run_renewals(rome_midnight(rome_date(EXPIRES) - timedelta(days=days)) + timedelta(hours=1))
    assert _at_bank(bank)["charges"] == 1
    _back_office_shows(client, payment.order, differs, row=f"to-verify-{payment.id}")


def test_a_notification_with_another_amount_is_held_too(client, db, bank, shopper, order_for):
    """The bank's signed notification (the customer closed the tab) goes through the check."""
    from webapp.bank.notifier import deliver_due

    order = order_for(shopper)
    response = client.post(f"/ordini/{order.id}/paga")
    BankBrowser(bank).pay(response.headers["Location"], WRONG_AMOUNT)

    def post(url, data, headers, timeout):
        return client.post(urlsplit(url).path, data=data, headers=headers)

    with bank.app_context():
        assert deliver_due(now_utc() + timedelta(minutes=1), post=post) == 1
    payment = _payment(db, order)
    assert payment.status is PaymentStatus.TO_VERIFY
    assert payment.order.status is OrderStatus.PENDING_PAYMENT
    bank_state = _at_bank(bank)
    assert bank_state["taken"] == bank_state["given"] == order.total_cents + 100


def test_an_answer_for_another_merchant_is_held(client, db, bank, shopper, order_for, monkeypatch):
    from webapp.bank import api

    monkeypatch.setattr(api, "_with_merchant", lambda body: {**body, "merchant_id": "altro"})
    order = order_for(shopper)
    _pay_on_bank_page(client, bank, order, EASY_CARD)
    payment = _payment(db, order)
    assert payment.status is PaymentStatus.TO_VERIFY and "esercente" in payment.failure_message
    assert payment.order.status is OrderStatus.PENDING_PAYMENT


def test_a_saved_card_charge_for_less_than_the_order_total_is_held(
    client, db, bank, shopper, order_for
):
    """A charge recorded for another amount than the order's total (e.g. without VAT) is never
    taken as paying the order, even when the bank's answer matches the charge."""
    card = _bank_card(db, bank, shopper, EASY_CARD)
    order = order_for(shopper)
    payment = payments_charges.begin_saved_card_payment(
        order, shopper.id, card.id, "a1", now_utc().date()
    )
    payment.amount_cents = order.net_cents
    db.session.commit()
    payments_charges.execute_card_charge(payment, now_utc())
    db.session.commit()
    payment = _payment(db, order)
    assert payment.status is PaymentStatus.TO_VERIFY and "totale" in payment.failure_message
    assert payment.order.status is OrderStatus.PENDING_PAYMENT
    flows.execute_open_refunds(payment, now_utc())
    bank_state = _at_bank(bank)
    assert bank_state["taken"] == bank_state["given"] == order.net_cents


def test_a_return_while_the_page_is_not_finished_changes_nothing(
    client, db, bank, shopper, order_for
):
    order = order_for(shopper)
    response = client.post(f"/ordini/{order.id}/paga")
    assert response.status_code == 303
    payment = _payment(db, order)
    flows.settle_hosted_payment(payment.gateway_ref, now_utc())  # the card page is still open
    payment = _payment(db, order)
    assert payment.status is PaymentStatus.PENDING and payment.failure_code is None


def test_a_declined_page_keeps_the_banks_decline_code(client, db, bank, shopper, order_for):
    order = order_for(shopper)
    _pay_on_bank_page(client, bank, order, "4000000000000002")
    payment = _payment(db, order)
    assert payment.status is PaymentStatus.DECLINED and payment.failure_code == "card_declined"
    assert payment.completed_at is not None
