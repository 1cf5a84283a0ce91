"""Back office work queues: duplicate and stuck payments, the dunning queue, the e-mail outbox."""

from __future__ import annotations

from flask import request
from flask_babel import gettext as _

from webapp.backoffice import operations as ops
from webapp.backoffice import queues
from webapp.backoffice.audit import record
from webapp.backoffice.blueprint import act, bp, current_staff, get_or_404, page, request_id
from webapp.backoffice.forms import parse_int, reason_of
from webapp.backoffice.order_views import order_page
from webapp.clock import format_day, now_utc
from webapp.dbtypes import MAX_ID
from webapp.extensions import db
from webapp.htmx import render
from webapp.i18n import lazy_gettext as _l
from webapp.outbox.models import OutboxEmail
from webapp.outbox.services import send_outbox
from webapp.queryargs import whole_number
from webapp.renewals.engine import RenewalOutcome, default_worker, retry_renewal
from webapp.renewals.models import Renewal
from webapp.shop.order_models import Order
from webapp.transaction import commit

RETRY_LABELS = {
    RenewalOutcome.CHARGED: _l("addebito riuscito"),
    RenewalOutcome.FAILED: _l("addebito non riuscito"),
    RenewalOutcome.UNKNOWN: _l("esito da verificare con la banca"),
    RenewalOutcome.SKIPPED: _l("già in lavorazione"),
}


@bp.get("/pagamenti/anomalie")
def list_payment_issues():
    """Duplicate captures to refund, payments stuck for over 30 minutes, one click each, and
    the bank answers that did not match ("Da verificare")."""
    duplicates, stuck = queues.payment_issues(now_utc())
    held, held_refunds = queues.to_verify()
    return page(
        "backoffice/payment_issues.html",
        duplicates=duplicates,
        stuck=stuck,
        held=held,
        held_refunds=held_refunds,
    )


def _queue_page(name: str, status: int, message: str | None, error: str | None, **queue):
    """A work queue's page, or (htmx) its fragment with the outcome of an action on one row."""
    return render(
        f"backoffice/{name}.html",
        f"backoffice/_{name}.html",
        status=status,
        message=message,
        error=error,
        **queue,
    )


def dunning_page(status: int = 200, message: str | None = None, error: str | None = None):
    return _queue_page("dunning", status, message, error, renewals=queues.dunning_queue())


@bp.get("/solleciti")
def list_dunning():
    """Failed renewals: next retry, last bank code, card; retry now or extend the tolerance."""
    return dunning_page()


@bp.post("/rinnovi/<int:renewal_id>/riprova")
def retry_now(renewal_id: int):
    """Riprova ora: the engine charges the card at once (it commits its own steps)."""
    renewal = get_or_404(Renewal, renewal_id)
    service = renewal.service
    outcome = retry_renewal(service, now_utc(), f"backoffice:{default_worker()}")
    record(
        current_staff(),
        "rinnovo riprovato ora",
        "service",
        service.id,
        after={"renewal_id": renewal.id, "outcome": outcome},
        request_id=request_id(),
    )
    commit()
    label = RETRY_LABELS.get(outcome, _l("nessun sollecito aperto"))
    return dunning_page(message=_("Rinnovo n. %(id)s: %(outcome)s.", id=renewal.id, outcome=label))


@bp.post("/rinnovi/<int:renewal_id>/tolleranza")
def extend_grace(renewal_id: int):
    """Estendi il periodo di tolleranza di N giorni (see operations.extend_grace)."""
    renewal = get_or_404(Renewal, renewal_id)
    return act(
        lambda: _extend_grace(renewal, request.form),
        lambda error: dunning_page(422, error=error),
        lambda extended: dunning_page(
            message=_(
                "Tolleranza estesa: il servizio ora scade il %(day)s.",
                day=format_day(extended.period_expires_at),
            )
        ),
    )


def _extend_grace(renewal: Renewal, form) -> Renewal:
    days = parse_int(form.get("days"), _("Giorni di tolleranza"), 1, ops.MAX_GRACE_DAYS)
    return ops.extend_grace(
        renewal, days, reason_of(form), current_staff(), request_id(), now_utc()
    )


def outbox_page(status: int = 200, message: str | None = None):
    return _queue_page("outbox", status, message, None, emails=queues.outbox_problems(now_utc()))


@bp.get("/email")
def list_outbox():
    """E-mails not sent (failed or late), each with "Reinvia"."""
    return outbox_page()


@bp.post("/email/<int:email_id>/reinvia")
def resend_email(email_id: int):
    """Send an e-mail again (a failed one now, a sent one as a copy)."""
    email = get_or_404(OutboxEmail, email_id)
    now = now_utc()
    target = ops.resend_email(email, current_staff(), request_id(), now)
    commit()
    sent = send_outbox(now=now, ids=[target.id])
    message = (
        _("E-mail inviata.") if sent else _("E-mail in coda: il server di posta non risponde.")
    )
    order_id = whole_number(request.form.get("order_id"))
    if order_id is not None and order_id <= MAX_ID and (order := db.session.get(Order, order_id)):
        return order_page(order, message=message)
    return outbox_page(message=message)
