"""One check of the bank's answer before the shop acts on it.

Every place that acts on what the bank says calls this module first: the hosted page's return
and notification (`services.settle_hosted_payment`), a saved-card charge and a renewal charge
(`services.apply_charge_result`, and the renewal batch's `_paid`), a refund
(`refunds.execute_refund`). The answer must carry the amount, currency, reference (the order,
or for a refund the refunded payment) and merchant that were asked, and a final state.

When it does not, nothing is marked paid or refunded: `hold` moves the payment to TO_VERIFY
("Da verificare" in the back office, with what differed), records a refund of whatever money
the bank says it took (executed at once by the caller, after its commit: the key is one per
payment, so a rerun never refunds twice) and logs an error. `hold_refund` does the same for a
refund: TO_VERIFY, and the payment's refunded total follows what the bank says it gave back.

An answer that never came (timeout, 5xx) is not a mismatch: the caller records UNKNOWN and
looks the outcome up by idempotency key (`gateway.find_or_send`), never sends it again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import update

from webapp.extensions import db
from webapp.money import format_eur
from webapp.payments.gateway import (
    ChargeResult,
    GatewayStatus,
    PaymentStatusInfo,
    RefundResult,
)
from webapp.payments.models import Payment, PaymentStatus, Refund, RefundKind, RefundStatus
from webapp.statemachine import transition

log = logging.getLogger(__name__)

#: The failure code of a payment or refund held for an operator ("Da verificare").
TO_VERIFY_CODE = "to_verify"
#: A hosted payment the customer has not finished yet: no answer to check, nothing to do.
NOT_YET = frozenset(
    {GatewayStatus.CREATED, GatewayStatus.PENDING_CONFIRMATION, GatewayStatus.CHALLENGE}
)
#: What a final answer may say, by kind of request.
FINAL = {
    "payment": frozenset({GatewayStatus.AUTHORISED, GatewayStatus.DECLINED, GatewayStatus.FAILED}),
    "charge": frozenset({GatewayStatus.SUCCEEDED, GatewayStatus.DECLINED}),
    "refund": frozenset({GatewayStatus.SUCCEEDED}),
}


@dataclass(frozen=True)
class Answer:
    """The fields of a bank answer that must be what the shop asked for."""

    amount_cents: int
    currency: str
    reference: str | None
    merchant_id: str | None
    status: GatewayStatus | None = None  # what the bank says; a request states none


def merchant_id() -> str:
    """The merchant this shop is at the bank."""
    return current_app.config["BANK_MERCHANT_ID"]


def differences(asked: Answer, answer: Answer, final: frozenset[GatewayStatus]) -> list[str]:
    """What differs between what was asked and what the bank answered (empty: it matches)."""
    found = []
    if answer.amount_cents != asked.amount_cents:
        found.append(
            _(
                "importo: chiesto %(asked)s, la banca risponde %(answer)s",
                asked=format_eur(asked.amount_cents),
                answer=format_eur(answer.amount_cents),
            )
        )
    for label, mine, theirs in (
        (_("valuta"), asked.currency, answer.currency),
        (_("riferimento"), asked.reference, answer.reference),
        (_("esercente"), asked.merchant_id, answer.merchant_id),
    ):
        if theirs != mine:
            found.append(
                _(
                    "%(what)s: chiesto %(asked)s, la banca risponde %(answer)s",
                    what=label,
                    asked=mine,
                    answer=theirs,
                )
            )
    if answer.status not in final:
        found.append(_("stato non definitivo: %(status)s", status=answer.status.value))
    return found


def _asked(payment: Payment, order_ref: str) -> Answer:
    return Answer(payment.amount_cents, payment.currency, order_ref, merchant_id())


def payment_differences(payment: Payment, order_ref: str, info: PaymentStatusInfo) -> list[str]:
    """A hosted payment's status (return, notification, reconciliation) against the payment."""
    answer = Answer(info.amount_cents, info.currency, info.order_ref, info.merchant_id, info.status)
    found = differences(_asked(payment, order_ref), answer, FINAL["payment"])
    found += total_differences(payment, payment.order.total_cents)
    if info.payment_id != payment.gateway_ref:
        found.append(_("pagamento: la banca risponde di un altro (%(ref)s)", ref=info.payment_id))
    return found


def charge_differences(payment: Payment, order_ref: str, result: ChargeResult) -> list[str]:
    """A card charge's answer (saved card, renewal) against the payment."""
    return charge_answer_differences(
        payment.amount_cents, payment.currency, order_ref, result
    ) + total_differences(payment, payment.order.total_cents)


def total_differences(payment: Payment, total_cents: int) -> list[str]:
    """The payment must be for the order's total (VAT included), as the order says now."""
    if payment.amount_cents == total_cents:
        return []
    return [
        _(
            "totale dell'ordine: %(total)s, il pagamento era di %(amount)s",
            total=format_eur(total_cents),
            amount=format_eur(payment.amount_cents),
        )
    ]


def charge_answer_differences(
    amount_cents: int, currency: str, order_ref: str, result: ChargeResult
) -> list[str]:
    """A card charge's answer against the charge asked (the renewal batch has no model)."""
    asked = Answer(amount_cents, currency, order_ref, merchant_id())
    answer = Answer(
        result.amount_cents, result.currency, result.order_ref, result.merchant_id, result.status
    )
    return differences(asked, answer, FINAL["charge"])


def refund_differences(refund: Refund, result: RefundResult) -> list[str]:
    """A refund's answer against the refund asked (of this payment, this amount)."""
    asked = Answer(refund.amount_cents, refund.currency, refund.payment.gateway_ref, merchant_id())
    answer = Answer(
        result.amount_cents, result.currency, result.payment_ref, result.merchant_id, result.status
    )
    return differences(asked, answer, FINAL["refund"])


def money_taken(status: GatewayStatus, amount_cents: int) -> int:
    """What the bank says it took with this answer (an authorised payment or succeeded charge)."""
    taken = status in (GatewayStatus.AUTHORISED, GatewayStatus.SUCCEEDED)
    return amount_cents if taken else 0


def hold(
    payment: Payment,
    found: list[str],
    *,
    taken_cents: int,
    currency: str,
    now: datetime,
    allowed: Mapping,
) -> Refund | None:
    """Nothing paid: the payment is "Da verificare" and the money taken is refunded at once.

    Guard: the payment's compare-and-set to TO_VERIFY (one winner records the refund), and the
    refund's idempotency key, one per payment (unique; the bank replays it, never twice).
    Returns the recorded refund (the caller commits, then executes it), or None.
    """
    what = "; ".join(found)
    log.error("bank answer for payment %s does not match: %s", payment.id, what)
    transition(
        payment,
        PaymentStatus.TO_VERIFY,
        allowed,
        _("Pagamento già concluso."),
        failure_code=TO_VERIFY_CODE,
        failure_message=_("Da verificare: %(what)s", what=what)[:300],
        completed_at=now,
    )
    if taken_cents <= 0 or not payment.gateway_ref:
        return None
    refund = Refund(
        payment_id=payment.id,
        kind=RefundKind.MISMATCH,
        amount_cents=taken_cents,
        currency=currency,
        reason=_("Esito della banca non coerente con il pagamento: importo restituito."),
        idempotency_key=f"mismatch-{payment.id}",
        created_at=now,
    )
    db.session.add(refund)
    payment.refunded_cents = taken_cents
    db.session.flush()
    return refund


def hold_refund(
    refund: Refund, result: RefundResult, found: list[str], now: datetime, allowed: Mapping
) -> None:
    """Not refunded: the refund is "Da verificare", and the payment's refunded total is what the
    bank says it gave back (when the answer is about this payment, in its currency)."""
    what = "; ".join(found)
    log.error("bank answer for refund %s does not match: %s", refund.id, what)
    transition(
        refund,
        RefundStatus.TO_VERIFY,
        allowed,
        _("Rimborso già concluso."),
        gateway_ref=result.refund_id,
        failure_code=TO_VERIFY_CODE,
        failure_message=_("Da verificare: %(what)s", what=what)[:300],
        completed_at=now,
    )
    payment = refund.payment
    if (result.payment_ref, result.currency) == (payment.gateway_ref, payment.currency):
        given = result.amount_cents if result.status is GatewayStatus.SUCCEEDED else 0
        db.session.execute(
            update(Payment)
            .where(Payment.id == payment.id)
            .values(refunded_cents=Payment.refunded_cents + (given - refund.amount_cents))
            .execution_options(synchronize_session=False)
        )
        db.session.refresh(payment)
