"""Domain logic of the mock bank: explicit arguments, `now` passed in, flush but never commit."""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from babel.numbers import format_currency
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from webapp.signing import sign_params

from . import cards
from .cards import Behaviour, CardInput
from .extensions import db
from .models import (
    Card,
    Charge,
    ChargeStatus,
    Notification,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
)

S = PaymentStatus
Keyed = TypeVar("Keyed", Payment, Charge, Refund)

DECLINE_MESSAGES = {
    "card_declined": "Carta rifiutata dalla banca emittente.",
    "insufficient_funds": "Fondi insufficienti.",
    "expired_card": "Carta scaduta.",
    "authentication_failed": "Autenticazione 3-D Secure non riuscita.",
    "authentication_refused": (
        "Autenticazione 3-D Secure non riuscita: pagamento rifiutato nell'app della banca."
    ),
    "authentication_required": (
        "La banca richiede l'autenticazione 3-D Secure del titolare: "
        "paga inserendo di nuovo i dati della carta."
    ),
}

#: Why a refund is refused (the API's error code -> an English detail for the merchant).
REFUND_REFUSALS = {
    "not_captured": "only an authorised payment or a succeeded charge with money taken",
    "amount_exceeds_captured": "the refunds would exceed the captured amount",
    "currency_mismatch": "the refund currency differs from the payment's",
}

#: The only moves a hosted payment can make; anything else raises InvalidTransition.
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.CREATED: frozenset({S.PENDING_CONFIRMATION}),
    S.PENDING_CONFIRMATION: frozenset(
        {S.PENDING_CONFIRMATION, S.CHALLENGE, S.AUTHORISED, S.DECLINED, S.PENDING}
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


class BankError(Exception):
    """Base of the bank's domain errors."""


class InvalidTransition(BankError):
    """A step was attempted that the payment's current status does not allow."""


class IdempotencyConflict(BankError):
    """An idempotency key was reused with a different request."""


class UnknownToken(BankError):
    """The card token does not exist or was deleted."""


class NotFound(BankError):
    """No payment or charge with this id."""


class RefundRefused(BankError):
    """The refund cannot be made (code: a key of REFUND_REFUSALS)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
        self.detail = REFUND_REFUSALS[code]


class CardInvalid(BankError):
    """The hosted card form has errors (field -> Italian message)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid card data")
        self.errors = errors


class WrongOtp(BankError):
    """The OTP was wrong but attempts are left."""

    def __init__(self, attempts_left: int) -> None:
        super().__init__("wrong otp")
        self.attempts_left = attempts_left


def format_eur(amount_cents: int) -> str:
    """Cents the Italian way: 123456 -> '€ 1.234,56'."""
    amount = Decimal(amount_cents) / 100
    return format_currency(
        amount, "EUR", format="¤ #,##0.00", locale="it_IT", currency_digits=False
    )


def transition(payment: Payment, new: PaymentStatus) -> None:
    """Move a payment to a new status, refusing any move the lifecycle does not allow."""
    if new not in TRANSITIONS[payment.status]:
        raise InvalidTransition(f"{payment.status} -> {new}")
    payment.status = new


def find_by_key(model: type[Keyed], idempotency_key: str) -> Keyed | None:
    """The payment, charge or refund made with this idempotency key, or None."""
    return db.session.scalar(select(model).filter_by(idempotency_key=idempotency_key))


def _replayed(model: type[Keyed], idempotency_key: str, **request: object) -> Keyed | None:
    """The row made with this key, when the request is replayed as it was (None: a new key).

    The same key with another request (any of these fields differs) is an IdempotencyConflict.
    """
    existing = find_by_key(model, idempotency_key)
    if existing is not None and any(
        getattr(existing, name) != value for name, value in request.items()
    ):
        raise IdempotencyConflict(idempotency_key)
    return existing


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
    existing = _replayed(
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
    code = _test_card_decline(behaviour, payment.amount_cents)
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
        _queue_notification(payment, now)


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


def _queue_notification(payment: Payment, now: datetime) -> None:
    body = {
        "payment_id": payment.id,
        "order_ref": payment.order_ref,
        "status": str(payment.status),
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
    }
    assert payment.notify_url is not None
    db.session.add(
        Notification(
            payment_id=payment.id,
            url=payment.notify_url,
            body=json.dumps(body, separators=(",", ":"), sort_keys=True),
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


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


# ---- saved cards and charges -------------------------------------------------------------


def get_active_card(token: str) -> Card | None:
    """The saved card behind a token, unless it was deleted."""
    card = db.session.get(Card, token)
    return card if card is not None and card.revoked_at is None else None


def revoke_token(token: str, *, now: datetime) -> None:
    """Forget a saved card (idempotent: an unknown or deleted token is fine)."""
    card = db.session.get(Card, token)
    if card is not None and card.revoked_at is None:
        card.revoked_at = now
        db.session.flush()


def charge_token(
    *,
    token: str,
    amount_cents: int,
    currency: str,
    order_ref: str,
    description: str,
    initiator: str,
    idempotency_key: str,
    now: datetime,
) -> tuple[Charge, bool]:
    """Charge a saved card, or return the stored charge for a replayed key (created=False)."""
    behaviour = _card_behaviour(token)
    amount_cents, order_ref = cards.answered_charge(behaviour, amount_cents, order_ref)
    existing = _replayed(
        Charge,
        idempotency_key,
        token=token,
        amount_cents=amount_cents,
        currency=currency,
        order_ref=order_ref,
    )
    if existing is not None:
        return existing, False
    card = get_active_card(token)
    if card is None:
        raise UnknownToken(token)
    code = _charge_decline_code(card, amount_cents, initiator, now)
    status = ChargeStatus.DECLINED if code else ChargeStatus.SUCCEEDED
    if status is ChargeStatus.SUCCEEDED and behaviour is Behaviour.PENDING:
        status = ChargeStatus.PENDING  # a wrong answer on purpose: nothing taken
    charge = Charge(
        id="ch_" + secrets.token_urlsafe(16),
        idempotency_key=idempotency_key,
        token=token,
        amount_cents=amount_cents,
        currency=currency,
        order_ref=order_ref,
        description=description,
        initiator=initiator,
        status=status,
        decline_code=code,
        decline_message=DECLINE_MESSAGES[code] if code else None,
        created_at=now,
    )
    db.session.add(charge)
    db.session.flush()  # the UNIQUE key decides a race between two identical requests
    return charge, True


def _card_behaviour(token: str) -> Behaviour | None:
    """The test-card behaviour behind a token (a deleted card's too), None if unknown."""
    card = db.session.get(Card, token)
    return None if card is None else cards.behaviour_for(card.pan)


def _target_behaviour(target_id: str) -> Behaviour | None:
    """The test-card behaviour of the card that paid a payment or charge, None if unknown."""
    if target_id.startswith("ch_"):
        charge = db.session.get(Charge, target_id)
        return None if charge is None else _card_behaviour(charge.token)
    payment = db.session.get(Payment, target_id)
    return None if payment is None or payment.pan is None else cards.behaviour_for(payment.pan)


def answer_lost(row: Charge | Refund) -> bool:
    """The NO_ANSWER test card: the charge or refund is made, and its answer never arrives."""
    if isinstance(row, Charge):
        return _card_behaviour(row.token) is Behaviour.NO_ANSWER
    return _target_behaviour(row.target_id) is Behaviour.NO_ANSWER


def _test_card_decline(behaviour: Behaviour, amount_cents: int) -> str | None:
    """The decline code a test card's behaviour gives (a zero-amount verification has funds)."""
    if behaviour is Behaviour.DECLINED:
        return "card_declined"
    if behaviour is Behaviour.INSUFFICIENT_FUNDS and amount_cents > 0:
        return "insufficient_funds"
    if behaviour is Behaviour.EXPIRED:
        return "expired_card"
    return None


def _charge_decline_code(
    card: Card, amount_cents: int, initiator: str, now: datetime
) -> str | None:
    """A saved card is also declined once its own expiry date has passed.

    The SCA test card wants the customer authenticated again for each customer-initiated
    charge (PSD2); a merchant-initiated one (a renewal) is out of SCA scope and succeeds.
    """
    behaviour = cards.behaviour_for(card.pan)
    code = _test_card_decline(behaviour, amount_cents)
    if code is None and cards.is_expired(card.exp_month, card.exp_year, now.date()):
        return "expired_card"
    if code is None and behaviour is Behaviour.SCA_REQUIRED and initiator == "customer":
        return "authentication_required"
    return code


def charge_to_dict(charge: Charge) -> dict[str, object]:
    """The charge API body."""
    return {
        "charge_id": charge.id,
        "status": str(charge.status),
        "amount_cents": charge.amount_cents,
        "currency": charge.currency,
        "order_ref": charge.order_ref,
        "decline_code": charge.decline_code,
        "decline_message": charge.decline_message,
        "refunded_cents": charge.refunded_cents,
    }


# ---- refunds -------------------------------------------------------------------------------


def refund(
    *,
    target_id: str,
    amount_cents: int,
    currency: str,
    reason: str,
    idempotency_key: str,
    now: datetime,
) -> tuple[Refund, bool]:
    """Refund (part of) a captured payment or charge, or replay the refund made with this key.

    Raises NotFound, RefundRefused or IdempotencyConflict; on RefundRefused the caller rolls
    back (the refund row was already flushed).
    """
    # The SHORT_REFUND test card gives back (and answers) less than asked.
    amount_cents = cards.answered_refund(_target_behaviour(target_id), amount_cents)
    existing = _replayed(
        Refund,
        idempotency_key,
        target_id=target_id,
        amount_cents=amount_cents,
        currency=currency,
        reason=reason,
    )
    if existing is not None:
        return existing, False
    target = _refundable(target_id)
    if currency != target.currency:
        raise RefundRefused("currency_mismatch")
    row = Refund(
        id="re_" + secrets.token_urlsafe(16),
        idempotency_key=idempotency_key,
        payment_id=target.id if isinstance(target, Payment) else None,
        charge_id=target.id if isinstance(target, Charge) else None,
        amount_cents=amount_cents,
        currency=currency,
        reason=reason,
        status=RefundStatus.SUCCEEDED,
        created_at=now,
    )
    db.session.add(row)
    # The UNIQUE key first: a twin of this very request waits here, fails, and replays ours.
    db.session.flush()
    _add_refunded(target, amount_cents)
    return row, True


def _refundable(target_id: str) -> Payment | Charge:
    """The payment or charge to refund, if money was captured by it."""
    target: Payment | Charge | None
    if target_id.startswith("ch_"):
        target = db.session.get(Charge, target_id)
        captured = target is not None and target.status == ChargeStatus.SUCCEEDED
    else:
        target = db.session.get(Payment, target_id)
        captured = target is not None and target.status == S.AUTHORISED
        # A zero-amount card verification took no money.
        captured = captured and target is not None and target.amount_cents > 0
    if target is None:
        raise NotFound(target_id)
    if not captured:
        raise RefundRefused("not_captured")
    return target


def _add_refunded(target: Payment | Charge, amount_cents: int) -> None:
    """Add to the refunded total unless it would exceed the captured amount.

    Guard: a compare-and-set UPDATE; the database checks the sum against the row as it is
    when the UPDATE runs (a concurrent refund's UPDATE waits on the row lock, then re-checks),
    never a total read earlier. A CHECK constraint backs it up.
    """
    model = type(target)
    result = db.session.execute(
        update(model)
        .where(
            model.id == target.id,
            model.refunded_cents + amount_cents <= model.amount_cents,
        )
        .values(refunded_cents=model.refunded_cents + amount_cents)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise RefundRefused("amount_exceeds_captured")
    db.session.refresh(target)


def refund_to_dict(row: Refund) -> dict[str, object]:
    """The refund API body."""
    return {
        "refund_id": row.id,
        "payment_ref": row.target_id,
        "status": str(row.status),
        "amount_cents": row.amount_cents,
        "currency": row.currency,
        "reason": row.reason,
    }


@dataclass(frozen=True)
class Movement:
    """One line of the sandbox's ledger page: money taken or given back."""

    at: datetime
    kind: str  # "pagamento" | "addebito" | "rimborso"
    ref: str
    order_ref: str
    amount_cents: int  # negative for a refund
    detail: str


def movements(limit: int = 200) -> list[Movement]:
    """Captured payments, charges (succeeded or declined) and refunds, newest first."""
    payments = db.session.scalars(
        select(Payment)
        .where(Payment.status == S.AUTHORISED, Payment.amount_cents > 0)
        .order_by(Payment.finished_at.desc())
        .limit(limit)
    )
    charges = db.session.scalars(select(Charge).order_by(Charge.created_at.desc()).limit(limit))
    refunds = db.session.scalars(
        select(Refund)
        .options(selectinload(Refund.payment), selectinload(Refund.charge))
        .order_by(Refund.created_at.desc())
        .limit(limit)
    )
    rows = [
        *(_payment_movement(p) for p in payments),
        *(_charge_movement(c) for c in charges),
        *(_refund_movement(r) for r in refunds),
    ]
    return sorted(rows, key=lambda m: m.at, reverse=True)[:limit]


def _payment_movement(payment: Payment) -> Movement:
    assert payment.finished_at is not None
    return Movement(
        payment.finished_at,
        "pagamento",
        payment.id,
        payment.order_ref,
        payment.amount_cents,
        _refunded_note(payment.refunded_cents),
    )


def _charge_movement(charge: Charge) -> Movement:
    declined = charge.status == ChargeStatus.DECLINED
    detail = f"rifiutato: {charge.decline_code}" if declined else ""
    who = "cliente" if charge.initiator == "customer" else "esercente"
    detail = " · ".join(
        x for x in (f"avviato da {who}", detail, _refunded_note(charge.refunded_cents)) if x
    )
    return Movement(
        charge.created_at,
        "addebito",
        charge.id,
        charge.order_ref,
        0 if declined else charge.amount_cents,
        detail,
    )


def _refund_movement(row: Refund) -> Movement:
    order_ref = (row.payment or row.charge).order_ref  # type: ignore[union-attr]
    return Movement(row.created_at, "rimborso", row.id, order_ref, -row.amount_cents, row.reason)


def _refunded_note(refunded_cents: int) -> str:
    return f"rimborsato {format_eur(refunded_cents)}" if refunded_cents else ""


def stats() -> Mapping[str, int]:
    """Counters for tests: succeeded charges and authorised payments."""
    charges = db.session.scalar(
        select(func.count()).select_from(Charge).filter_by(status=ChargeStatus.SUCCEEDED)
    )
    payments = db.session.scalar(
        select(func.count()).select_from(Payment).filter_by(status=S.AUTHORISED)
    )
    return {"charges_succeeded": charges or 0, "payments_authorised": payments or 0}
