"""The renewal engine: one pass reminds, charges due renewals, retries, and expires unpaid services.

The scheduler, the `flask renewals run` command, the customer area and the tests all call
`run_renewals` (or `retry_renewal`). A pass is safe to run twice at once or again after a crash:
- one Renewal row per (service, period), unique in the database;
- a worker claims a row (a guarded UPDATE) before touching it, and commits once per service;
- each charge attempt is a Payment whose idempotency key the bank honours, recorded before the
  bank is asked; one whose outcome is unknown is resolved by asking the bank for that key;
- reminders and warnings carry an outbox dedupe key, so a rerun never sends them twice.
"""

from __future__ import annotations

import logging
import os
import socket
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Select, exists, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from webapp.clock import format_day, now_utc, rome_date
from webapp.dbtypes import UTCDateTime
from webapp.errors import InvalidTransition
from webapp.extensions import db
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.payments.services import execute_card_charge
from webapp.renewals.models import (
    OPEN_RENEWAL_STATUSES,
    Renewal,
    RenewalStatus,
    Service,
    ServiceStatus,
)
from webapp.renewals.services import (
    RENEWAL_TRANSITIONS,
    RenewalSettings,
    card_usable,
    queue_customer_email,
    renewal_price,
    settings,
)
from webapp.shop.models import (
    Order,
    OrderKind,
    OrderLine,
    OrderStatus,
    PaymentMethod,
    Product,
    ServiceKind,
)
from webapp.shop.services import cancel_order
from webapp.statemachine import transition
from webapp.transaction import commit, rollback

log = logging.getLogger(__name__)

# A claim outlives any bank call (timeouts are seconds); a crashed worker's claim runs out.
# RENEWAL_CLAIM_SECONDS in the config overrides it (tests of a killed worker set it short).
CLAIM_SECONDS = 300
IN_FLIGHT = (PaymentStatus.PENDING, PaymentStatus.UNKNOWN)
RENEWABLE_KINDS = [kind for kind in ServiceKind if kind.auto_renewable]
ID_BATCH = 5000  # due ids are read from the database this many at a time
# An attempt needs the service (its product is always joined) and its card: one SELECT.
WITH_SERVICE_AND_CARD = [joinedload(Renewal.service).joinedload(Service.saved_card)]

# A charge of the renewal's order whose outcome is still to be asked.
_IN_FLIGHT = exists().where(
    Payment.order_id == Renewal.order_id,
    Payment.channel == PaymentChannel.RENEWAL,
    Payment.status.in_(IN_FLIGHT),
)

# Why a renewal failed, in the customer's words, and how to fix it.
REASONS = {
    "no_card": "nessuna carta di pagamento valida è associata al servizio",
    "expired_card": "la carta di pagamento è scaduta",
    "insufficient_funds": "la carta non ha fondi sufficienti",
    "card_declined": "la banca ha rifiutato l'addebito",
    "unknown_token": "la carta non è più registrata presso la banca",
    "bank_unavailable": "la banca non ha risposto: stiamo verificando l'esito dell'addebito",
}
FIXES = {
    "insufficient_funds": "Verifica la disponibilità della carta oppure aggiungi un'altra carta "
    "nell'area clienti: la useremo subito per il rinnovo.",
    "bank_unavailable": "Non devi fare nulla: riproviamo noi e non addebitiamo mai due volte.",
}
DEFAULT_FIX = "Aggiungi una nuova carta nell'area clienti: la useremo subito per il rinnovo."


@dataclass
class RenewalReport:
    """What one pass did."""

    reminders: int = 0
    warnings: int = 0
    opened: int = 0
    charged: int = 0
    failed: int = 0
    unknown: int = 0
    expired: int = 0
    skipped: int = 0
    errors: int = 0

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def __str__(self) -> str:
        return (
            f"promemoria {self.reminders}, avvisi carta {self.warnings}, "
            f"rinnovi aperti {self.opened}, addebitati {self.charged}, "
            f"non riusciti {self.failed}, esito da verificare {self.unknown}, "
            f"scaduti {self.expired}, saltati {self.skipped}, errori {self.errors}"
        )


def default_worker() -> str:
    """A name for this process in claims: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_renewals(
    now: datetime, worker: str | None = None, lease_clock: Callable[[], datetime] = now_utc
) -> RenewalReport:
    """One pass as of `now`: reminders, new renewals, due charges and retries, expiries.

    `now` is the business date (the CLI may travel in time); claims are leases on the real
    clock (`lease_clock`), so a time-travelling run still respects a running scheduler.
    """
    worker = worker or default_worker()
    s = settings()
    report = RenewalReport()
    _send_reminders(now, s, report)
    _open_renewals(now, s, report)
    for renewal_id in _due_renewals(now, lease_clock()):
        report.count(_process(renewal_id, now, worker, s, lease_clock))
    for service_id in _expired_services(now):
        report.count(_expire(service_id, now, worker, s, lease_clock))
    return report


def retry_renewal(
    service: Service,
    now: datetime,
    worker: str | None = None,
    lease_clock: Callable[[], datetime] = now_utc,
) -> str | None:
    """Retry a failed renewal at once (the customer fixed the card); None if none is open.

    Commits. Returns the outcome: charged, failed, unknown or skipped.
    """
    renewal = db.session.scalar(
        select(Renewal).where(
            Renewal.service_id == service.id,
            Renewal.period_expires_at == service.expires_at,
            Renewal.status == RenewalStatus.FAILED,
        )
    )
    if renewal is None:
        return None
    # Guard: a compare-and-set on the failure this request saw (status and attempt count). A
    # twin (the same card return twice) that attempted it meanwhile has moved them: this one
    # then leaves the row alone instead of making it due again for a second attempt.
    retried = db.session.execute(
        update(Renewal)
        .where(
            Renewal.id == renewal.id,
            Renewal.status == RenewalStatus.FAILED,
            Renewal.attempts == renewal.attempts,
        )
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    commit()
    if retried != 1:
        return "skipped"
    return _process(renewal.id, now, worker or default_worker(), settings(), lease_clock)


# --- claims --------------------------------------------------------------------------------------


def _claim(
    renewal_id: int, worker: str, lease_now: datetime, due_at: datetime | None = None
) -> bool:
    """Take the row for this worker unless another holds a live claim; commits.

    With `due_at`, the row is taken only if an attempt is still due then (or a charge is in
    flight): the id list was read before, and a twin pass may have attempted it since. This
    compare-and-set is what makes a second scheduler on a retry day harmless.
    """
    seconds = current_app.config.get("RENEWAL_CLAIM_SECONDS", CLAIM_SECONDS)
    still_due = (
        [
            Renewal.status.in_(OPEN_RENEWAL_STATUSES),
            or_(Renewal.next_attempt_at <= due_at, _IN_FLIGHT),
        ]
        if due_at is not None
        else []
    )
    claimed = db.session.execute(
        update(Renewal)
        .where(
            Renewal.id == renewal_id,
            or_(Renewal.claimed_until.is_(None), Renewal.claimed_until < lease_now),
            *still_due,
        )
        .values(claimed_until=lease_now + timedelta(seconds=seconds), claimed_by=worker)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


def _release(renewal: Renewal) -> None:
    renewal.claimed_until = None
    renewal.claimed_by = None


def _unclaim(renewal_id: int, worker: str) -> None:
    """Give the row back after a rolled-back attempt (only if this worker still holds it)."""
    db.session.execute(
        update(Renewal)
        .where(Renewal.id == renewal_id, Renewal.claimed_by == worker)
        .values(claimed_until=None, claimed_by=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


# --- reminders -----------------------------------------------------------------------------------


def _send_reminders(now: datetime, s: RenewalSettings, report: RenewalReport) -> None:
    """Before the window opens: the amount, the card and how to turn it off; and a card warning."""
    service_ids = _ids(
        select(Service.id)
        .where(
            Service.status == ServiceStatus.ACTIVE,
            Service.auto_renew,
            Service.expires_at > now + s.window,
            Service.expires_at <= now + s.reminder,
        )
        .order_by(Service.id)
    )
    for service_id in service_ids:
        service = db.session.get(Service, service_id)  # each commit below expires it anyway
        if service is None or not service.renewable:
            continue
        period = int(service.expires_at.timestamp())
        renew_on = service.expires_at - s.window
        card = service.saved_card
        price = renewal_price(service, s.vat_rate)
        try:
            sent = queue_customer_email(
                service,
                f"Promemoria: il {format_day(renew_on)} rinnoviamo {service.product.name}",
                "renewal_reminder",
                dedupe_key=f"reminder-{service.id}-{period}",
                price=price,
                card=card,
                renew_on=renew_on,
            )
            report.reminders += sent is not None
            if not card_usable(card, rome_date(renew_on)):
                sent = queue_customer_email(
                    service,
                    f"La carta per il rinnovo di {service.product.name} sarà scaduta",
                    "card_expiring",
                    dedupe_key=f"card-expiring-{service.id}-{period}",
                    price=price,
                    card=card,
                    renew_on=renew_on,
                )
                report.warnings += sent is not None
            commit()
        except IntegrityError:
            rollback()  # another pass queued the same reminder first


# --- opening and charging renewals ---------------------------------------------------------------


def _open_renewals(now: datetime, s: RenewalSettings, report: RenewalReport) -> None:
    """A Renewal row for each auto-renewing service that entered the window, in one statement.

    Two passes at once open each (service, period) once: the unique key and ON CONFLICT DO
    NOTHING (a row the other pass is inserting waits for its commit, then is skipped).
    """
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
            Service.expires_at > now,
            Service.expires_at <= now + s.window,
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
    db.session.commit()


def _due_renewals(now: datetime, lease_now: datetime) -> array:
    """Open renewals whose attempt is due, or with a charge whose outcome is still to be asked."""
    return _ids(
        select(Renewal.id)
        .where(
            Renewal.status.in_(OPEN_RENEWAL_STATUSES),
            or_(Renewal.next_attempt_at <= now, _IN_FLIGHT),
            or_(Renewal.claimed_until.is_(None), Renewal.claimed_until < lease_now),
        )
        .order_by(Renewal.next_attempt_at, Renewal.id)
    )


def _ids(stmt: Select) -> array:
    """The ids a query selects, read in batches into a compact array; ends the read transaction.

    The pass works on this snapshot, one id at a time: 8 bytes per id, no objects held.
    """
    ids = array("q")
    for batch in db.session.scalars(stmt.execution_options(yield_per=ID_BATCH)).partitions():
        ids.extend(batch)
    db.session.commit()  # before claiming
    return ids


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


def _process(
    renewal_id: int,
    now: datetime,
    worker: str,
    s: RenewalSettings,
    lease_clock: Callable[[], datetime],
) -> str:
    """Claim one renewal, attempt it, release it, commit; returns the outcome."""
    if not _claim(renewal_id, worker, lease_clock(), due_at=now):
        return "skipped"
    try:
        renewal = db.session.get(Renewal, renewal_id, options=WITH_SERVICE_AND_CARD)
        outcome = _attempt(renewal, now, s)
        _release(renewal)
        commit()
    except InvalidTransition as exc:
        rollback()
        log.warning("renewal %s changed under us: %s", renewal_id, exc.message)
        _unclaim(renewal_id, worker)
        return "skipped"
    except Exception:
        # Leave the claim to run out: a crash-like failure backs off by CLAIM_SECONDS.
        rollback()
        log.exception("renewal %s failed with an error", renewal_id)
        return "errors"
    return outcome


def _in_flight(renewal: Renewal) -> Payment | None:
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


def _attempt(renewal: Renewal, now: datetime, s: RenewalSettings) -> str:
    """Charge the renewal once (or settle the attempt already under way)."""
    service = renewal.service
    payment = _in_flight(renewal)
    if payment is not None:
        # A timeout or a crash left this attempt open: ask the bank (same key), never a new one.
        execute_card_charge(payment, now, initiator="merchant")
        return _after_charge(renewal, payment, now, s)
    if not renewal.open:
        return "skipped"
    if (
        not service.renews
        or service.expires_at != renewal.period_expires_at
        or now >= renewal.period_expires_at
    ):
        renewal.next_attempt_at = None  # nothing to do until the customer turns it back on
        return "skipped"
    renewal.attempts += 1
    renewal.last_attempt_at = now
    card = service.saved_card
    if card is None or card.removed_at is not None:
        _failed(renewal, "no_card", now, s)
        return "failed"
    if card.is_expired(rome_date(now)):
        _failed(renewal, "expired_card", now, s)
        return "failed"
    order = _renewal_order(renewal, service, now, s)
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
    return _after_charge(renewal, payment, now, s)


def _after_charge(renewal: Renewal, payment: Payment, now: datetime, s: RenewalSettings) -> str:
    if payment.status is PaymentStatus.SUCCEEDED:
        return "charged"  # renewal_paid (via the payment settlement) extended the service
    if payment.status is PaymentStatus.UNKNOWN:
        renewal.status = RenewalStatus.PENDING
        renewal.failure_code = "bank_unavailable"
        renewal.failure_reason = _reason("bank_unavailable")
        renewal.next_attempt_at = now  # ask again at the next pass
        return "unknown"
    code = payment.failure_code or "card_declined"
    _failed(renewal, code, now, s, payment.failure_message)
    return "failed"


def _reason(code: str, bank_message: str | None = None) -> str:
    text = REASONS.get(code) or bank_message or "l'addebito non è riuscito"
    return text[0].upper() + text[1:] + "."


def _failed(
    renewal: Renewal, code: str, now: datetime, s: RenewalSettings, bank_message: str | None = None
) -> None:
    """Record the failure, schedule the next retry, and tell the customer how to fix it."""
    renewal.status = RenewalStatus.FAILED
    renewal.failure_code = code[:40]
    renewal.failure_reason = _reason(code, bank_message)[:300]
    renewal.next_attempt_at = next_retry(renewal.period_expires_at, now, s.retry_days)
    service = renewal.service
    queue_customer_email(
        service,
        f"Rinnovo non riuscito: {service.product.name}",
        "renewal_failed",
        dedupe_key=f"renewal-failed-{renewal.id}-{renewal.attempts}",
        renewal=renewal,
        reason=renewal.failure_reason,
        fix=FIXES.get(code, DEFAULT_FIX),
        card=service.saved_card,
        price=renewal_price(service, s.vat_rate),
    )


def next_retry(
    period_expires_at: datetime, now: datetime, retry_days: tuple[int, ...]
) -> datetime | None:
    """The first retry point (days before expiry) after now, or None when none is left."""
    points = sorted(period_expires_at - timedelta(days=d) for d in retry_days)
    return next((p for p in points if p > now), None)


def _renewal_order(renewal: Renewal, service: Service, now: datetime, s: RenewalSettings) -> Order:
    """The renewal's order, priced now: list price x frequency + VAT, without any discount."""
    price = renewal_price(service, s.vat_rate)
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
    line.yearly_price_cents = product.yearly_price_cents
    line.list_cents = line.net_cents = price.net_cents
    line.discount_cents = 0
    line.auto_renew = True
    order.subtotal_cents = order.net_cents = price.net_cents
    order.discount_cents = 0
    order.discount_code = None
    order.vat_cents = price.vat_cents
    order.total_cents = price.total_cents
    db.session.flush()
    renewal.order_id = order.id
    renewal.order = order
    return order


# --- expiry --------------------------------------------------------------------------------------


def _expired_services(now: datetime) -> array:
    return _ids(
        select(Service.id)
        .where(Service.status == ServiceStatus.ACTIVE, Service.expires_at <= now)
        .order_by(Service.expires_at, Service.id)
    )


def _expire(
    service_id: int,
    now: datetime,
    worker: str,
    s: RenewalSettings,
    lease_clock: Callable[[], datetime],
) -> str:
    """The expiry passed unpaid: the service expires and auto-renewal stops, with an e-mail."""
    service = db.session.get(Service, service_id)
    period = service.expires_at
    renewal = db.session.scalar(
        select(Renewal).where(Renewal.service_id == service.id, Renewal.period_expires_at == period)
    )
    renewal_id = renewal.id if renewal is not None else None
    if renewal_id is not None and not _claim(renewal_id, worker, lease_clock()):
        return "skipped"
    try:
        outcome = _expire_claimed(service, renewal, period, now, s)
        if renewal is not None:
            _release(renewal)
        commit()
    except InvalidTransition as exc:
        rollback()
        log.warning("service %s changed under us: %s", service_id, exc.message)
        if renewal_id is not None:
            _unclaim(renewal_id, worker)
        return "skipped"
    except Exception:
        rollback()
        log.exception("expiring service %s failed with an error", service_id)
        return "errors"
    return outcome


def _expire_claimed(
    service: Service, renewal: Renewal | None, period: datetime, now: datetime, s: RenewalSettings
) -> str:
    if renewal is not None:
        payment = _in_flight(renewal)
        if payment is not None:
            # Paid or not? Ask before expiring; an unknown outcome keeps the service for now.
            execute_card_charge(payment, now, initiator="merchant")
            outcome = _after_charge(renewal, payment, now, s)
            if outcome != "failed":
                return outcome
        if renewal.status is RenewalStatus.SUCCEEDED:
            return "skipped"
        transition(
            renewal,
            RenewalStatus.ABANDONED,
            RENEWAL_TRANSITIONS,
            "Rinnovo già concluso.",
            next_attempt_at=None,
            completed_at=now,
        )
        order = renewal.order
        if order is not None and order.status is OrderStatus.PENDING_PAYMENT:
            cancel_order(order, now)
    was_renewing = service.auto_renew
    moved = db.session.execute(
        update(Service)
        .where(
            Service.id == service.id,
            Service.status == ServiceStatus.ACTIVE,
            Service.expires_at == period,
        )
        .values(status=ServiceStatus.EXPIRED, auto_renew=False)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise InvalidTransition("Servizio già rinnovato o scaduto.")
    db.session.refresh(service)
    queue_customer_email(
        service,
        f"Servizio scaduto: {service.product.name}",
        "service_expired",
        dedupe_key=f"expired-{service.id}-{int(period.timestamp())}",
        expired_at=period,
        was_renewing=was_renewing,
        reason=renewal.failure_reason if renewal is not None else None,
    )
    return "expired"
