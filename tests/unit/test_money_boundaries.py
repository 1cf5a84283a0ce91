"""Boundaries and refusals a mutation review found unpinned (issue 29): the withdrawal's 14 days
counted from the payment, the stuck-payment sweep's age limits, the renewal window's first and
last day (the expiry day), periods already ended or extended, removed or foreign cards,
cancelled orders and the duplicate's refund key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.unit.backoffice_world import make_order, paid_by_card
from tests.unit.renewal_fakes import FakeGateway, make_card, make_service
from webapp.clock import ROME, rome_date, rome_midnight
from webapp.errors import DomainError, InvalidTransition, NotFound
from webapp.extensions import db as _db
from webapp.payments import cards, charges, payable, refunds, settlement, stuck
from webapp.payments import hosted as payments_hosted
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus, Refund
from webapp.payments.withdrawal import withdrawal_deadline, withdrawal_refusal
from webapp.renewals.engine import run_renewals
from webapp.renewals.manage import set_card
from webapp.renewals.models import Renewal
from webapp.shop.order_models import OrderKind, OrderStatus

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)  # expiry day 20/01/2027 (Italy)


@pytest.fixture(autouse=True)
def _fake_bank(fake) -> FakeGateway:
    """Every test of this file talks to the fake bank (tests/unit/conftest.py's `fake`)."""
    return fake


@pytest.fixture
def pec(catalogue):
    return catalogue["products"]["PEC-STD"]


def _day(days_from_expiry: int, hour: int = 1) -> datetime:
    """`hour` o'clock (Italy) on the day `days_from_expiry` days from the expiry day."""
    return rome_midnight(rome_date(EXPIRES) + timedelta(days=days_from_expiry)) + timedelta(
        hours=hour
    )


# --- withdrawal: 14 days from the payment (the conclusion of the contract) --------------------


def test_withdrawal_counts_14_days_from_the_payment_not_from_the_order(
    db, catalogue, dummy_customer, now
):
    order, _, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    order.created_at = now - timedelta(days=5)  # confirmed days before it was paid
    db.session.commit()
    assert withdrawal_deadline(order) == order.paid_at + timedelta(days=14)
    # The 14th day, to its last instant: allowed; the 15th day: refused.
    assert withdrawal_refusal(order, dummy_customer, now + timedelta(days=13, hours=23)) is None
    assert withdrawal_refusal(order, dummy_customer, now + timedelta(days=14)) is None
    late = withdrawal_refusal(order, dummy_customer, now + timedelta(days=14, seconds=1))
    assert "scaduto" in late


def test_withdrawal_is_refused_for_renewals_and_unpaid_orders(db, catalogue, dummy_customer, now):
    order, _, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    order.kind = OrderKind.RENEWAL
    assert "solo per un acquisto pagato" in withdrawal_refusal(order, dummy_customer, now)
    unpaid = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    assert unpaid.status is OrderStatus.PENDING_PAYMENT
    assert "solo per un acquisto pagato" in withdrawal_refusal(unpaid, dummy_customer, now)


# --- the stuck-payment sweep ---------------------------------------------------------------


def _card_payment(db, order, status, created_at, channel=PaymentChannel.SAVED_CARD) -> Payment:
    payment = Payment(
        order_id=order.id,
        channel=channel,
        status=status,
        amount_cents=order.total_cents,
        idempotency_key=f"k-{order.id}-{channel}-{status}",
        gateway_ref=f"pay_{order.id}" if channel is PaymentChannel.HOSTED_PAGE else None,
        created_at=created_at,
    )
    db.session.add(payment)
    db.session.commit()
    return payment


def test_the_sweep_leaves_a_charge_in_flight_alone_until_10_minutes(
    db, catalogue, dummy_customer, now
):
    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    charge = _card_payment(db, order, PaymentStatus.PENDING, now - stuck.CHARGE_STUCK_AFTER)
    assert timedelta(minutes=10) == stuck.CHARGE_STUCK_AFTER
    assert stuck.stuck_payments(now - timedelta(seconds=1)) == []  # 9:59 old: still in flight
    assert stuck.stuck_payments(now) == [charge.id]  # 10:00 old: asked about


def test_the_sweep_asks_about_unknown_charges_at_once_and_hosted_pages_after_30_minutes(
    db, catalogue, dummy_customer, now
):
    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    unknown = _card_payment(db, order, PaymentStatus.UNKNOWN, now)
    assert stuck.stuck_payments(now) == [unknown.id]
    other = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    hosted = _card_payment(
        db,
        other,
        PaymentStatus.PENDING,
        now - payments_hosted.HOSTED_PAYMENT_REUSE,
        PaymentChannel.HOSTED_PAGE,
    )
    assert timedelta(minutes=30) == payments_hosted.HOSTED_PAYMENT_REUSE
    assert stuck.stuck_payments(now - timedelta(seconds=1)) == [unknown.id]
    assert stuck.stuck_payments(now) == [unknown.id, hosted.id]


def test_a_pending_charge_the_bank_never_saw_is_released_one_it_saw_is_settled(
    db, catalogue, dummy_customer, now, fake
):
    card = make_card(dummy_customer)
    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    payment = _card_payment(db, order, PaymentStatus.PENDING, now - timedelta(minutes=11))
    payment.saved_card_id = card.id
    db.session.commit()
    stuck.settle_stuck_payment(payment, now)
    assert payment.status is PaymentStatus.FAILED and payment.failure_code == "abandoned"
    assert payment.completed_at == now
    assert fake.calls == []  # asked, never charged


# --- the duplicate's refund ----------------------------------------------------------------


def test_a_duplicates_refund_is_recorded_once(db, catalogue, dummy_customer, now):
    order, payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    payment.status = PaymentStatus.DUPLICATE
    payment.refunded_cents = 100  # an operator gave part of it back already
    db.session.commit()
    first = refunds.refund_duplicate(payment, now)
    again = refunds.refund_duplicate(payment, now)
    assert again.id == first.id and first.idempotency_key == f"duplicate-{payment.id}"
    assert first.amount_cents == payment.amount_cents - 100 and first.created_at == now
    assert db.session.scalar(select(func.count(Refund.id))) == 1


# --- orders and cards that must not be charged -----------------------------------------------


def test_a_cancelled_order_is_never_paid(db, catalogue, dummy_customer, now):
    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    card = make_card(dummy_customer)
    order.status = OrderStatus.CANCELLED
    db.session.commit()
    with pytest.raises(InvalidTransition):
        payable.payable_order(order, now.date())
    with pytest.raises(DomainError):
        charges.begin_saved_card_payment(order, dummy_customer.id, card.id, "a", now.date())
    assert db.session.scalar(select(func.count(Payment.id))) == 0


def test_a_removed_card_is_never_charged(db, catalogue, dummy_customer, pec, now, fake):
    card = make_card(dummy_customer)
    card.removed_at = now
    db.session.commit()
    with pytest.raises(NotFound):
        cards.get_card(card.id, dummy_customer.id)
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    assert run_renewals(_day(-15)).failed == 1
    assert fake.calls == []
    renewal = _db.session.scalar(select(Renewal).where(Renewal.service_id == service.id))
    assert renewal.failure_code == "no_card"


def test_another_customers_card_is_refused_by_the_card_setter(
    db, catalogue, dummy_customer, create_customer, pec, now
):
    other = create_customer("luigi@example.it", "Luigi Verdi")
    foreign = make_card(other, last4="1111")
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=None)
    with pytest.raises(NotFound):
        set_card(service, foreign, now)
    assert service.saved_card_id is None
    mine = make_card(dummy_customer)
    set_card(service, mine, now)
    assert service.saved_card_id == mine.id


# --- renewal window and periods --------------------------------------------------------------


def test_the_window_opens_on_its_first_day_and_the_expiry_day_is_its_last(
    db, dummy_customer, pec, fake
):
    card = make_card(dummy_customer)
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card, auto_renew=False)
    assert run_renewals(_day(-16, hour=23)).opened == 0
    # Auto-renewal turned on late: the expiry day itself still charges (valid through it).
    service.auto_renew = True
    _db.session.commit()
    assert run_renewals(_day(0, hour=0)).charged == 1
    assert len(fake.calls) == 1


def test_no_charge_the_day_after_the_expiry_day(db, dummy_customer, pec, fake):
    card = make_card(dummy_customer)
    make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    assert run_renewals(_day(1, hour=0)).charged == 0
    assert fake.calls == []


def test_a_period_already_ended_is_not_charged_even_if_its_renewal_is_due(
    db, dummy_customer, pec, fake
):
    card = make_card(dummy_customer)
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    fake.mode = "insufficient_funds"
    run_renewals(_day(-15))
    fake.mode = "ok"
    renewal = _db.session.scalar(select(Renewal).where(Renewal.service_id == service.id))
    renewal.next_attempt_at = _day(1, hour=0)  # due only after the expiry day
    _db.session.commit()
    assert run_renewals(_day(1)).charged == 0
    assert len(fake.calls) == 1


def test_an_old_period_is_not_charged_after_the_service_was_extended(db, dummy_customer, pec, fake):
    card = make_card(dummy_customer)
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    fake.mode = "insufficient_funds"
    run_renewals(_day(-15))
    fake.mode = "ok"
    service.expires_at = EXPIRES + timedelta(days=365)  # extended meanwhile (another way)
    _db.session.commit()
    assert run_renewals(_day(-10)).charged == 0
    assert len(fake.calls) == 1


# --- prices in force ---------------------------------------------------------------------------


def test_order_lines_take_the_price_in_force_not_the_base_price(db, catalogue, dummy_customer):
    """A price change in force today: the order line's unit price times its years is its list
    amount (the invoice's PrezzoUnitario x Quantita = PrezzoTotale), never the base price."""
    from webapp.clock import now_utc
    from webapp.shop import cart as shop_cart
    from webapp.shop import checkout
    from webapp.shop.models import PaymentMethod, ProductPrice

    pec = catalogue["products"]["PEC-STD"]
    today = rome_date(now_utc())
    db.session.add(ProductPrice(product_id=pec.id, yearly_price_cents=700, effective_from=today))
    db.session.commit()
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    line = shop_cart.add_product(cart, pec.id)
    shop_cart.set_years(cart, line.id, 2)
    shop_cart.set_payment_method(cart, PaymentMethod.CARD)
    order = checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, now_utc())
    [ordered] = order.lines
    assert pec.yearly_price_cents == 500
    assert ordered.yearly_price_cents == 700
    assert ordered.yearly_price_cents * ordered.years == ordered.list_cents == 1400


# --- refunds: what may be given back, and when an open one is asked about again ----------------


def test_refundable_is_what_a_captured_card_payment_has_left(db, catalogue, dummy_customer, now):
    from webapp.payments.models import PaymentChannel

    order, payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    payment.refunded_cents = 100
    assert refunds.refundable_cents(payment) == payment.amount_cents - 100
    payment.status = PaymentStatus.DUPLICATE
    assert refunds.refundable_cents(payment) == payment.amount_cents - 100
    payment.status = PaymentStatus.TO_VERIFY  # held: its money goes back by its own refund
    assert refunds.refundable_cents(payment) == 0
    payment.status = PaymentStatus.SUCCEEDED
    payment.channel = PaymentChannel.BANK_TRANSFER
    assert refunds.refundable_cents(payment) == 0


@pytest.mark.parametrize("amount", [0, -1, 1.5, "100"])
def test_a_refund_of_nothing_or_of_no_integer_is_refused(
    db, catalogue, dummy_customer, now, amount
):
    from webapp.errors import InvalidChoice
    from webapp.payments.models import RefundKind

    _, payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    with pytest.raises(InvalidChoice):
        refunds.refund_payment(payment, amount, kind=RefundKind.OPERATOR, reason="r", now=now)
    assert payment.refunded_cents == 0


def test_a_refund_records_who_when_why_and_reserves_its_amount(db, catalogue, dummy_customer, now):
    from webapp.payments.models import RefundKind, RefundStatus

    _, payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    payment.currency = "CHF"  # the refund is in the payment's currency, whatever it is
    refund = refunds.refund_payment(
        payment, 1, kind=RefundKind.OPERATOR, reason="x" * 400, now=now, requested_by="op@x.it"
    )
    assert (refund.amount_cents, refund.currency, refund.status) == (1, "CHF", RefundStatus.PENDING)
    assert refund.payment_id == payment.id
    assert refund.reason == "x" * 300 and refund.requested_by == "op@x.it"
    assert refund.created_at == now and refund.kind is RefundKind.OPERATOR
    assert refund.idempotency_key.startswith(f"refund-{payment.id}-")
    assert len(refund.idempotency_key) == len(f"refund-{payment.id}-") + 12
    assert payment.refunded_cents == 1
    rest = refunds.refund_payment(
        payment, payment.amount_cents - 1, kind=RefundKind.OPERATOR, reason="r", now=now
    )
    assert rest.idempotency_key != refund.idempotency_key
    assert payment.refunded_cents == payment.amount_cents


def test_an_open_refund_is_asked_about_again_after_2_minutes(db, catalogue, dummy_customer, now):
    from webapp.payments.models import RefundKind, RefundStatus

    _, payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    refund = refunds.refund_payment(payment, 100, kind=RefundKind.OPERATOR, reason="r", now=now)
    db.session.commit()
    assert timedelta(minutes=2) == refunds.STUCK_AFTER
    assert refunds.open_refunds(now + timedelta(minutes=2) - timedelta(seconds=1)) == []
    assert refunds.open_refunds(now + timedelta(minutes=2)) == [refund.id]
    refund.status = RefundStatus.UNKNOWN
    db.session.commit()
    assert refunds.open_refunds(now + timedelta(minutes=2)) == [refund.id]
    refund.status = RefundStatus.TO_VERIFY  # an operator's now: never asked again by the job
    db.session.commit()
    assert refunds.open_refunds(now + timedelta(days=1)) == []


@pytest.mark.parametrize(
    ("code", "recorded"),
    [("amount_exceeds_captured", None), ("", "refused"), ("x" * 50, "x" * 40)],
)
def test_a_refused_refund_says_why_and_gives_its_reservation_back(
    db, catalogue, dummy_customer, now, fake, monkeypatch, code, recorded
):
    from webapp.payments.gateway import GatewayRefused
    from webapp.payments.models import RefundKind, RefundStatus

    def refuse(*args, **kwargs):
        raise GatewayRefused(code, 422)

    monkeypatch.setattr(fake, "refund", refuse)
    _, payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    refund = refunds.refund_payment(payment, 100, kind=RefundKind.OPERATOR, reason="r", now=now)
    db.session.commit()
    refunds.execute_refund(refund, now)
    assert refund.status is RefundStatus.FAILED and refund.completed_at == now
    assert refund.failure_code == (recorded or code)
    assert refund.failure_message == "La banca ha rifiutato il rimborso."
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Payment, payment.id).refunded_cents == 0


def test_the_refunds_of_orders_are_each_orders_own_in_order(db, catalogue, dummy_customer, now):
    from webapp.payments.models import RefundKind

    pec = catalogue["products"]["PEC-STD"]
    first, first_payment, _ = paid_by_card(dummy_customer, pec, now)
    second, second_payment, _ = paid_by_card(dummy_customer, pec, now, last4="1111")
    made = [
        refunds.refund_payment(p, 10, kind=RefundKind.OPERATOR, reason="r", now=now)
        for p in (second_payment, first_payment, second_payment)
    ]
    db.session.commit()
    found = refunds.refunds_of_orders([first.id, second.id])
    assert [r.id for r in found[first.id]] == [made[1].id]
    assert [r.id for r in found[second.id]] == [made[0].id, made[2].id]
    assert refunds.refunds_of_orders([]) == {}


def test_a_pending_charge_the_bank_saw_is_settled_by_asking_not_charging(
    db, catalogue, dummy_customer, now, fake
):
    card = make_card(dummy_customer)
    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    payment = _card_payment(db, order, PaymentStatus.PENDING, now - timedelta(minutes=11))
    payment.saved_card_id = card.id
    db.session.commit()
    fake.charge_token(  # the request reached the bank, then the shop's worker died
        token=card.gateway_token,
        amount_cents=payment.amount_cents,
        currency="EUR",
        order_ref=settlement.order_ref(order),
        description="x",
        initiator="customer",
        idempotency_key=payment.idempotency_key,
    )
    stuck.settle_stuck_payment(payment, now)
    assert payment.status is PaymentStatus.SUCCEEDED
    assert order.status is OrderStatus.PAID
    assert len(fake.calls) == 1 and fake.finds == [payment.idempotency_key] * len(fake.finds)


def test_payable_orders_are_the_customers_own_card_purchases_newest_first(
    db, catalogue, dummy_customer, create_customer, now
):
    pec = catalogue["products"]["PEC-STD"]
    other = create_customer("luigi@example.it", "Luigi Verdi")
    older = make_order(dummy_customer, pec, "card", now)
    newer = make_order(dummy_customer, pec, "card", now)
    make_order(other, pec, "card", now)
    make_order(dummy_customer, pec, "bank_transfer", now)
    paid, _, _ = paid_by_card(dummy_customer, pec, now)
    renewal = make_order(dummy_customer, pec, "card", now)
    renewal.kind = OrderKind.RENEWAL
    db.session.commit()
    assert [o.id for o in payable.payable_orders(dummy_customer.id)] == [newer.id, older.id]


# --- withdrawal: which payment, and what it records -------------------------------------------


def test_withdrawal_refunds_this_orders_paying_payment_in_full(db, catalogue, dummy_customer, now):
    from webapp.payments.models import RefundKind
    from webapp.payments.withdrawal import deadline_label, paying_payment, withdraw

    pec = catalogue["products"]["PEC-STD"]
    first, first_payment, _ = paid_by_card(dummy_customer, pec, now)
    order, payment, _ = paid_by_card(dummy_customer, pec, now, last4="1111")
    declined = Payment(
        order_id=order.id,
        channel=PaymentChannel.SAVED_CARD,
        status=PaymentStatus.DECLINED,
        amount_cents=order.total_cents,
        idempotency_key="declined-first",
    )
    db.session.add(declined)
    db.session.commit()
    assert paying_payment(order).id == payment.id
    assert paying_payment(first).id == first_payment.id
    refund = withdraw(order, dummy_customer, now)
    assert (refund.payment_id, refund.amount_cents) == (payment.id, payment.amount_cents)
    assert refund.kind is RefundKind.WITHDRAWAL and refund.requested_by is None
    assert refund.reason == "Diritto di recesso esercitato dal cliente"
    assert refund.created_at == now
    deadline = (order.paid_at + timedelta(days=14)).astimezone(ROME)
    assert deadline_label(order) == f"{deadline:%d/%m/%Y}"


def test_withdrawal_is_refused_with_its_reason(db, catalogue, dummy_customer, now):
    from webapp.payments.withdrawal import WithdrawalRefused, deadline_label, withdraw

    pec = catalogue["products"]["PEC-STD"]
    order, payment, _ = paid_by_card(dummy_customer, pec, now)
    payment.channel = PaymentChannel.BANK_TRANSFER
    db.session.commit()
    assert "bonifico" in withdrawal_refusal(order, dummy_customer, now)
    with pytest.raises(WithdrawalRefused, match="bonifico"):
        withdraw(order, dummy_customer, now)
    assert db.session.scalar(select(func.count(Refund.id))) == 0
    unpaid = make_order(dummy_customer, pec, "card", now)
    assert deadline_label(unpaid) == ""


def test_a_decline_keeps_the_banks_code_and_message_within_their_columns(
    db, catalogue, dummy_customer, now
):
    from webapp.payments.gateway import ChargeResult, GatewayStatus

    card = make_card(dummy_customer)
    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    payment = _card_payment(db, order, PaymentStatus.PENDING, now)
    payment.saved_card_id = card.id
    answer = ChargeResult(
        "ch_d",
        GatewayStatus.DECLINED,
        payment.amount_cents,
        "EUR",
        settlement.order_ref(order),
        "c" * 50,
        "m" * 400,
        merchant_id="pec-shop",
    )
    charges.apply_charge_result(payment, answer, now)
    assert payment.status is PaymentStatus.DECLINED and payment.completed_at == now
    assert (payment.failure_code, payment.failure_message) == ("c" * 40, "m" * 300)


def test_usable_cards_are_the_customers_own_unexpired_ones(
    db, dummy_customer, create_customer, now
):
    from datetime import date

    mine = make_card(dummy_customer, exp_month=12, exp_year=2030)
    make_card(dummy_customer, exp_month=1, exp_year=2020, last4="0000")
    make_card(create_customer("luigi@example.it", "Luigi Verdi"), last4="1111")
    assert [c.id for c in cards.usable_cards(dummy_customer.id, date(2027, 1, 1))] == [mine.id]


# --- the saved-card charge: which card, which order, a refusal ---------------------------------


def test_get_card_finds_only_a_real_id_of_the_customers_own(db, dummy_customer):
    card = make_card(dummy_customer)
    assert cards.get_card(str(card.id), dummy_customer.id).id == card.id
    for bad in ("abc", None, 0, -card.id):
        with pytest.raises(NotFound):
            cards.get_card(bad, dummy_customer.id)


def test_get_card_takes_every_id_the_column_holds_and_nothing_beyond(db, dummy_customer):
    """The guard before the database is asked: the column's last id is found, 0 and anything
    past it are "not found" (PostgreSQL would overflow on them; SQLite would find a row)."""
    from sqlalchemy import update

    from webapp.dbtypes import MAX_ID
    from webapp.payments.models import SavedCard

    card = make_card(dummy_customer)
    ids = [MAX_ID, 0]
    if _db.engine.dialect.name == "sqlite":  # PostgreSQL's column cannot hold the next one
        ids.append(MAX_ID + 1)
    for number in ids:
        _db.session.execute(update(SavedCard).where(SavedCard.id == card.id).values(id=number))
        _db.session.commit()
        card = _db.session.get(SavedCard, number)
        if number == MAX_ID:
            assert cards.get_card(number, dummy_customer.id) is card
        else:
            with pytest.raises(NotFound):
                cards.get_card(number, dummy_customer.id)
    with pytest.raises(NotFound):  # never asked: no overflow on PostgreSQL either
        cards.get_card(str(MAX_ID + 1), dummy_customer.id)


def test_a_saved_card_charge_is_this_orders_own(db, catalogue, dummy_customer, now):
    """Another order of the same customer with its own charge in flight: this order gets its
    own charge (never joins the other's), and its compare-and-set touches only this order."""
    pec = catalogue["products"]["PEC-STD"]
    card = make_card(dummy_customer)
    other = make_order(dummy_customer, pec, "card", now)
    in_flight = charges.begin_saved_card_payment(other, dummy_customer.id, card.id, "o", now.date())
    db.session.commit()
    order = make_order(dummy_customer, pec, "card", now)
    payment = charges.begin_saved_card_payment(
        order, dummy_customer.id, card.id, "a" * 100, now.date()
    )
    assert payment.id != in_flight.id and payment.order_id == order.id
    assert len(payment.idempotency_key) == 80


def test_a_charge_the_bank_refuses_fails_with_its_code(
    db, catalogue, dummy_customer, now, fake, monkeypatch
):
    from webapp.payments.gateway import GatewayRefused

    def refuse(**kwargs):
        raise GatewayRefused("unknown_token", 404)

    monkeypatch.setattr(fake, "charge_token", refuse)
    card = make_card(dummy_customer)
    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    payment = charges.begin_saved_card_payment(order, dummy_customer.id, card.id, "a", now.date())
    db.session.commit()
    charges.execute_card_charge(payment, now)
    assert payment.status is PaymentStatus.FAILED and payment.failure_code == "unknown_token"
    assert payment.completed_at == now
    assert order.status is OrderStatus.PENDING_PAYMENT


# --- the hosted page: which open payment a new click reuses -----------------------------------


def test_pay_now_reuses_only_this_orders_open_page_for_its_total_for_30_minutes(
    db, catalogue, dummy_customer, now
):
    pec = catalogue["products"]["PEC-STD"]
    order = make_order(dummy_customer, pec, "card", now)
    other = make_order(dummy_customer, pec, "card", now)
    db.session.commit()
    first = payments_hosted.start_hosted_payment(
        order, return_url="http://x/r", notify_url=None, now=now
    )
    assert first.created_at == now and first.currency == "EUR"
    assert first.idempotency_key == payments_hosted.hosted_payment_key(order, 1)
    # Another order never reuses it, and counts its own pages.
    theirs = payments_hosted.start_hosted_payment(
        other, return_url="http://x/r", notify_url=None, now=now
    )
    assert theirs.id != first.id and theirs.idempotency_key == payments_hosted.hosted_payment_key(
        other, 1
    )
    # 29:59 later the same page; 30:00 later a new one (the order's second).
    later = now + payments_hosted.HOSTED_PAYMENT_REUSE
    same = payments_hosted.start_hosted_payment(
        order, return_url="http://x/r", notify_url=None, now=later - timedelta(seconds=1)
    )
    assert same.id == first.id
    fresh = payments_hosted.start_hosted_payment(
        order, return_url="http://x/r", notify_url=None, now=later
    )
    assert fresh.id != first.id and fresh.idempotency_key == payments_hosted.hosted_payment_key(
        order, 2
    )
    # A total changed since: never the page opened for the old amount.
    order.total_cents += 100
    changed = payments_hosted.start_hosted_payment(
        order, return_url="http://x/r", notify_url=None, now=later
    )
    assert changed.id != fresh.id and changed.amount_cents == order.total_cents


def test_a_capture_records_its_time_and_a_second_one_is_a_duplicate_with_its_time(
    db, catalogue, dummy_customer, now
):
    order, payment, card = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    assert payment.completed_at == now and order.paid_at == now
    second = _card_payment(db, order, PaymentStatus.PENDING, now)
    settlement.succeed_payment(second, card, now + timedelta(minutes=1))
    assert second.status is PaymentStatus.DUPLICATE
    assert second.completed_at == now + timedelta(minutes=1)
    assert second.saved_card_id == card.id
    refund = db.session.scalar(select(Refund).where(Refund.payment_id == second.id))
    assert refund.created_at == now + timedelta(minutes=1)


def test_the_paying_payment_is_the_successful_one_not_an_earlier_attempt(
    db, catalogue, dummy_customer, now
):
    from webapp.payments.withdrawal import paying_payment

    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    _card_payment(db, order, PaymentStatus.DECLINED, now)
    card = make_card(dummy_customer)
    paid = _card_payment(db, order, PaymentStatus.PENDING, now, PaymentChannel.HOSTED_PAGE)
    settlement.succeed_payment(paid, card, now)
    assert paying_payment(order).id == paid.id


def test_procedi_never_joins_a_bank_page_in_flight(db, catalogue, dummy_customer, now):
    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    card = make_card(dummy_customer)
    db.session.commit()
    page = payments_hosted.start_hosted_payment(
        order, return_url="http://x/r", notify_url=None, now=now
    )
    charge = charges.begin_saved_card_payment(order, dummy_customer.id, card.id, "a", now.date())
    assert charge.id != page.id and charge.channel is PaymentChannel.SAVED_CARD
    # Nor does "Paga ora" take the card charge in flight for its page: it goes back to its own.
    again = payments_hosted.start_hosted_payment(
        order, return_url="http://x/r", notify_url=None, now=now
    )
    assert again.id == page.id


def test_money_taken_in_another_currency_is_refunded_in_that_currency(
    db, catalogue, dummy_customer, now
):
    from webapp.payments.gateway import ChargeResult, GatewayStatus

    card = make_card(dummy_customer)
    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "card", now)
    payment = _card_payment(db, order, PaymentStatus.PENDING, now)
    payment.saved_card_id = card.id
    answer = ChargeResult(
        "ch_usd",
        GatewayStatus.SUCCEEDED,
        payment.amount_cents,
        "USD",
        settlement.order_ref(order),
        None,
        None,
        merchant_id="pec-shop",
    )
    charges.apply_charge_result(payment, answer, now)
    assert payment.status is PaymentStatus.TO_VERIFY and "valuta" in payment.failure_message
    refund = db.session.scalar(select(Refund).where(Refund.payment_id == payment.id))
    assert (refund.currency, refund.amount_cents) == ("USD", payment.amount_cents)
    assert refund.created_at == now and payment.gateway_ref == "ch_usd"
