"""The mock bank's hosted payments (3-D Secure): create, card form, challenge, result.

Explicit arguments, `now` passed in, flush but never commit. A payment moves only as
TRANSITIONS allows (transition); its final status queues the shop's notification in the same
transaction (notifier.queue_notification)."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import update

from webapp.signing import sign_params

from . import cards
from .cards import Behaviour, CardInput
from .charges import decline_of_test_card
from .errors import DECLINE_MESSAGES, CardInvalid, InvalidTransition, WrongOtp
from .extensions import db
from .idempotency import replayed
from .models import Card, Payment, PaymentStatus
from .notifier import queue_notification

S = PaymentStatus

#: The only moves a hosted payment can make; anything else raises InvalidTransition.
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    # FAILED from the card form and the summary: "Annulla e torna al negozio" (cancel_payment).
    S.CREATED: frozenset({S.PENDING_CONFIRMATION, S.FAILED}),
    S.PENDING_CONFIRMATION: frozenset(
        {S.PENDING_CONFIRMATION, S.CHALLENGE, S.AUTHORISED, S.DECLINED, S.PENDING, S.FAILED}
    ),
    S.CHALLENGE: frozenset({S.AUTHORISED, S.FAILED}),
    S.AUTHORISED: frozenset(),
    S.DECLINED: frozenset(),
    S.FAILED: frozenset(),
    S.PENDING: frozenset(),
}

CHALLENGE_SMS = "sms"
CHALLENGE_APP = "app"
CHALLENGE_TOKEN = "token"  # a code shown by the hardware token ("codice generato dal token")
#: The challenges answered with a 6-digit code typed into the page.
CODE_CHALLENGES = frozenset({CHALLENGE_SMS, CHALLENGE_TOKEN})


def transition(payment: Payment, new: PaymentStatus) -> None:
    """Move a payment to a new status, refusing any move the lifecycle does not allow.

    Guard: a compare-and-set on the status read (`UPDATE … WHERE status = <read>`), so two
    requests on one page at once ("Invio dati" and "Annulla", a double click) cannot both move
    it: the second finds the status changed and is refused, its payment read again.
    """
    old = payment.status
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(f"{old} -> {new}")
    moved = db.session.execute(
        update(Payment)
        .where(Payment.id == payment.id, Payment.status == old)
        .values(status=new)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        db.session.refresh(payment)
        raise InvalidTransition(f"{old} -> {new}: the payment is now {payment.status}")
    payment.status = new


# ---- hosted payments ---------------------------------------------------------------------


def get_payment(payment_id: str) -> Payment | None:
    """The payment with this id, or None."""
    return db.session.get(Payment, payment_id)


def create_payment(
    *,
    amount_cents: int,
    currency: str,
    order_ref: str,
    description: str,
    return_url: str,
    notify_url: str | None,
    save_card: bool,
    idempotency_key: str,
    now: datetime,
) -> tuple[Payment, bool]:
    """Create a hosted payment, or return the one already made with this key (created=False)."""
    existing = replayed(
        Payment, idempotency_key, amount_cents=amount_cents, currency=currency, order_ref=order_ref
    )
    if existing is not None:
        return existing, False
    payment = Payment(
        id="pay_" + secrets.token_urlsafe(16),
        idempotency_key=idempotency_key,
        amount_cents=amount_cents,
        currency=currency,
        order_ref=order_ref,
        description=description,
        return_url=return_url,
        notify_url=notify_url,
        save_card=save_card,
        status=S.CREATED,
        otp_failures=0,
        created_at=now,
    )
    db.session.add(payment)
    db.session.flush()  # the UNIQUE key decides a race between two identical requests
    return payment, True


def submit_card(
    payment: Payment,
    *,
    holder: str,
    number: str,
    exp_month: str,
    exp_year: str,
    cvv: str,
    now: datetime,
) -> CardInput:
    """'Procedi': validate the card and keep it on the payment until 'Invio dati'."""
    if S.PENDING_CONFIRMATION not in TRANSITIONS[payment.status]:  # before any validation
        raise InvalidTransition(f"card submitted in status {payment.status}")
    card, errors = cards.validate_card(holder, number, exp_month, exp_year, cvv, now.date())
    if card is None:
        raise CardInvalid(errors)
    transition(payment, S.PENDING_CONFIRMATION)
    payment.holder, payment.pan, payment.brand = card.holder, card.number, card.brand
    payment.exp_month, payment.exp_year = card.exp_month, card.exp_year
    db.session.flush()
    return card


def confirm_payment(payment: Payment, *, now: datetime) -> Payment:
    """'Invio dati': run the test card's behaviour (decline, 3-D Secure challenge or authorise)."""
    if payment.status != S.PENDING_CONFIRMATION or payment.pan is None:
        raise InvalidTransition(f"confirm in status {payment.status}")
    behaviour = cards.behaviour_for(payment.pan)
    code = decline_of_test_card(behaviour, payment.amount_cents)
    if code is not None:
        _finish(payment, S.DECLINED, now, code)
    elif behaviour is Behaviour.PENDING and payment.amount_cents > 0:
        _finish(payment, S.PENDING, now)  # a wrong answer on purpose: never confirmed
    elif behaviour in (Behaviour.SMS_OTP, Behaviour.SCA_REQUIRED, Behaviour.HW_TOKEN):
        transition(payment, S.CHALLENGE)
        payment.challenge_method = (
            CHALLENGE_TOKEN if behaviour is Behaviour.HW_TOKEN else CHALLENGE_SMS
        )
        payment.otp_code = f"{secrets.randbelow(1_000_000):06d}"
        payment.otp_failures = 0
    elif behaviour is Behaviour.APP:
        transition(payment, S.CHALLENGE)
        payment.challenge_method = CHALLENGE_APP
    else:
        _finish(payment, S.AUTHORISED, now)
    db.session.flush()
    return payment


def cancel_payment(payment: Payment, *, now: datetime) -> Payment:
    """'Annulla e torna al negozio' before the card data are sent: the payment fails with code
    `cancelled` (no money taken) and the shop is notified, as a real gateway's "annullo"."""
    if payment.status not in (S.CREATED, S.PENDING_CONFIRMATION):
        raise InvalidTransition(f"cancel in status {payment.status}")
    _finish(payment, S.FAILED, now, "cancelled")
    db.session.flush()
    return payment


def is_code_challenge(payment: Payment) -> bool:
    """3-D Secure is waiting for a typed 6-digit code (SMS or hardware token)."""
    return payment.status == S.CHALLENGE and payment.challenge_method in CODE_CHALLENGES


def well_formed_otp(code: str) -> bool:
    """Six ASCII digits ("²" and other Unicode digits pass str.isdigit, not this)."""
    return len(code) == 6 and code.isascii() and code.isdecimal()


def verify_otp(payment: Payment, code: str, *, max_attempts: int, now: datetime) -> Payment:
    """Check the SMS or token code: authorise, or raise WrongOtp, or fail after max_attempts."""
    if not is_code_challenge(payment):
        raise InvalidTransition(f"otp in status {payment.status}")
    assert payment.otp_code is not None
    if hmac.compare_digest(code.strip().encode(), payment.otp_code.encode()):
        _finish(payment, S.AUTHORISED, now)
    else:
        failures = _count_wrong_otp(payment)
        if failures < max_attempts:
            raise WrongOtp(max_attempts - failures)
        _finish(payment, S.FAILED, now, "authentication_failed")
    db.session.flush()
    return payment


def _count_wrong_otp(payment: Payment) -> int:
    """One more wrong code on this payment; the count after it.

    Guard: an atomic `SET otp_failures = otp_failures + 1` (not a read-modify-write), so codes
    posted at the same instant cannot each see the old count and get extra attempts.
    """
    db.session.execute(
        update(Payment)
        .where(Payment.id == payment.id, Payment.status == S.CHALLENGE)
        .values(otp_failures=Payment.otp_failures + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(payment)
    if not is_code_challenge(payment):  # a twin request finished it meanwhile
        raise InvalidTransition(f"otp in status {payment.status}")
    return payment.otp_failures


def decide_in_app(payment: Payment, *, approve: bool, now: datetime) -> Payment:
    """The simulated bank app's 'Approva' / 'Rifiuta'."""
    if payment.status != S.CHALLENGE or payment.challenge_method != CHALLENGE_APP:
        raise InvalidTransition(f"app decision in status {payment.status}")
    if approve:
        _finish(payment, S.AUTHORISED, now)
    else:
        _finish(payment, S.FAILED, now, "authentication_refused")
    db.session.flush()
    return payment


def _finish(
    payment: Payment, status: PaymentStatus, now: datetime, code: str | None = None
) -> None:
    """Final status: save the card if asked, queue the shop's notification (same transaction)."""
    transition(payment, status)
    payment.finished_at = now
    payment.otp_code = None  # a used code is worthless; keep nothing secret around
    payment.decline_code = code
    payment.decline_message = DECLINE_MESSAGES[code] if code else None
    if status == S.AUTHORISED:
        # The wrong-answer test cards book (and answer) another amount or order reference.
        payment.amount_cents, payment.order_ref = cards.answered_charge(
            cards.behaviour_for(payment.pan or ""), payment.amount_cents, payment.order_ref
        )
    if status == S.AUTHORISED and payment.save_card:
        payment.card = _save_card(payment, now)
    if payment.notify_url:
        queue_notification(payment, now)


def _save_card(payment: Payment, now: datetime) -> Card:
    assert payment.pan and payment.brand and payment.holder
    assert payment.exp_month is not None and payment.exp_year is not None
    card = Card(
        token="tok_" + secrets.token_urlsafe(24),
        pan=payment.pan,
        brand=payment.brand,
        last4=payment.pan[-4:],
        exp_month=payment.exp_month,
        exp_year=payment.exp_year,
        holder=payment.holder,
        created_at=now,
    )
    db.session.add(card)
    return card


def payment_to_dict(payment: Payment) -> dict[str, object]:
    """The status API body; the card only once authorised with save_card (never the number)."""
    card = payment.card
    card_json = None
    if payment.status == S.AUTHORISED and payment.save_card and card is not None:
        card_json = {
            "token": card.token,
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "holder": card.holder,
        }
    return {
        "payment_id": payment.id,
        "status": str(payment.status),
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "order_ref": payment.order_ref,
        "decline_code": payment.decline_code,
        "decline_message": payment.decline_message,
        "refunded_cents": payment.refunded_cents,
        "card": card_json,
    }


def return_params(payment: Payment, secret: str) -> dict[str, str]:
    """The signed parameters of 'torna al negozio' (stable: ts is when the payment finished)."""
    if payment.finished_at is None:
        raise InvalidTransition("the payment has no result yet")
    params = dict(parse_qsl(urlsplit(payment.return_url).query, keep_blank_values=True))
    params.update(
        payment_id=payment.id,
        order_ref=payment.order_ref,
        status=str(payment.status),
        amount_cents=str(payment.amount_cents),
        currency=payment.currency,
        ts=str(int(payment.finished_at.timestamp())),
    )
    params.pop("sig", None)
    # The shop's own query parameters, if any, are signed too: it verifies request.args whole.
    params["sig"] = sign_params(secret, params)
    return params


def return_url(payment: Payment, secret: str) -> str:
    """The shop's return_url with the signed result parameters."""
    parts = urlsplit(payment.return_url)
    return urlunsplit(parts._replace(query=urlencode(return_params(payment, secret))))
