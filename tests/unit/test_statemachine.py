"""Order and payment transitions: illegal ones raise, a double payment is refused."""

import pytest
from sqlalchemy import update

from webapp.errors import InvalidTransition
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.payments.settlement import PAYMENT_TRANSITIONS
from webapp.shop.models import PaymentMethod
from webapp.shop.order_models import ORDER_TRANSITIONS, Order, OrderStatus
from webapp.statemachine import transition


@pytest.fixture
def order(db, dummy_customer, now):
    order = Order(
        customer_id=dummy_customer.id,
        payment_method=PaymentMethod.CARD,
        subtotal_cents=1000,
        net_cents=1000,
        vat_cents=220,
        total_cents=1220,
        created_at=now,
    )
    db.session.add(order)
    db.session.commit()
    return order


def _payment(db, order, key, channel=PaymentChannel.HOSTED_PAGE):
    payment = Payment(order_id=order.id, channel=channel, amount_cents=1220, idempotency_key=key)
    db.session.add(payment)
    db.session.commit()
    return payment


def test_paid_order_cannot_be_paid_again(db, order, now):
    transition(order, OrderStatus.PAID, ORDER_TRANSITIONS, "già pagato", paid_at=now)
    with pytest.raises(InvalidTransition):
        transition(order, OrderStatus.PAID, ORDER_TRANSITIONS, "già pagato", paid_at=now)
    with pytest.raises(InvalidTransition):
        transition(order, OrderStatus.CANCELLED, ORDER_TRANSITIONS, "già pagato")


def test_final_payment_is_final(db, order):
    payment = _payment(db, order, "k1")
    transition(payment, PaymentStatus.DECLINED, PAYMENT_TRANSITIONS, "concluso")
    for target in PaymentStatus:
        with pytest.raises(InvalidTransition):
            transition(payment, target, PAYMENT_TRANSITIONS, "concluso")


def test_compare_and_set_loses_to_a_concurrent_writer(db, order, now):
    """Another process marked the order paid after we read it: our transition must fail."""
    db.session.execute(
        update(Order)
        .where(Order.id == order.id)
        .values(status=OrderStatus.PAID)
        .execution_options(synchronize_session=False)
    )
    assert order.status is OrderStatus.PENDING_PAYMENT  # our stale view
    with pytest.raises(InvalidTransition):
        transition(order, OrderStatus.PAID, ORDER_TRANSITIONS, "già pagato", paid_at=now)
    assert order.status is OrderStatus.PAID


def test_database_refuses_two_successful_payments_for_one_order(db, order):
    from sqlalchemy.exc import IntegrityError

    first, second = _payment(db, order, "a"), _payment(db, order, "b")
    first.status = PaymentStatus.SUCCEEDED
    db.session.commit()
    second.status = PaymentStatus.SUCCEEDED
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_database_refuses_two_card_charges_in_flight_for_one_order(db, order):
    from sqlalchemy.exc import IntegrityError

    _payment(db, order, "a", PaymentChannel.SAVED_CARD)
    with pytest.raises(IntegrityError):
        _payment(db, order, "b", PaymentChannel.SAVED_CARD)
    db.session.rollback()
    # Once the first is final, a new charge may be recorded (a declined card, then another).
    db.session.execute(update(Payment).values(status=PaymentStatus.DECLINED))
    db.session.commit()
    assert _payment(db, order, "c", PaymentChannel.SAVED_CARD).id
