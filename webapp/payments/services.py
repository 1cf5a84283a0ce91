"""Paying orders: hosted page (paths 1 and 3), saved card (path 2), and settling results.

The rule that keeps money right: nothing is marked paid on the browser's word. A return
or a notification only makes the shop ask the bank, check amount and currency, and then
move payment and order with compare-and-set transitions (see webapp.statemachine).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, update

from webapp.clock import rome_date
from webapp.dbtypes import MAX_ID
from webapp.errors import InvalidChoice, InvalidTransition, NotFound, PaymentError
from webapp.extensions import db
from webapp.payments import verify
from webapp.payments.events import (
    duplicate_captured,
    order_paid,
    order_payable,
    order_settling,
    payment_failed,
)
from webapp.payments.gateway import (
    CardDetails,
    ChargeResult,
    Gateway,
    GatewayRefused,
    GatewayStatus,
    GatewayUnavailable,
    find_or_send,
)
from webapp.payments.models import (
    Payment,
    PaymentChannel,
    PaymentStatus,
    SavedCard,
)
from webapp.shop.models import PaymentMethod
from webapp.shop.order_models import ORDER_TRANSITIONS, Order, OrderKind, OrderStatus
from webapp.statemachine import transition

log = logging.getLogger(__name__)

PAYMENT_TRANSITIONS = {
    PaymentStatus.PENDING: {
        PaymentStatus.SUCCEEDED,
        PaymentStatus.DUPLICATE,
        PaymentStatus.DECLINED,
        PaymentStatus.FAILED,
        PaymentStatus.UNKNOWN,
        PaymentStatus.TO_VERIFY,
    },
    PaymentStatus.UNKNOWN: {
        PaymentStatus.SUCCEEDED,
        PaymentStatus.DUPLICATE,
        PaymentStatus.DECLINED,
        PaymentStatus.FAILED,
        PaymentStatus.TO_VERIFY,
    },
}
# A hosted payment left open this long is not reused for a new click on "Paga ora".
HOSTED_PAYMENT_REUSE = timedelta(minutes=30)


def gateway() -> Gateway:
    return current_app.extensions["gateway"]


def order_ref(order: Order) -> str:
    return f"ORD-{order.id}"


# --- cards ------------------------------------------------------------------------------------


def usable_cards(customer_id: int, today) -> list[SavedCard]:
    return [c for c in list_cards(customer_id) if not c.is_expired(today)]


def list_cards(customer_id: int) -> list[SavedCard]:
    """The customer's saved cards (removed ones excluded), newest first."""
    return list(
        db.session.scalars(
            select(SavedCard)
            .where(SavedCard.customer_id == customer_id, SavedCard.removed_at.is_(None))
            .order_by(SavedCard.id.desc())
        )
    )


def get_card(card_id: int | str, customer_id: int) -> SavedCard:
    """One of the customer's own saved cards; anything else is not found."""
    try:
        number = int(card_id)
    except (TypeError, ValueError):
        number = 0
    # Out of the id column's range is simply unknown (the database would overflow).
    card = db.session.get(SavedCard, number) if 0 < number <= MAX_ID else None
    if card is None or card.customer_id != customer_id or card.removed_at is not None:
        raise NotFound(_("Carta non trovata."))
    return card


def save_card(customer_id: int, details: CardDetails) -> SavedCard:
    """Keep the bank's token on the portal (once per token)."""
    card = db.session.scalar(select(SavedCard).where(SavedCard.gateway_token == details.token))
    if card is not None:
        if card.customer_id != customer_id:
            raise InvalidTransition(_("Token di carta non valido."))
        return card
    card = SavedCard(
        customer_id=customer_id,
        gateway_token=details.token,
        brand=details.brand,
        last4=details.last4,
        exp_month=details.exp_month,
        exp_year=details.exp_year,
        holder=details.holder,
    )
    db.session.add(card)
    db.session.flush()
    return card


# --- starting payments ------------------------------------------------------------------------


def payable_order(order: Order, today: date) -> None:
    """Refuse to start a payment for an order that cannot be paid by card now."""
    if order.status is OrderStatus.PAID:
        raise InvalidTransition(_("L'ordine è già stato pagato."))
    if order.status is not OrderStatus.PENDING_PAYMENT:
        raise InvalidTransition(_("L'ordine non può essere pagato."))
    if order.kind is OrderKind.RENEWAL:
        # Only the renewal engine charges it: a second payer could charge the period twice.
        raise InvalidTransition(
            _(
                "Questo rinnovo viene addebitato automaticamente: "
                "per cambiare carta vai all'area clienti."
            )
        )
    if order.payment_method is not PaymentMethod.CARD:
        raise InvalidChoice(_("Questo ordine si paga con bonifico bancario."))
    order_payable.send(order, today=today)  # the packages above may refuse, with the reason


def _hosted_slot(order: Order, now: datetime) -> tuple[Payment | None, int]:
    """The order's open hosted payment to reuse (if any), and the number of the next one."""
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
    started = db.session.scalar(
        select(func.count(Payment.id)).where(
            Payment.order_id == order.id, Payment.channel == PaymentChannel.HOSTED_PAGE
        )
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
        hosted = gateway().create_payment(
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            order_ref=order_ref(order),
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


def payable_orders(customer_id: int) -> list[Order]:
    """The customer's purchases still waiting for a card payment, newest first."""
    return list(
        db.session.scalars(
            select(Order)
            .where(
                Order.customer_id == customer_id,
                Order.status == OrderStatus.PENDING_PAYMENT,
                Order.kind == OrderKind.PURCHASE,
                Order.payment_method == PaymentMethod.CARD,
            )
            .order_by(Order.id.desc())
        )
    )


def begin_saved_card_payment(
    order: Order, customer_id: int, card_id: int | str, attempt: str, today
) -> Payment:
    """Record the intent to charge a saved card (path 2); the caller commits before charging.

    Guard: a partial unique index allows one saved-card charge in flight per order. A twin (the
    same form posted twice, or Procedi in a second tab) joins the charge that exists: executing
    it again asks the bank with the same idempotency key, so the card is charged once. A twin
    that lost the insert gets IntegrityError; the view reruns this and then finds the winner's.
    """
    key = f"card-{order.id}-{attempt}"[:80]
    joined = db.session.scalar(
        select(Payment)
        .where(
            Payment.order_id == order.id,
            Payment.channel == PaymentChannel.SAVED_CARD,
            (Payment.idempotency_key == key)
            | Payment.status.in_([PaymentStatus.PENDING, PaymentStatus.UNKNOWN]),
        )
        .order_by(Payment.id.desc())
    )
    if joined is not None:
        return joined  # this very form again (whatever its outcome), or the charge in flight
    payable_order(order, today)
    card = get_card(card_id, customer_id)
    if card.is_expired(today):
        raise InvalidChoice(_("La carta %(card)s è scaduta: scegline un'altra.", card=card.masked))
    payment = Payment(
        order_id=order.id,
        channel=PaymentChannel.SAVED_CARD,
        amount_cents=order.total_cents,
        currency=order.currency,
        idempotency_key=key,
        saved_card_id=card.id,
    )
    db.session.add(payment)
    db.session.flush()
    # Guard: a compare-and-set that the order is still unpaid, once this charge is in. The
    # order read above may be stale: a twin's charge may have settled (and left the in-flight
    # index) since. Its settlement holds the order row until it commits, so this UPDATE waits
    # for it and then matches nothing; the caller rolls back and reports the order paid.
    unpaid = db.session.execute(
        update(Order)
        .where(Order.id == order.id, Order.status == OrderStatus.PENDING_PAYMENT)
        .values(status=OrderStatus.PENDING_PAYMENT)
        .execution_options(synchronize_session=False)
    ).rowcount
    if unpaid != 1:
        raise InvalidTransition(_("L'ordine è già stato pagato."))
    return payment


def execute_card_charge(payment: Payment, now: datetime, initiator: str = "customer") -> Payment:
    """Charge the payment's saved card at the bank and settle it; safe to call again."""
    if payment.status is not PaymentStatus.PENDING and payment.status is not PaymentStatus.UNKNOWN:
        return payment
    order = payment.order
    try:
        # UNKNOWN: we asked before and heard nothing, so ask what happened before charging again.
        result = find_or_send(
            payment.status is PaymentStatus.UNKNOWN,
            lambda: gateway().find_charge(payment.idempotency_key),
            lambda: gateway().charge_token(
                token=payment.saved_card.gateway_token,
                amount_cents=payment.amount_cents,
                currency=payment.currency,
                order_ref=order_ref(order),
                description=f"Ordine {order.number}",
                initiator=initiator,
                idempotency_key=payment.idempotency_key,
            ),
        )
    except (GatewayUnavailable, GatewayRefused) as exc:
        return apply_charge_result(payment, exc, now)
    return apply_charge_result(payment, result, now)


def apply_charge_result(
    payment: Payment,
    outcome: ChargeResult | GatewayUnavailable | GatewayRefused,
    now: datetime,
) -> Payment:
    """Settle a card charge with the bank's answer, or with the error met asking for it.

    Split from execute_card_charge so that a caller that asked the bank itself (the renewal
    engine, from a thread pool) settles through the same transitions.
    """
    if isinstance(outcome, GatewayUnavailable):
        log.warning("charge for payment %s has unknown outcome: %s", payment.id, outcome)
        if payment.status is PaymentStatus.PENDING:
            transition(
                payment, PaymentStatus.UNKNOWN, PAYMENT_TRANSITIONS, _("Pagamento già concluso.")
            )
        return payment
    if isinstance(outcome, GatewayRefused):
        _fail(
            payment,
            PaymentStatus.FAILED,
            outcome.code,
            _("Pagamento rifiutato dal servizio di pagamento."),
            now,
        )
        return payment
    result = outcome
    order_settling.send(payment.order)  # before this transaction writes anything (events)
    payment.gateway_ref = result.charge_id
    found = verify.charge_differences(payment, order_ref(payment.order), result)
    if found:  # another amount, currency, order or merchant, or not final: nothing is paid
        verify.hold(
            payment,
            found,
            taken_cents=verify.money_taken(result.status, result.amount_cents),
            currency=result.currency,
            now=now,
            allowed=PAYMENT_TRANSITIONS,
        )
        return payment
    if result.succeeded:
        succeed_payment(payment, payment.saved_card, now)
    else:
        _fail(
            payment,
            PaymentStatus.DECLINED,
            result.decline_code,
            result.decline_message or _("Pagamento rifiutato."),
            now,
        )
    return payment


# --- payments left open (the reconciliation job) ----------------------------------------------

# A customer's card charge still PENDING after this long lost its request (a crash, a killed
# worker): the bank is asked what became of it. Far longer than any bank timeout.
CHARGE_STUCK_AFTER = timedelta(minutes=10)


def stuck_payments(now: datetime) -> list[int]:
    """Customer payments whose outcome nobody is waiting for: ask the bank about them.

    Card charges UNKNOWN, or PENDING past CHARGE_STUCK_AFTER; hosted payments still PENDING
    after HOSTED_PAYMENT_REUSE (the page may have been paid without the return reaching us).
    Renewal charges are the renewal engine's.
    """
    card = (Payment.channel == PaymentChannel.SAVED_CARD) & (
        (Payment.status == PaymentStatus.UNKNOWN)
        | (
            (Payment.status == PaymentStatus.PENDING)
            & (Payment.created_at <= now - CHARGE_STUCK_AFTER)
        )
    )
    hosted = (
        (Payment.channel == PaymentChannel.HOSTED_PAGE)
        & (Payment.status == PaymentStatus.PENDING)
        & Payment.gateway_ref.is_not(None)
        & (Payment.created_at <= now - HOSTED_PAYMENT_REUSE)
    )
    return list(db.session.scalars(select(Payment.id).where(card | hosted).order_by(Payment.id)))


def settle_stuck_payment(payment: Payment, now: datetime) -> Payment:
    """Bring one stuck payment in line with the bank; never charges a card the bank has not."""
    if payment.channel is PaymentChannel.HOSTED_PAGE:
        return settle_hosted_payment(payment.gateway_ref, now)
    if (
        payment.status is PaymentStatus.PENDING
        and gateway().find_charge(payment.idempotency_key) is None
    ):
        # The request died before the bank was asked: nothing was taken, free the order.
        _fail(payment, PaymentStatus.FAILED, "abandoned", _("Pagamento non completato."), now)
        return payment
    if payment.status is PaymentStatus.PENDING:
        transition(
            payment, PaymentStatus.UNKNOWN, PAYMENT_TRANSITIONS, _("Pagamento già concluso.")
        )
    return execute_card_charge(payment, now)


# --- settling hosted payments -------------------------------------------------------------------


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
    if payment.status not in PAYMENT_TRANSITIONS:
        return payment
    info = gateway().get_payment(gateway_ref)
    order = payment.order
    if info.status in verify.NOT_YET and info.payment_id == gateway_ref:
        return payment  # the customer is still on the bank's page
    order_settling.send(order)  # before this transaction writes anything (events)
    found = verify.payment_differences(payment, order_ref(order), info)
    if found:  # nothing is paid; money taken is refunded (flows, after the commit)
        verify.hold(
            payment,
            found,
            taken_cents=verify.money_taken(info.status, info.amount_cents),
            currency=info.currency,
            now=now,
            allowed=PAYMENT_TRANSITIONS,
        )
        return payment
    if info.status is GatewayStatus.AUTHORISED:
        card = save_card(order.customer_id, info.card) if info.card else None
        succeed_payment(payment, card, now)
    elif info.status in (GatewayStatus.DECLINED, GatewayStatus.FAILED):
        status = (
            PaymentStatus.DECLINED
            if info.status is GatewayStatus.DECLINED
            else PaymentStatus.FAILED
        )
        _fail(
            payment,
            status,
            info.decline_code,
            info.decline_message or _("Pagamento non riuscito."),
            now,
        )
    return payment


def _fail(payment: Payment, status: PaymentStatus, code: str | None, message: str, now) -> None:
    """The attempt ended without money taken; announced once (the transition is a CAS)."""
    transition(
        payment,
        status,
        PAYMENT_TRANSITIONS,
        _("Pagamento già concluso."),
        failure_code=(code or status.value)[:40],
        failure_message=message[:300],
        completed_at=now,
    )
    payment_failed.send(payment, now=now)


def succeed_payment(payment: Payment, card: SavedCard | None, now: datetime) -> None:
    """The bank captured this payment: the order is paid, once, by whichever capture gets there.

    Guard: the order moves PENDING_PAYMENT -> PAID with a compare-and-set first. The capture that
    wins it succeeds and announces `order_paid` (services, invoice, e-mail, in this transaction);
    any other capture of the same order is a DUPLICATE, recorded with its refund (the caller
    commits, then `execute_refund` gives the money back), never a second activation.
    """
    order = payment.order
    card_id = card.id if card else payment.saved_card_id
    order_settling.send(order)  # the rows order_paid's receivers change, locked first (again)
    try:
        transition(
            order,
            OrderStatus.PAID,
            ORDER_TRANSITIONS,
            _("L'ordine è già stato pagato."),
            paid_at=now,
        )
    except InvalidTransition:
        transition(
            payment,
            PaymentStatus.DUPLICATE,
            PAYMENT_TRANSITIONS,
            _("Pagamento già concluso."),
            completed_at=now,
            saved_card_id=card_id,
            failure_code="duplicate",
            failure_message=_("Pagamento duplicato: l'ordine era già pagato. Lo rimborsiamo."),
        )
        log.error("duplicate capture %s for paid order %s: refunding it", payment.id, order.id)
        duplicate_captured.send(payment, now=now)
        return
    transition(
        payment,
        PaymentStatus.SUCCEEDED,
        PAYMENT_TRANSITIONS,
        _("Pagamento già concluso."),
        completed_at=now,
        saved_card_id=card_id,
    )
    # Services, invoice and e-mail are the subscribers' (renewals, invoicing, notify).
    order_paid.send(order, payment=payment, card=card, now=now)
