"""One state of an order after its payment, refunds and withdrawal (webapp.payments.states):
which refunds count, the boundary of a full refund, and the day each label names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from webapp.payments.models import Refund, RefundKind, RefundStatus
from webapp.payments.states import order_state
from webapp.shop.order_models import Order, OrderStatus

PAID_AT = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # 21/11/2026 in Italy
TOTAL = 12_200


def _order(status: OrderStatus = OrderStatus.PAID, paid_at: datetime | None = PAID_AT) -> Order:
    return Order(status=status, total_cents=TOTAL, paid_at=paid_at)


def _refund(
    cents: int,
    kind: RefundKind = RefundKind.OPERATOR,
    status: RefundStatus = RefundStatus.SUCCEEDED,
    created: datetime = datetime(2026, 12, 1, 10, tzinfo=UTC),
    completed: datetime | None = None,
) -> Refund:
    return Refund(
        amount_cents=cents, kind=kind, status=status, created_at=created, completed_at=completed
    )


@pytest.fixture(autouse=True)
def _context(app):
    with app.test_request_context():  # the labels are translated
        yield


def test_a_paid_order_names_its_payment_day_in_italy():
    state = order_state(_order(), [])
    assert (state.code, state.label, state.refunded_cents) == ("paid", "Pagato il 21/11/2026", 0)
    assert not state.closed


def test_pending_and_cancelled_orders_are_said_so_whatever_their_refunds():
    assert order_state(_order(OrderStatus.PENDING_PAYMENT, None), []).code == "pending"
    cancelled = order_state(_order(OrderStatus.CANCELLED, None), [_refund(TOTAL)])
    assert (cancelled.code, cancelled.label, cancelled.closed) == ("cancelled", "Annullato", True)


def test_only_succeeded_refunds_count():
    others = [
        _refund(TOTAL, status=status)
        for status in RefundStatus
        if status is not RefundStatus.SUCCEEDED
    ]
    assert order_state(_order(), others).code == "paid"


def test_a_refund_of_part_of_the_total_is_a_partial_refund_with_its_amount():
    state = order_state(_order(), [_refund(1_000), _refund(TOTAL - 1_001)])
    assert (state.code, state.label) == ("partly_refunded", "Rimborsato in parte (€ 121,99)")
    assert state.refunded_cents == TOTAL - 1 and not state.closed


def test_refunds_adding_up_to_the_total_exactly_are_a_full_refund_on_the_last_ones_day():
    first = _refund(2_200, completed=datetime(2026, 12, 2, 9, tzinfo=UTC))
    last = _refund(TOTAL - 2_200, completed=datetime(2026, 12, 4, 23, 30, tzinfo=UTC))
    state = order_state(_order(), [first, last])
    assert (state.code, state.label) == ("refunded", "Rimborsato il 05/12/2026")
    assert state.refunded_cents == TOTAL and state.closed


def test_a_refund_not_completed_yet_is_dated_by_its_creation():
    state = order_state(_order(), [_refund(TOTAL, created=datetime(2026, 12, 3, 8, tzinfo=UTC))])
    assert state.label == "Rimborsato il 03/12/2026"


@pytest.mark.parametrize(
    ("completed", "day"),
    [(datetime(2026, 11, 25, 23, 15, tzinfo=UTC), "26/11/2026"), (None, "24/11/2026")],
)
def test_a_withdrawal_cancels_the_order_on_its_day(completed, day):
    withdrawal = _refund(
        TOTAL,
        kind=RefundKind.WITHDRAWAL,
        created=datetime(2026, 11, 24, 12, tzinfo=UTC),
        completed=completed,
    )
    state = order_state(_order(), [_refund(100), withdrawal])
    assert (state.code, state.label) == ("withdrawn", f"Annullato: recesso del {day}")
    assert state.refunded_cents == TOTAL + 100 and state.closed
