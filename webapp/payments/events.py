"""What payments announce to the packages above them (blinker signals, as Flask's own).

Payments sits below renewals, invoicing, notify and the back office: it never imports them.
When money moves it sends one of these signals, inside the transaction that moved it, and the
subscribers add their rows (services, invoices, e-mails) to that same transaction: a rollback
undoes them all, a commit keeps them all. A subscriber must not commit.

Each signal's sender is the object named below; the keyword arguments are always the same.
"""

from __future__ import annotations

from typing import NamedTuple

from blinker import Namespace

_signals = Namespace()

#: An order became paid. sender: the Order; kwargs: payment (Payment), card (SavedCard | None,
#: the card that paid and that renewals will use), now (datetime).
order_paid = _signals.signal("order-paid")

#: Money is about to move on an order's record: it becomes paid, or a refund of it succeeded. Sent
#: in that transaction before anything of it is written. sender: the Order; kwargs: none.
#: Receivers lock, in id order, the rows of theirs that `order_paid`'s or `payment_refunded`'s
#: receivers will change (renewals: the services). Every paying or refunding transaction thus
#: takes its locks in one order: those rows first, then the order, the payment, the refund and
#: the invoice counter, as the renewal engine's set-based settlement does. Without it a renewal
#: by hand (invoice counter, then service) and the automatic pass of the same service (service,
#: then invoice counter) deadlocked on PostgreSQL.
order_settling = _signals.signal("order-settling")

#: Many orders became paid at once, by a set-based settlement (the renewal engine's batches).
#: sender: the name of the settling package; kwargs: paid (list[PaidOrder]: plain ids, no loaded
#: objects), now. Sent inside the paying transaction: a subscriber adds its rows with set-based
#: statements and must be idempotent per order (an order settled per row after a failed batch
#: gets `order_paid` instead). The settlement also sends `order_paid` per order, with
#: batch_settled=True, but only when a receiver of it is not marked `@handles_orders_paid`.
orders_paid = _signals.signal("orders-paid")

#: A payment is about to be started for an order (before the bank is asked). sender: the Order;
#: kwargs: today (date, in Italy). A receiver that finds the order no longer payable (e.g. a
#: renewal line whose period another payment has already renewed) raises a DomainError with the
#: reason: nothing is recorded and the bank is not asked.
order_payable = _signals.signal("order-payable")

#: A payment attempt ended without money taken. sender: the Payment; kwargs: now.
payment_failed = _signals.signal("payment-failed")

#: Money went back to the customer. sender: the Refund; kwargs: payment (Payment), now.
payment_refunded = _signals.signal("payment-refunded")

#: The bank captured money for an order that another payment had already paid. sender: the
#: Payment (status DUPLICATE); kwargs: now. Payments itself records the refund.
duplicate_captured = _signals.signal("duplicate-captured")


class PaidOrder(NamedTuple):
    """One order of `orders_paid`, with the payment that paid it."""

    order_id: int
    payment_id: int


def handles_orders_paid(receiver):
    """Mark an `order_paid` receiver whose package also takes `orders_paid`: a set-based
    settlement need not load its orders to announce them one by one (it ignores batch_settled)."""
    receiver.handles_orders_paid = True
    return receiver
