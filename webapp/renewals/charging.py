"""Opening renewals when they enter the window, and charging them (first attempt and retries).

Each attempt is a Payment recorded and committed before the bank is asked, with an idempotency
key the bank honours; an attempt whose answer was lost is settled by asking the bank for that
key (payments' execute_card_charge), never by charging again.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import exists, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import joinedload

from webapp.clock import expiring_by, rome_date, rome_midnight
from webapp.dbtypes import UTCDateTime
from webapp.errors import InvalidTransition
from webapp.extensions import db
from webapp.i18n import lazy_gettext as _l
from webapp.payments.charges import execute_card_charge
from webapp.payments.flows import refund_held
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.renewals import notices
from webapp.renewals.claims import (
    IN_FLIGHT,
    claim,
    due_and_unclaimed,
    release,
    snapshot_ids,
    unclaim,
)
from webapp.renewals.models import (
    Renewal,
    RenewalStatus,
    Service,
    ServiceStatus,
)
from webapp.renewals.outcomes import RenewalOutcome, RenewalReport
from webapp.renewals.services import RenewalSettings, card_usable, queue_customer_email
from webapp.shop.billing import fix_buyer
from webapp.shop.models import Customer, PaymentMethod, Product, ServiceKind
from webapp.shop.order_models import Order, OrderKind, OrderLine, OrderStatus
from webapp.transaction import commit, rollback

log = logging.getLogger(__name__)

RENEWABLE_KINDS = [kind for kind in ServiceKind if kind.auto_renewable]
# An attempt needs the service (its product is always joined) and its card: one SELECT.
WITH_SERVICE_AND_CARD = [joinedload(Renewal.service).joinedload(Service.saved_card)]

# Why a renewal failed, in the customer's words, and how to fix it.
REASONS = {
    "no_card": _l("nessuna carta di pagamento valida è associata al servizio"),
    "expired_card": _l("la carta di pagamento è scaduta"),
    "insufficient_funds": _l("la carta non ha fondi sufficienti"),
    "card_declined": _l("la banca ha rifiutato l'addebito"),
    "unknown_token": _l("la carta non è più registrata presso la banca"),
    "bank_unavailable": _l("la banca non ha risposto: stiamo verificando l'esito dell'addebito"),
}
FIXES = {
    "insufficient_funds": _l(
        "Verifica la disponibilità della carta oppure aggiungi un'altra carta "
        "nell'area clienti: la useremo subito per il rinnovo."
    ),
    "bank_unavailable": _l("Non devi fare nulla: riproviamo noi e non addebitiamo mai due volte."),
}
DEFAULT_FIX = _l("Aggiungi una nuova carta nell'area clienti: la useremo subito per il rinnovo.")


def open_renewals(now: datetime, cfg: RenewalSettings, report: RenewalReport) -> None:
    """A Renewal row for each auto-renewing service that entered the window, in one statement.

    Two passes at once open each (service, period) once: the unique key and ON CONFLICT DO
    NOTHING (a row the other pass is inserting waits for its commit, then is skipped).
    """
    today = rome_date(now)
    entered = (
        select(
            Service.id,
            Service.expires_at,
            literal(RenewalStatus.PENDING, Renewal.__table__.c.status.type),
            literal(0),
            literal(now, UTCDateTime()),
            literal(now, UTCDateTime()),
        )
        .join(Product, Product.id == Service.product_id)
        .where(
            Service.status == ServiceStatus.ACTIVE,
            Service.auto_renew,
            Service.expires_at >= rome_midnight(today),  # valid through its expiry day
            Service.expires_at < expiring_by(today, cfg.window.days),
            Product.kind.in_(RENEWABLE_KINDS),  # Service.renewable, in SQL
            ~exists().where(
                Renewal.service_id == Service.id, Renewal.period_expires_at == Service.expires_at
            ),
        )
        .order_by(Service.expires_at, Service.id)
    )
    columns = [
        "service_id",
        "period_expires_at",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
    ]
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(Renewal.__table__)
        .from_select(columns, entered)
        .on_conflict_do_nothing(index_elements=["service_id", "period_expires_at"])
        .execution_options(preserve_rowcount=True)
    )
    report.opened += db.session.execute(stmt).rowcount
    commit()


def due_renewals(now: datetime, lease_now: datetime) -> array:
    """Open renewals whose attempt is due, or with a charge whose outcome is still to be asked."""
    return snapshot_ids(due_and_unclaimed(now, lease_now))


def _commit_keeping_loaded() -> None:
    """Commit, keeping this worker's objects loaded instead of reloading them at once.

    Only inside an attempt: the renewal is claimed by this worker, its order and payment are
    only written by it, and every state change after this is a compare-and-set in SQL.
    """
    session = db.session()
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        commit()
    finally:
        session.expire_on_commit = expire


def process(
    renewal_id: int,
    now: datetime,
    worker: str,
    cfg: RenewalSettings,
    lease_clock: Callable[[], datetime],
) -> RenewalOutcome:
    """Claim one renewal, attempt it, release it, commit; returns the outcome."""
    if not claim(renewal_id, worker, lease_clock(), due_at=now):
        return RenewalOutcome.SKIPPED
    return process_claimed(renewal_id, now, worker, cfg)


def process_claimed(
    renewal_id: int,
    now: datetime,
    worker: str,
    cfg: RenewalSettings,
    keep_claim: bool = False,
) -> RenewalOutcome:
    """Attempt a renewal this worker has claimed, commit; returns the outcome.

    With `keep_claim` (the batch engine) the claim is left for the caller to release: a row
    still due after this attempt (the bank did not answer) must not come back in the same pass.
    """
    try:
        renewal = db.session.get(Renewal, renewal_id, options=WITH_SERVICE_AND_CARD)
        outcome = _attempt(renewal, now, cfg)
        if not keep_claim:
            release(renewal)
        commit()
        if outcome is RenewalOutcome.FAILED:
            refund_held(renewal.order_id, now)  # money taken by an answer that did not match
    except InvalidTransition as exc:
        rollback()
        log.warning("renewal %s changed under us: %s", renewal_id, exc.message)
        if not keep_claim:
            unclaim(renewal_id, worker)
        return RenewalOutcome.SKIPPED
    except Exception:
        # Leave the claim to run out: a crash-like failure backs off by CLAIM_SECONDS.
        rollback()
        log.exception("renewal %s failed with an error", renewal_id)
        return RenewalOutcome.ERRORS
    return outcome


def in_flight_charge(renewal: Renewal) -> Payment | None:
    if renewal.order_id is None:
        return None
    return db.session.scalar(
        select(Payment)
        .where(
            Payment.order_id == renewal.order_id,
            Payment.channel == PaymentChannel.RENEWAL,
            Payment.status.in_(IN_FLIGHT),
        )
        .order_by(Payment.id.desc())
    )


def _attempt(renewal: Renewal, now: datetime, cfg: RenewalSettings) -> RenewalOutcome:
    """Charge the renewal once (or settle the attempt already under way)."""
    service = renewal.service
    payment = in_flight_charge(renewal)
    if payment is not None:
        # A timeout or a crash left this attempt open: ask the bank (same key), never a new one.
        execute_card_charge(payment, now, initiator="merchant")
        return after_charge(renewal, payment, now, cfg)
    if not renewal.open:
        return RenewalOutcome.SKIPPED
    if (
        not service.renews
        or service.expires_at != renewal.period_expires_at
        or rome_date(now) > rome_date(renewal.period_expires_at)
    ):
        renewal.next_attempt_at = None  # nothing to do until the customer turns it back on
        return RenewalOutcome.SKIPPED
    if card_usable(service.saved_card, rome_date(now)) and not notices.announce_before_charge(
        service, notices.announced_price(service, now, cfg), now, cfg
    ):
        renewal.next_attempt_at = notices.next_day(now)  # the new notice goes out first
        return RenewalOutcome.SKIPPED
    renewal.attempts += 1
    renewal.last_attempt_at = now
    card = service.saved_card
    if card is None or card.removed_at is not None:
        _failed(renewal, "no_card", now, cfg)
        return RenewalOutcome.FAILED
    if card.is_expired(rome_date(now)):
        _failed(renewal, "expired_card", now, cfg)
        return RenewalOutcome.FAILED
    order = _renewal_order(renewal, service, now, cfg)
    payment = Payment(
        order_id=order.id,
        channel=PaymentChannel.RENEWAL,
        amount_cents=order.total_cents,
        currency=order.currency,
        idempotency_key=f"renewal-{renewal.id}-{renewal.attempts}",
        saved_card_id=card.id,
        created_at=now,
    )
    db.session.add(payment)
    renewal.status = RenewalStatus.PENDING
    db.session.flush()
    _commit_keeping_loaded()  # the attempt is on record before the bank is asked
    execute_card_charge(payment, now, initiator="merchant")
    return after_charge(renewal, payment, now, cfg)


def after_charge(
    renewal: Renewal, payment: Payment, now: datetime, cfg: RenewalSettings
) -> RenewalOutcome:
    if payment.status is PaymentStatus.SUCCEEDED:
        return (
            RenewalOutcome.CHARGED
        )  # renewal_paid (via the payment settlement) extended the service
    if payment.status is PaymentStatus.UNKNOWN:
        renewal.status = RenewalStatus.PENDING
        renewal.failure_code = "bank_unavailable"
        renewal.failure_reason = _reason("bank_unavailable")
        renewal.next_attempt_at = now  # ask again at the next pass
        return RenewalOutcome.UNKNOWN
    if payment.status is PaymentStatus.TO_VERIFY:
        # The bank's answer did not match: an operator checks it; never charged again meanwhile.
        renewal.status = RenewalStatus.FAILED
        renewal.failure_code = payment.failure_code
        renewal.failure_reason = payment.failure_message
        renewal.next_attempt_at = None
        return RenewalOutcome.FAILED
    code = payment.failure_code or "card_declined"
    _failed(renewal, code, now, cfg, payment.failure_message)
    return RenewalOutcome.FAILED


def _reason(code: str, bank_message: str | None = None) -> str:
    text = REASONS.get(code) or bank_message or _("l'addebito non è riuscito")
    return text[0].upper() + text[1:] + "."


def _failed(
    renewal: Renewal,
    code: str,
    now: datetime,
    cfg: RenewalSettings,
    bank_message: str | None = None,
) -> None:
    """Record the failure, schedule the next retry, and tell the customer how to fix it."""
    renewal.status = RenewalStatus.FAILED
    renewal.failure_code = code[:40]
    renewal.failure_reason = _reason(code, bank_message)[:300]
    renewal.next_attempt_at = next_retry(renewal.period_expires_at, now, cfg.retry_days)
    service = renewal.service
    queue_customer_email(
        service,
        _("Rinnovo non riuscito: %(name)s", name=service.product.name),
        "renewal_failed",
        dedupe_key=f"renewal-failed-{renewal.id}-{renewal.attempts}",
        renewal=renewal,
        reason=renewal.failure_reason,
        fix=FIXES.get(code, DEFAULT_FIX),
        card=service.saved_card,
        price=notices.announced_price(service, now, cfg),
    )


def next_retry(
    period_expires_at: datetime, now: datetime, retry_days: tuple[int, ...]
) -> datetime | None:
    """The first retry day (days before the expiry day, from its first instant in Italy) after
    now, or None when none is left."""
    expiry_day = rome_date(period_expires_at)
    points = sorted(rome_midnight(expiry_day - timedelta(days=d)) for d in retry_days)
    return next((p for p in points if p > now), None)


def _renewal_order(
    renewal: Renewal, service: Service, now: datetime, cfg: RenewalSettings
) -> Order:
    """The renewal's order, priced now: list price x frequency + VAT, without any discount."""
    price = notices.announced_price(service, now, cfg)  # what the customer was told
    order = renewal.order
    if order is None:
        order = Order(
            customer_id=service.customer_id,
            kind=OrderKind.RENEWAL,
            payment_method=PaymentMethod.CARD,
            created_at=now,
        )
        order.lines.append(OrderLine(service_id=service.id))
        db.session.add(order)
    elif order.status is not OrderStatus.PENDING_PAYMENT:
        raise InvalidTransition("L'ordine di rinnovo non è più pagabile.")
    # A retry takes today's price and frequency: nothing of the earlier attempts was paid.
    product = service.product
    line = order.lines[0]
    line.product_id = product.id
    line.product_name = product.name
    line.kind = product.kind
    line.years = price.years
    line.yearly_price_cents = price.net_cents // price.years
    line.list_cents = line.net_cents = price.net_cents
    line.discount_cents = 0
    line.auto_renew = True
    order.subtotal_cents = order.net_cents = price.net_cents
    order.discount_cents = 0
    order.discount_code = None
    order.vat_cents = price.vat_cents
    order.total_cents = price.total_cents
    fix_buyer(order, db.session.get(Customer, service.customer_id))
    order.split_payment = price.split_payment
    db.session.flush()
    renewal.order_id = order.id
    renewal.order = order
    return order
