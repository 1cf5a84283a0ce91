"""The payment use cases the views and jobs run, each with its own commits and one outcome.

Services (webapp.payments.hosted, charges, refunds, ...) flush; these functions are the callers that
commit, because paying needs more than one transaction: the attempt is committed before the
bank is asked, the settlement after it answers, a refund of a duplicate after that. Views only
turn the returned `Outcome` into a response, so the twin that lost a race reads the state the
winner left and lands on the same outcome (the paid order page), never on a contradiction.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select

from webapp.clock import rome_date
from webapp.errors import DomainError, InvalidTransition, NotFound, PaymentError
from webapp.extensions import db
from webapp.money import format_eur
from webapp.payments import cards, charges, refunds, settlement, stuck, verify
from webapp.payments import hosted as payments_hosted
from webapp.payments.gateway import GatewayRefused, GatewayStatus, GatewayUnavailable
from webapp.payments.models import Payment, PaymentStatus, Refund, RefundStatus, SavedCard
from webapp.shop.order_models import Order, OrderStatus
from webapp.transaction import commit, once_more_after_conflict, rollback

log = logging.getLogger(__name__)


#: The decline code of an issuer that wants 3-D Secure on a customer-initiated token charge.
AUTHENTICATION_REQUIRED = "authentication_required"


class Outcome(enum.StrEnum):
    PAID = "paid"  # this payment paid the order
    ALREADY_PAID = "already_paid"  # the order was paid by another payment
    DUPLICATE = "duplicate"  # this payment was a second capture: it is (being) refunded
    DECLINED = "declined"  # no money taken; the order can be paid again
    UNKNOWN = "unknown"  # the bank did not answer: we ask it, the customer waits
    # The issuer wants Strong Customer Authentication for this saved-card charge (PSD2): no
    # money taken; the customer pays on the bank's page with 3-D Secure instead.
    AUTHENTICATION_REQUIRED = "authentication_required"
    PENDING = "pending"  # the bank's page is not finished yet
    # The bank's answer did not match the payment: not paid, money taken is being refunded.
    TO_VERIFY = "to_verify"


@dataclass(frozen=True)
class PaymentResult:
    outcome: Outcome
    payment: Payment | None
    message: str

    @property
    def category(self) -> str:
        """The flash category of the message."""
        return {Outcome.PAID: "success", Outcome.DECLINED: "error"}.get(self.outcome, "info")


def result_of(payment: Payment) -> PaymentResult:
    """What the customer is told about a payment, from the state in the database."""
    order = payment.order
    status = payment.status
    if status is PaymentStatus.SUCCEEDED:
        return PaymentResult(
            Outcome.PAID,
            payment,
            _("Pagamento riuscito: grazie! Ti abbiamo inviato una e-mail di conferma."),
        )
    if status is PaymentStatus.DUPLICATE:
        return PaymentResult(Outcome.DUPLICATE, payment, _duplicate_message(payment))
    if status is PaymentStatus.TO_VERIFY:
        return PaymentResult(
            Outcome.TO_VERIFY,
            payment,
            _(
                "La banca non ha confermato il pagamento come richiesto: l'ordine non risulta "
                "pagato e l'eventuale addebito viene rimborsato. Lo verifichiamo noi."
            ),
        )
    if order.status is OrderStatus.PAID:
        return PaymentResult(Outcome.ALREADY_PAID, payment, _("Questo ordine risulta già pagato."))
    if status is PaymentStatus.UNKNOWN:
        return PaymentResult(
            Outcome.UNKNOWN,
            payment,
            _(
                "La banca non ha ancora confermato l'esito: lo verifichiamo noi, "
                "non ripetere il pagamento."
            ),
        )
    if status is PaymentStatus.PENDING:
        return PaymentResult(
            Outcome.PENDING, payment, _("Il pagamento non è ancora concluso presso la banca.")
        )
    if payment.failure_code == AUTHENTICATION_REQUIRED:
        return PaymentResult(
            Outcome.AUTHENTICATION_REQUIRED,
            payment,
            _(
                "La tua banca chiede di autorizzare questo pagamento con 3-D Secure: "
                "completa il pagamento sulla pagina sicura della banca."
            ),
        )
    return PaymentResult(
        Outcome.DECLINED,
        payment,
        _("Pagamento non riuscito: %(reason)s", reason=payment.failure_message),
    )


def _duplicate_message(payment: Payment) -> str:
    refund = db.session.scalar(select(Refund).where(Refund.payment_id == payment.id))
    amount = format_eur(payment.amount_cents)
    if refund is not None and refund.status is RefundStatus.SUCCEEDED:
        return _(
            "Questo ordine era già stato pagato: il secondo addebito di %(amount)s "
            "è stato rimborsato sulla tua carta. Ti abbiamo inviato una e-mail.",
            amount=amount,
        )
    return _(
        "Questo ordine era già stato pagato: il secondo addebito di %(amount)s "
        "verrà rimborsato sulla tua carta, senza che tu debba fare nulla.",
        amount=amount,
    )


def start_hosted_payment(
    order: Order, *, return_url: str, notify_url: str | None, now: datetime
) -> Payment:
    """Paths 1 and 3: the bank's hosted page for the order (a reload reuses the open one)."""

    def start() -> Payment:
        payment = payments_hosted.start_hosted_payment(
            order, return_url=return_url, notify_url=notify_url, now=now
        )
        commit()
        return payment

    try:
        # Twin clicks insert the same key: the loser reruns and reuses the winner's page.
        return once_more_after_conflict(start)
    except DomainError:
        rollback()
        raise


def pay_with_saved_card(
    order: Order, customer_id: int, card_choice: str, attempt: str, now: datetime
) -> PaymentResult:
    """Path 2: record the charge (committed), ask the bank, settle it (committed).

    Raises DomainError (nothing changed) when the order cannot be paid with that card.
    """

    def record() -> Payment:
        payment = charges.begin_saved_card_payment(
            order, customer_id, card_choice, attempt, rome_date(now)
        )
        commit()
        return payment

    try:
        payment = once_more_after_conflict(record)
    except InvalidTransition:
        rollback()
        db.session.refresh(order)
        if order.status is OrderStatus.PAID:
            return PaymentResult(Outcome.ALREADY_PAID, None, _("Questo ordine risulta già pagato."))
        raise
    except DomainError:
        rollback()
        raise
    payment_id = payment.id
    try:
        charges.execute_card_charge(payment, now)
        commit()
    except InvalidTransition:
        rollback()  # the twin settled this very charge first: read what it wrote
    payment = db.session.get(Payment, payment_id)
    return _refund_if_duplicate(payment, now)


def settle_hosted_payment(gateway_ref: str, now: datetime) -> PaymentResult:
    """The bank's return or notification: ask the bank and settle (replays change nothing).

    Raises NotFound for an unknown payment and GatewayUnavailable when the bank cannot be asked.
    """

    def settle() -> None:
        try:
            payments_hosted.settle_hosted_payment(gateway_ref, now)
            commit()
        except InvalidTransition:
            rollback()  # the twin (return vs notification, two tabs) settled it first

    try:
        # The return and the notification at once may both save the card token: rerun once.
        once_more_after_conflict(settle)
    except GatewayUnavailable:
        rollback()
        raise
    return _refund_if_duplicate(payments_hosted.payment_by_ref(gateway_ref), now)


def _refund_if_duplicate(payment: Payment, now: datetime) -> PaymentResult:
    """A duplicate capture, money taken by an answer held for verification, or a refund the
    settlement recorded (a renewal line whose period was already renewed) is refunded at once
    (the reconciliation job retries what fails)."""
    if (
        payment.status in (PaymentStatus.DUPLICATE, PaymentStatus.TO_VERIFY)
        or payment.refunded_cents
    ):
        execute_open_refunds(payment, now)
    return result_of(payment)


def refund_held(order_id: int | None, now: datetime) -> None:
    """Execute at once the refunds of the order's payments held for verification (a renewal
    charge whose answer did not match: the engine commits the hold, then calls this)."""
    held = db.session.scalars(
        select(Payment).where(
            Payment.order_id == order_id, Payment.status == PaymentStatus.TO_VERIFY
        )
    ).all()
    for payment in held:
        execute_open_refunds(payment, now)


def execute_open_refunds(payment: Payment, now: datetime) -> None:
    """Ask the bank for each open refund of the payment, committing each outcome."""
    open_ids = db.session.scalars(
        select(Refund.id).where(
            Refund.payment_id == payment.id, Refund.status.in_(refunds.OPEN_REFUND_STATUSES)
        )
    ).all()
    for refund_id in open_ids:
        run_refund(refund_id, now)


def run_refund(refund_id: int, now: datetime) -> Refund | None:
    """Execute one recorded refund and commit; a twin that got there first wins quietly."""
    try:
        refund = refunds.execute_refund(db.session.get(Refund, refund_id), now)
        commit()
        return refund
    except InvalidTransition:
        rollback()
        return db.session.get(Refund, refund_id)


def refund(
    payment: Payment,
    amount_cents: int,
    *,
    kind,
    reason: str,
    now: datetime,
    requested_by: str | None = None,
) -> Refund:
    """Record a refund (committed before the bank is asked), then execute it."""
    try:
        recorded = refunds.refund_payment(
            payment, amount_cents, kind=kind, reason=reason, now=now, requested_by=requested_by
        )
        commit()
    except DomainError:
        rollback()
        raise
    return run_refund(recorded.id, now)


def reconcile(now: datetime) -> int:
    """The job's pass: settle charges and hosted payments left open, run open refunds.

    Returns how many payments or refunds reached a final state.
    """
    settled = 0
    for payment_id in stuck.stuck_payments(now):
        payment = db.session.get(Payment, payment_id)
        try:
            stuck.settle_stuck_payment(payment, now)
            commit()
        except (InvalidTransition, GatewayUnavailable):
            rollback()
            continue
        payment = db.session.get(Payment, payment_id)
        _refund_if_duplicate(payment, now)
        settled += payment.status not in (PaymentStatus.PENDING, PaymentStatus.UNKNOWN)
    for refund_id in refunds.open_refunds(now):
        done = run_refund(refund_id, now)
        settled += done is not None and done.status not in refunds.OPEN_REFUND_STATUSES
    return settled


# --- adding a card from the customer area (a zero-amount verification on the bank's page) -------

VERIFY_PREFIX = "CARTA"


class CardNotAdded(DomainError):
    """The card was not added; `final` False means the bank has not finished yet."""

    def __init__(self, message: str, final: bool = True):
        super().__init__(message)
        self.final = final


def start_card_verification(customer_id: int, return_url: str, nonce: str) -> str:
    """The bank's page for a new card: 3-D Secure and a zero-amount verification, no charge.

    Returns the URL to send the browser to; raises PaymentError when the bank is unreachable.
    """
    try:
        hosted = settlement.gateway().create_payment(
            amount_cents=0,
            currency="EUR",
            order_ref=f"{VERIFY_PREFIX}-{customer_id}-{nonce}",
            description="Verifica della carta: nessun addebito",
            return_url=return_url,
            notify_url=None,
            save_card=True,
            idempotency_key=f"verify-{customer_id}-{nonce}",
        )
    except (GatewayUnavailable, GatewayRefused) as exc:
        log.warning("bank refused/unreachable creating a card verification: %s", exc)
        raise PaymentError(
            _(
                "Il servizio di pagamento non è raggiungibile in questo momento. "
                "Riprova tra qualche minuto."
            )
        ) from exc
    return hosted.redirect_url


def finish_card_verification(params: dict[str, str], customer_id: int) -> SavedCard:
    """Back from the bank: verify the signed return, ask the bank, save the card (flushed).

    Raises BadSignature or NotFound for a return that is not this customer's, CardNotAdded
    with the reason otherwise. Replays find the same card (one per bank token).
    """
    settlement.gateway().verify_return(params)
    ref = params.get("order_ref", "")
    if not ref.startswith(f"{VERIFY_PREFIX}-{customer_id}-"):
        raise NotFound(_("Verifica della carta non trovata."))
    try:
        info = settlement.gateway().get_payment(params.get("payment_id", ""))
    except GatewayUnavailable as exc:
        raise CardNotAdded(
            _("Non riusciamo a verificare la carta con la banca: ricarica questa pagina tra poco."),
            final=False,
        ) from exc
    except GatewayRefused as exc:
        raise NotFound(_("Verifica della carta non trovata.")) from exc
    if info.order_ref != ref or info.amount_cents != 0 or info.merchant_id != verify.merchant_id():
        raise NotFound(_("Verifica della carta non trovata."))
    if info.status is not GatewayStatus.AUTHORISED or info.card is None:
        if info.final:
            reason = info.decline_message or _("verifica non riuscita")
            raise CardNotAdded(_("La carta non è stata aggiunta: %(reason)s", reason=reason))
        raise CardNotAdded(
            _("La verifica della carta non è ancora conclusa presso la banca."), False
        )
    card = cards.save_card(customer_id, info.card)
    if card.removed_at is not None:
        raise CardNotAdded(
            _("Questa carta è stata rimossa: aggiungila di nuovo dalla banca."), False
        )
    return card


def add_verified_card(params: dict[str, str], customer_id: int) -> SavedCard:
    """finish_card_verification, committed. Twin returns (a reload, a double click) save the
    same token at once: its unique key lets one in, and the other reruns and finds that card."""

    def save() -> SavedCard:
        try:
            card = finish_card_verification(params, customer_id)
        except DomainError:
            rollback()
            raise
        commit()
        return card

    return once_more_after_conflict(save)
