"""Paying an order on the bank's hosted page (paths 1 and 3): start it, settle what the bank says.

A hosted payment left open is reused for a new click on "Paga ora" (HOSTED_PAYMENT_REUSE),
its idempotency key numbered per order (hosted_payment_key). Settling asks the bank: the
return and the notification are only a reason to ask."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select

from webapp.clock import rome_date
from webapp.errors import NotFound, PaymentError
from webapp.extensions import db
from webapp.payments import settlement, verify
from webapp.payments.cards import save_card
from webapp.payments.events import order_settling
from webapp.payments.gateway import GatewayRefused, GatewayStatus, GatewayUnavailable
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.payments.payable import payable_order
from webapp.shop.order_models import Order

log = logging.getLogger(__name__)
# A hosted payment left open this long is not reused for a new click on "Paga ora".
HOSTED_PAYMENT_REUSE = timedelta(minutes=30)


def _hosted_slot(order: Order, now: datetime) -> tuple[Payment | None, int]:
    """The order's open hosted payment to reuse (if any), and the number of the next one.

    Counted first, then looked for: a twin that commits its page between the two reads is then
    either not counted (this one tries the same key and reruns on the conflict) or found and
    reused. The other way round, a page committed in between was counted but not found, and
    this click opened a second page under the next key.
    """
    started = db.session.scalar(
        select(func.count(Payment.id)).where(
            Payment.order_id == order.id, Payment.channel == PaymentChannel.HOSTED_PAGE
        )
    )
    reusable = db.session.scalar(
        select(Payment)
        .where(
            Payment.order_id == order.id,
            Payment.channel == PaymentChannel.HOSTED_PAGE,
            Payment.status == PaymentStatus.PENDING,
            Payment.amount_cents == order.total_cents,
            Payment.created_at > now - HOSTED_PAYMENT_REUSE,
        )
        .order_by(Payment.id.desc())
    )
    return reusable, started + 1


def hosted_payment_key(order: Order, number: int) -> str:
    """The idempotency key of the order's n-th hosted payment (the order's time keeps it apart
    from an order with the same id in another database that the same bank has seen)."""
    return f"hosted-{order.id}-{order.created_at:%Y%m%d%H%M%S%f}-{number}"


def start_hosted_payment(
    order: Order, *, return_url: str, notify_url: str | None, now: datetime
) -> Payment:
    """Create (or reuse) the bank's hosted payment for the order: paths 1 and 3.

    Guard: the payment's idempotency key (unique) is the order's n-th hosted payment. Twin
    clicks on "Paga ora" read the same n and insert the same key: the database refuses all but
    one (IntegrityError, raised while the winner is still asking the bank), and the caller's
    rerun then reuses the winner's page. So the twins share one bank page, and the bank (which
    honours the key too) never opens a second one.
    """
    payable_order(order, rome_date(now))
    reusable, number = _hosted_slot(order, now)
    if reusable is not None and reusable.redirect_url:
        # A double click or a reload of "Paga ora" goes back to the same bank page.
        return reusable
    payment = Payment(
        order_id=order.id,
        channel=PaymentChannel.HOSTED_PAGE,
        amount_cents=order.total_cents,
        currency=order.currency,
        idempotency_key=hosted_payment_key(order, number),
        created_at=now,
    )
    db.session.add(payment)
    db.session.flush()
    try:
        hosted = settlement.gateway().create_payment(
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            order_ref=settlement.order_ref(order),
            description=f"Ordine {order.number}",
            return_url=return_url,
            notify_url=notify_url,
            save_card=True,
            idempotency_key=payment.idempotency_key,
        )
    except (GatewayUnavailable, GatewayRefused) as exc:
        log.warning("bank refused/unreachable creating payment for order %s: %s", order.id, exc)
        raise PaymentError(
            _(
                "Il servizio di pagamento non è raggiungibile in questo momento. "
                "Riprova tra qualche minuto."
            )
        ) from exc
    payment.gateway_ref = hosted.payment_id
    payment.redirect_url = hosted.redirect_url
    db.session.flush()
    return payment


def payment_by_ref(gateway_ref: str) -> Payment:
    payment = db.session.scalar(select(Payment).where(Payment.gateway_ref == gateway_ref))
    if payment is None:
        raise NotFound(_("Pagamento non trovato."))
    return payment


def settle_hosted_payment(gateway_ref: str, now: datetime) -> Payment:
    """Bring a hosted payment in line with what the bank says (return URL and notification).

    Replays are harmless: a payment already final is returned untouched.
    Raises GatewayUnavailable when the bank cannot be asked (nothing is changed then).
    """
    payment = payment_by_ref(gateway_ref)
    if payment.status not in settlement.PAYMENT_TRANSITIONS:
        return payment
    info = settlement.gateway().get_payment(gateway_ref)
    order = payment.order
    if info.status in verify.NOT_YET and info.payment_id == gateway_ref:
        return payment  # the customer is still on the bank's page
    order_settling.send(order)  # before this transaction writes anything (events)
    found = verify.payment_differences(payment, settlement.order_ref(order), info)
    if found:  # nothing is paid; money taken is refunded (flows, after the commit)
        verify.hold(
            payment,
            found,
            taken_cents=verify.money_taken(info.status, info.amount_cents),
            currency=info.currency,
            now=now,
            allowed=settlement.PAYMENT_TRANSITIONS,
        )
        return payment
    if info.status is GatewayStatus.AUTHORISED:
        card = save_card(order.customer_id, info.card) if info.card else None
        settlement.succeed_payment(payment, card, now)
    elif info.status in (GatewayStatus.DECLINED, GatewayStatus.FAILED):
        status = (
            PaymentStatus.DECLINED
            if info.status is GatewayStatus.DECLINED
            else PaymentStatus.FAILED
        )
        settlement.fail_payment(
            payment,
            status,
            info.decline_code,
            info.decline_message or _("Pagamento non riuscito."),
            now,
        )
    return payment
