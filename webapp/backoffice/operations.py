"""What staff do to orders, payments, renewals and e-mails; each action writes its audit row.

Services flush; the view commits (refunds and bank calls in two steps, as the payments layer
asks: record, commit, ask the bank, commit).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import update

from webapp.backoffice.audit import record, snapshot
from webapp.backoffice.models import StaffUser
from webapp.clock import as_utc
from webapp.errors import InvalidChoice, InvalidTransition
from webapp.extensions import db
from webapp.outbox.models import OutboxEmail
from webapp.payments.charges import execute_card_charge
from webapp.payments.gateway import GatewayRefused, GatewayUnavailable
from webapp.payments.hosted import settle_hosted_payment
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus, Refund, RefundKind
from webapp.payments.refunds import refund_payment
from webapp.payments.transfers import record_bank_transfer
from webapp.renewals.charging import next_retry
from webapp.renewals.models import Renewal, RenewalStatus, Service
from webapp.renewals.services import settings
from webapp.shop import accounts
from webapp.shop.models import Customer
from webapp.shop.order_models import Order

PAYMENT_FIELDS = ("status", "amount_cents", "refunded_cents", "failure_code", "failure_message")
MAX_GRACE_DAYS = 30


def transfer(
    order: Order, amount_cents: int, value_date, reference: str, staff: StaffUser, rid: str, now
) -> Payment:
    """Record a bank transfer received (the order is paid: services, one e-mail)."""
    before = snapshot(order, "status", "paid_at")
    payment = record_bank_transfer(order, amount_cents, value_date, reference, now, staff.email)
    record(
        staff,
        "bonifico registrato",
        "order",
        order.id,
        before=before,
        after={
            **snapshot(order, "status", "paid_at"),
            "payment_id": payment.id,
            "amount_cents": amount_cents,
            "value_date": value_date,
            "reference": payment.transfer_reference,
        },
        reason=f"Bonifico CRO/TRN {payment.transfer_reference}",
        request_id=rid,
    )
    return payment


def request_refund(
    payment: Payment, amount_cents: int, reason: str, staff: StaffUser, rid: str, now: datetime
) -> Refund:
    """Record a refund (reserving the amount); the caller commits, then `execute`.

    What may be refunded (a captured card payment, an amount above zero and within what is
    left) is refund_payment's to say, with its reason."""
    before = snapshot(payment, *PAYMENT_FIELDS)
    kind = (
        RefundKind.DUPLICATE if payment.status is PaymentStatus.DUPLICATE else RefundKind.OPERATOR
    )
    refund = refund_payment(
        payment, amount_cents, kind=kind, reason=reason, now=now, requested_by=staff.email
    )
    record(
        staff,
        "rimborso richiesto",
        "payment",
        payment.id,
        before=before,
        after={"refund_id": refund.id, "amount_cents": amount_cents, "kind": kind},
        reason=reason,
        request_id=rid,
    )
    return refund


def settle(payment: Payment, staff: StaffUser, rid: str, now: datetime) -> Payment:
    """Ask the bank how a stuck payment ended and settle it (never charges twice)."""
    before = snapshot(payment, *PAYMENT_FIELDS)
    try:
        if payment.channel is PaymentChannel.HOSTED_PAGE and payment.gateway_ref:
            settle_hosted_payment(payment.gateway_ref, now)
        elif payment.channel is PaymentChannel.SAVED_CARD:
            execute_card_charge(payment, now)
        else:
            raise InvalidChoice(
                _("Questo pagamento lo verifica il motore dei rinnovi al prossimo passaggio.")
            )
    except (GatewayUnavailable, GatewayRefused) as exc:
        raise InvalidTransition(
            _("La banca non risponde ora (%(error)s): riprova tra poco.", error=exc)
        ) from exc
    db.session.refresh(payment)
    record(
        staff,
        "pagamento verificato con la banca",
        "payment",
        payment.id,
        before=before,
        after=snapshot(payment, *PAYMENT_FIELDS),
        request_id=rid,
    )
    return payment


def resend_email(email: OutboxEmail, staff: StaffUser, rid: str, now: datetime) -> OutboxEmail:
    """Send again: a failed one is put back in the queue; a sent one is copied (same text)."""
    before = snapshot(email, "sent_at", "attempts", "next_attempt_at", "last_error")
    if email.sent_at is None:
        email.next_attempt_at = now
        email.claimed_until = None
        target = email
    else:
        target = OutboxEmail(
            to_addr=email.to_addr,
            subject=email.subject,
            body_text=email.body_text,
            body_html=email.body_html,
            created_at=now,
            next_attempt_at=now,
        )
        db.session.add(target)
    db.session.flush()
    record(
        staff,
        "e-mail reinviata",
        "email",
        email.id,
        before=before,
        after={"outbox_id": target.id},
        request_id=rid,
    )
    return target


def extend_grace(
    renewal: Renewal, days: int, reason: str, staff: StaffUser, rid: str, now: datetime
) -> Renewal:
    """Extend the tolerance of a failed renewal by `days`.

    Meaning: the service's expiry and the open renewal's period both move `days` later, so the
    customer keeps the service while the card is retried; the retries start again from the new
    expiry (RENEWAL_RETRY_DAYS before it). When the renewal is then paid, the new period starts
    from the moved expiry (the tolerance days are a gift). Guarded UPDATEs on the old expiry
    and on the FAILED status: a renewal that moved on meanwhile is left alone.
    """
    if not 1 <= days <= MAX_GRACE_DAYS:
        raise InvalidChoice(_("Giorni di tolleranza: da 1 a %(max)d.", max=MAX_GRACE_DAYS))
    if renewal.status is not RenewalStatus.FAILED:
        raise InvalidTransition(_("Il rinnovo non è più in sollecito."))
    if renewal.claimed_until and as_utc(renewal.claimed_until) > now:
        raise InvalidTransition(_("Il rinnovo è in lavorazione ora: riprova tra qualche minuto."))
    service = renewal.service
    old = renewal.period_expires_at
    new = old + timedelta(days=days)
    before = {"expires_at": old, "next_attempt_at": renewal.next_attempt_at}
    retry_at = next_retry(new, now, settings().retry_days) or min(now + timedelta(days=1), new)
    _move_expiry(renewal, old, new, retry_at)
    db.session.refresh(service)
    db.session.refresh(renewal)
    record(
        staff,
        f"tolleranza estesa di {days} giorni",
        "service",
        service.id,
        before=before,
        after={"expires_at": new, "next_attempt_at": retry_at},
        reason=reason,
        request_id=rid,
    )
    return renewal


def _move_expiry(renewal: Renewal, old: datetime, new: datetime, retry_at: datetime) -> None:
    """Move the service's expiry and the failed renewal's period from `old` to `new`.

    Guard: two compare-and-set UPDATEs (on the old expiry, and on the FAILED status); unless
    both match, something moved meanwhile and the caller rolls back.
    """
    moved = db.session.execute(
        update(Service)
        .where(Service.id == renewal.service_id, Service.expires_at == old)
        .values(expires_at=new)
        .execution_options(synchronize_session=False)
    ).rowcount
    moved += db.session.execute(
        update(Renewal)
        .where(
            Renewal.id == renewal.id,
            Renewal.period_expires_at == old,
            Renewal.status == RenewalStatus.FAILED,
        )
        .values(period_expires_at=new, next_attempt_at=retry_at)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 2:
        raise InvalidTransition(
            _("Il servizio o il rinnovo sono cambiati nel frattempo: ricarica.")
        )


def send_account_link(
    customer: Customer, kind: str, staff: StaffUser, rid: str, now: datetime
) -> None:
    """An operator sends the customer a confirmation or password reset link (audited).

    The link goes only to the customer's address; staff never see it, nor any password.
    """
    if customer.closed_at is not None:
        raise InvalidChoice(_("L'account è chiuso."))
    if kind == "confirm":
        if customer.email_confirmed_at is not None:
            raise InvalidChoice(_("L'indirizzo e-mail è già confermato."))
        sent = accounts.send_confirmation(customer, now)
        action = "link di conferma e-mail inviato"
    else:
        sent = accounts.send_reset_link(customer, now) is not None
        action = "link di reimpostazione password inviato"
    if not sent:
        raise InvalidChoice(
            _("Un link è stato inviato meno di un minuto fa: attendi prima di inviarne un altro.")
        )
    record(staff, action, "customer", customer.id, after={"to": customer.email}, request_id=rid)
