"""The database guards of "never twice" on the customer's paths, each tested on its own:
one saved-card charge in flight per order, refunds never above the capture, stuck payments."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.unit.bank_browser import BankBrowser
from tests.unit.test_payments import (  # noqa: F401
    EASY_CARD,
    _pay_now,
    _return,
    _saved_card,
    order_for,
    shopper,  # noqa: F401, F811
)
from webapp.clock import now_utc
from webapp.errors import InvalidChoice, InvalidTransition
from webapp.payments import charges as payments_charges
from webapp.payments import flows, hosted, refunds, stuck
from webapp.payments.models import (
    Payment,
    PaymentChannel,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
)
from webapp.shop.order_models import OrderStatus


def test_a_second_tab_joins_the_card_charge_in_flight(db, bank, client, shopper, order_for):  # noqa: F811
    card = _saved_card(client, db, bank, shopper, order_for)
    order = order_for(shopper)
    today = now_utc().date()
    first = payments_charges.begin_saved_card_payment(order, shopper.id, card.id, "tab-one", today)
    db.session.commit()
    # Another tab, another attempt token, same order: it joins the charge, records none.
    second = payments_charges.begin_saved_card_payment(order, shopper.id, card.id, "tab-two", today)
    assert second.id == first.id
    assert db.session.scalar(select(func.count(Payment.id))) == 1 + 1  # + the card's first order


def test_both_tabs_land_on_the_paid_order_and_the_card_is_charged_once(
    db,
    bank,
    client,
    shopper,  # noqa: F811
    order_for,  # noqa: F811
):
    card = _saved_card(client, db, bank, shopper, order_for)
    order = order_for(shopper)
    now = now_utc()
    one = flows.pay_with_saved_card(order, shopper.id, str(card.id), "tab-one", now)
    two = flows.pay_with_saved_card(order, shopper.id, str(card.id), "tab-two", now)
    assert one.outcome is flows.Outcome.PAID
    assert two.outcome is flows.Outcome.ALREADY_PAID
    charges = db.session.scalars(
        select(Payment).where(Payment.order_id == order.id, Payment.channel == "saved_card")
    ).all()
    assert [p.status for p in charges] == [PaymentStatus.SUCCEEDED]


def _paid_order(db, bank, client, shopper, order_for):  # noqa: F811
    order = order_for(shopper)
    _return(client, BankBrowser(bank).pay(_pay_now(client, order), EASY_CARD))
    db.session.expire_all()
    assert order.status is OrderStatus.PAID
    return order, db.session.scalar(select(Payment).where(Payment.order_id == order.id))


def test_refunds_never_add_up_to_more_than_the_capture(db, bank, client, shopper, order_for):  # noqa: F811
    order, payment = _paid_order(db, bank, client, shopper, order_for)
    now = now_utc()
    part = order.total_cents - 100
    refunds.refund_payment(payment, part, kind=RefundKind.OPERATOR, reason="parziale", now=now)
    db.session.commit()
    with pytest.raises(InvalidChoice, match="al massimo € 1,00"):
        refunds.refund_payment(payment, 101, kind=RefundKind.OPERATOR, reason="troppo", now=now)
    db.session.rollback()
    refunds.refund_payment(payment, 100, kind=RefundKind.OPERATOR, reason="il resto", now=now)
    db.session.commit()
    assert db.session.get(Payment, payment.id).refunded_cents == order.total_cents


def test_the_reservation_is_a_compare_and_set_on_the_row(db, bank, client, shopper, order_for):  # noqa: F811
    """A refund whose session read a stale refunded_cents is still refused by the UPDATE."""
    order, payment = _paid_order(db, bank, client, shopper, order_for)
    with db.engine.begin() as other:  # a concurrent refund took everything meanwhile
        other.execute(
            Payment.__table__.update()
            .where(Payment.__table__.c.id == payment.id)
            .values(refunded_cents=order.total_cents)
        )
    assert payment.refunded_cents == 0  # what this session still believes
    with pytest.raises(InvalidChoice):
        refunds.refund_payment(payment, 1, kind=RefundKind.OPERATOR, reason="x", now=now_utc())


def test_a_refund_the_bank_refuses_gives_its_amount_back(db, bank, client, shopper, order_for):  # noqa: F811
    order, payment = _paid_order(db, bank, client, shopper, order_for)
    now = now_utc()
    refund = refunds.refund_payment(payment, 500, kind=RefundKind.OPERATOR, reason="prova", now=now)
    payment.gateway_ref = "pay_unknown_to_the_bank"  # the bank will refuse: not found
    db.session.commit()
    done = flows.run_refund(refund.id, now)
    assert (done.status, done.failure_code) == (RefundStatus.FAILED, "not_found")
    assert db.session.get(Payment, payment.id).refunded_cents == 0


def test_an_operator_refund_is_executed_once_and_announced_once(
    db,
    bank,
    client,
    shopper,  # noqa: F811
    order_for,  # noqa: F811
):
    order, payment = _paid_order(db, bank, client, shopper, order_for)
    now = now_utc().replace(microsecond=0) - timedelta(seconds=7)  # not the wall clock's
    refund = flows.refund(
        payment, 700, kind=RefundKind.OPERATOR, reason="sconto", now=now, requested_by="op@x.it"
    )
    assert refund.status is RefundStatus.SUCCEEDED and refund.gateway_ref
    # recorded at the caller's time, by the operator who asked
    assert (refund.created_at, refund.requested_by) == (now, "op@x.it")
    again = flows.run_refund(refund.id, now)  # a replay: final already, the bank not asked
    assert again.gateway_ref == refund.gateway_ref
    from webapp.outbox.models import OutboxEmail

    assert (
        db.session.scalar(
            select(func.count(OutboxEmail.id)).where(
                OutboxEmail.dedupe_key == f"refund-{refund.id}"
            )
        )
        == 1
    )


def test_a_refund_a_twin_executed_first_is_read_back_not_run_again(
    db,
    bank,
    client,
    shopper,  # noqa: F811
    order_for,  # noqa: F811
    monkeypatch,
):
    from sqlalchemy import update

    order, payment = _paid_order(db, bank, client, shopper, order_for)
    now = now_utc()
    recorded = refunds.refund_payment(payment, 700, kind=RefundKind.OPERATOR, reason="x", now=now)
    db.session.commit()
    refund_id = recorded.id

    def twin_got_there_first(refund, at):
        # the twin's transaction: the refund done; ours then finds it no longer open
        with db.engine.begin() as twin:
            twin.execute(
                update(Refund).where(Refund.id == refund.id).values(status=RefundStatus.SUCCEEDED)
            )
        raise InvalidTransition("Rimborso già concluso.")

    monkeypatch.setattr(refunds, "execute_refund", twin_got_there_first)
    done = flows.run_refund(refund_id, now)
    assert done.id == refund_id and done.status is RefundStatus.SUCCEEDED  # the twin's outcome


def test_a_card_charge_whose_request_died_before_the_bank_is_released(
    db,
    bank,
    client,
    shopper,  # noqa: F811
    order_for,  # noqa: F811
):
    card = _saved_card(client, db, bank, shopper, order_for)
    order = order_for(shopper)
    payment = payments_charges.begin_saved_card_payment(
        order, shopper.id, card.id, "died", now_utc().date()
    )
    db.session.commit()  # ...and the worker was killed before asking the bank
    later = now_utc() + stuck.CHARGE_STUCK_AFTER + timedelta(minutes=1)
    assert payment.id in stuck.stuck_payments(later)
    assert flows.reconcile(later) == 1
    db.session.expire_all()
    assert payment.status is PaymentStatus.FAILED and payment.failure_code == "abandoned"
    assert order.status is OrderStatus.PENDING_PAYMENT  # payable again, nothing was charged


def test_a_hosted_payment_paid_without_its_return_is_settled_by_the_job(
    db,
    bank,
    client,
    shopper,  # noqa: F811
    order_for,  # noqa: F811
):
    order = order_for(shopper)
    BankBrowser(bank).pay(_pay_now(client, order), EASY_CARD)  # the tab closed: no return
    payment = db.session.scalar(select(Payment).where(Payment.order_id == order.id))
    assert payment.channel is PaymentChannel.HOSTED_PAGE
    assert flows.reconcile(now_utc()) == 0  # too early: the customer may still come back
    later = now_utc() + hosted.HOSTED_PAYMENT_REUSE + timedelta(minutes=1)
    assert flows.reconcile(later) == 1
    db.session.expire_all()
    assert order.status is OrderStatus.PAID


def test_no_refund_row_without_a_capture(db, bank, client, shopper, order_for):  # noqa: F811
    order = order_for(shopper)
    payment = hosted.start_hosted_payment(
        order, return_url="http://localhost/r", notify_url=None, now=now_utc()
    )
    db.session.commit()
    from webapp.errors import InvalidTransition

    with pytest.raises(InvalidTransition):
        refunds.refund_payment(payment, 1, kind=RefundKind.OPERATOR, reason="x", now=now_utc())
    assert db.session.scalar(select(func.count(Refund.id))) == 0


def test_twin_pay_now_clicks_share_one_hosted_payment(
    db,
    bank,
    client,
    shopper,  # noqa: F811
    order_for,  # noqa: F811
    monkeypatch,
):
    order = order_for(shopper)
    urls = dict(return_url="http://shop.test/pagamenti/ritorno", notify_url=None, now=now_utc())
    first = flows.start_hosted_payment(order, **urls)
    assert first.idempotency_key == hosted.hosted_payment_key(order, 1)
    # A twin click that read the order before `first` was committed: nothing to reuse, and
    # the next page would be the first. It inserts the same key; the database refuses it
    # before the bank is asked, and the rerun reuses the page the winner opened.
    real = hosted._hosted_slot
    stale = iter([(None, 1)])
    monkeypatch.setattr(hosted, "_hosted_slot", lambda o, now: next(stale, None) or real(o, now))
    twin = flows.start_hosted_payment(order, **urls)
    assert (twin.id, twin.redirect_url) == (first.id, first.redirect_url)
    assert (
        db.session.scalar(select(func.count(Payment.id)).where(Payment.order_id == order.id)) == 1
    )
    assert bank.transport.calls.count(("POST", "/api/payments")) == 1


def test_a_twin_page_committed_between_the_slot_reads_is_reused_not_doubled(
    db,
    bank,
    client,
    shopper,  # noqa: F811
    order_for,  # noqa: F811
):
    """The twin that wins commits its bank page while this click is between its two reads of
    the order's hosted payments: this click must reuse that page, not open a second one."""
    from sqlalchemy import event, insert

    order = order_for(shopper)
    now = now_utc()
    winner = dict(
        order_id=order.id,
        channel=PaymentChannel.HOSTED_PAGE,
        status=PaymentStatus.PENDING,
        amount_cents=order.total_cents,
        currency=order.currency,
        idempotency_key=hosted.hosted_payment_key(order, 1),
        gateway_ref="pay_winner",
        redirect_url="http://bank.test/pay/pay_winner",
        created_at=now,
        refunded_cents=0,
    )
    reads = []

    def twin_commits_after_the_first_read(_conn, _cursor, statement, *_args):
        if "FROM payment" in statement and not reads:
            reads.append(statement)
            with db.engine.connect() as other:  # the twin's own transaction
                other.execute(insert(Payment.__table__).values(**winner))
                other.commit()

    event.listen(db.engine, "after_cursor_execute", twin_commits_after_the_first_read)
    try:
        urls = dict(return_url="http://shop.test/pagamenti/ritorno", notify_url=None, now=now)
        payment = flows.start_hosted_payment(order, **urls)
    finally:
        event.remove(db.engine, "after_cursor_execute", twin_commits_after_the_first_read)
    assert payment.redirect_url == winner["redirect_url"]
    assert bank.transport.calls.count(("POST", "/api/payments")) == 0  # no second page


def test_a_new_hosted_payment_after_a_declined_one_gets_the_next_key(
    db,
    bank,
    client,
    shopper,  # noqa: F811
    order_for,  # noqa: F811
):
    order = order_for(shopper)
    urls = dict(return_url="http://shop.test/pagamenti/ritorno", notify_url=None, now=now_utc())
    first = flows.start_hosted_payment(order, **urls)
    first.status = PaymentStatus.DECLINED
    db.session.commit()
    second = flows.start_hosted_payment(order, **urls)
    assert second.id != first.id
    assert second.idempotency_key == hosted.hosted_payment_key(order, 2)


def test_a_tab_that_read_the_order_before_its_twin_paid_records_no_second_charge(
    db,
    bank,
    client,
    shopper,  # noqa: F811
    order_for,  # noqa: F811
):
    from sqlalchemy import update

    from webapp.shop.order_models import Order

    card = _saved_card(client, db, bank, shopper, order_for)
    order = order_for(shopper)
    assert order.status is OrderStatus.PENDING_PAYMENT  # this tab read the order unpaid ...
    db.session.execute(  # ... and the other tab's charge settled (and left the in-flight index)
        update(Order)
        .where(Order.id == order.id)
        .values(status=OrderStatus.PAID)
        .execution_options(synchronize_session=False)
    )
    with pytest.raises(InvalidTransition):
        payments_charges.begin_saved_card_payment(
            order, shopper.id, card.id, "tab-two", now_utc().date()
        )
    db.session.rollback()
    charges = db.session.scalar(
        select(func.count(Payment.id)).where(
            Payment.order_id == order.id, Payment.channel == PaymentChannel.SAVED_CARD
        )
    )
    assert charges == 0


def test_a_declined_payment_is_announced_once(db, bank, client, shopper, order_for):  # noqa: F811
    from webapp.payments.events import payment_failed

    seen = []

    def receiver(payment, now, **_):
        seen.append((payment.id, payment.status))

    payment_failed.connect(receiver)
    try:
        order = order_for(shopper)
        back = BankBrowser(bank).pay(_pay_now(client, order), "4000000000000002")
        _return(client, back)
        _return(client, back)  # a replayed return announces nothing more
    finally:
        payment_failed.disconnect(receiver)
    payment = db.session.scalar(select(Payment).where(Payment.order_id == order.id))
    assert seen == [(payment.id, PaymentStatus.DECLINED)]


def test_refunds_refuse_a_bank_transfer_and_nothing_to_give_back(
    db,
    bank,
    client,
    shopper,  # noqa: F811
    order_for,  # noqa: F811
):
    _, payment = _paid_order(db, bank, client, shopper, order_for)
    with pytest.raises(InvalidChoice, match="maggiore di zero"):
        refunds.refund_payment(payment, 0, kind=RefundKind.OPERATOR, reason="x", now=now_utc())
    payment.channel = PaymentChannel.BANK_TRANSFER
    with pytest.raises(InvalidChoice, match="si rimborsa con un bonifico"):
        refunds.refund_payment(payment, 100, kind=RefundKind.OPERATOR, reason="x", now=now_utc())
    db.session.rollback()
    assert db.session.scalar(select(func.count(Refund.id))) == 0
