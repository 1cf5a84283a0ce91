"""Which e-mail each domain event sends: one per event, written in the event's transaction.

A dedupe key per event makes "one e-mail" a database rule (a replayed event queues nothing).
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from flask_babel import gettext
from sqlalchemy.orm import Session

from webapp.clock import format_day
from webapp.extensions import db
from webapp.invoicing.services import invoice_of_order, issue_credit_note, issue_invoice
from webapp.money import format_eur
from webapp.outbox.services import queue_email, queue_template_emails, register_context_loader
from webapp.payments.events import payment_refunded
from webapp.payments.models import Payment, Refund, SavedCard
from webapp.renewals.cancellation import services_stopped_by
from webapp.renewals.events import (
    RenewedService,
    service_renewed,
    services_activated,
    services_renewed,
)
from webapp.renewals.models import Renewal, Service
from webapp.renewals.services import queue_customer_email
from webapp.shop.models import Customer
from webapp.shop.order_models import Order


@services_activated.connect
def send_payment_confirmation(
    order: Order,
    *,
    payment: Payment,
    card: SavedCard | None,
    services: list[Service],
    now: datetime,
    **_,
) -> None:
    """Conferma pagamento: the order, and the activation of Rinnovo automatico per service."""
    customer = db.session.get(Customer, order.customer_id)
    shop_url = current_app.config["SHOP_BASE_URL"]
    queue_email(
        customer.email,
        gettext("Conferma pagamento ordine %(number)s", number=order.number),
        "payment_confirmation",
        dedupe_key=f"order-paid-{order.id}",
        customer=customer,
        order=order,
        card=card,
        services=services,
        renewing=[s for s in services if s.auto_renew],
        shop_url=shop_url,
        **_invoice_link(order, payment, now, shop_url),
    )


def _invoice_link(order: Order, payment: Payment, now: datetime, shop_url: str) -> dict:
    """The order's invoice for the e-mail. The receivers of order_paid run in no set order, so
    this takes it through invoicing's idempotent issue (the invoicing receiver finds it then)."""
    invoice = issue_invoice(order, payment, now)
    return {"invoice": invoice, "invoice_url": f"{shop_url}/area-clienti/fatture/{invoice.id}"}


@service_renewed.connect
def send_renewal_receipt(
    service: Service,
    *,
    renewal: Renewal,
    order: Order,
    payment: Payment,
    old_expiry: datetime,
    new_expiry: datetime,
    now: datetime,
    **_,
) -> None:
    """Rinnovo effettuato: the new expiry, the amount, the card charged and the invoice."""
    shop_url = current_app.config["SHOP_BASE_URL"]
    queue_customer_email(
        service,
        gettext(
            "Rinnovo effettuato: %(name)s fino al %(day)s",
            name=service.product.name,
            day=format_day(new_expiry),
        ),
        "renewal_succeeded",
        dedupe_key=f"renewal-paid-{renewal.id}",
        order=order,
        payment=payment,
        card=payment.saved_card,
        old_expiry=old_expiry,
        new_expiry=new_expiry,
        **_invoice_link(order, payment, now, shop_url),
    )


@services_renewed.connect
def send_renewal_receipts(_sender, *, renewed: list[RenewedService], **_) -> None:
    """The same receipts for a batch of renewals: one INSERT, rendered when sent.

    The dedupe key is the per-service receipt's, so a renewal gets one receipt whichever way
    it was settled.
    """
    queue_template_emails(
        [
            dict(
                to_addr=r.customer_email,
                subject=gettext(
                    "Rinnovo effettuato: %(name)s fino al %(day)s",
                    name=r.product_name,
                    day=format_day(r.new_expiry),
                )[:200],
                template="renewal_succeeded",
                dedupe_key=f"renewal-paid-{r.renewal_id}",
                context=dict(
                    service_id=r.service_id,
                    order_id=r.order_id,
                    payment_id=r.payment_id,
                    old_expiry=r.old_expiry.isoformat(),
                    new_expiry=r.new_expiry.isoformat(),
                ),
            )
            for r in renewed
        ]
    )


def _renewal_receipt_context(session: Session, stored: dict) -> dict:
    """send_renewal_receipt's context, rebuilt at send time from the ids stored in the outbox.

    The batch issued the order's invoice in the same commit as the receipt: it is linked too.
    """
    service = session.get(Service, stored["service_id"])
    payment = session.get(Payment, stored["payment_id"])
    shop_url = current_app.config["SHOP_BASE_URL"]
    invoice = invoice_of_order(stored["order_id"], session)
    return dict(
        invoice=invoice,
        invoice_url=f"{shop_url}/area-clienti/fatture/{invoice.id}" if invoice else None,
        customer=session.get(Customer, service.customer_id),
        service=service,
        shop_url=shop_url,
        area_url=f"{shop_url}/area-clienti",
        cards_url=f"{shop_url}/area-clienti/carte",
        order=session.get(Order, stored["order_id"]),
        payment=payment,
        card=payment.saved_card,
        old_expiry=datetime.fromisoformat(stored["old_expiry"]),
        new_expiry=datetime.fromisoformat(stored["new_expiry"]),
    )


register_context_loader("renewal_succeeded", _renewal_receipt_context)


@payment_refunded.connect
def send_refund_notice(refund: Refund, *, payment: Payment, now: datetime, **_) -> None:
    """Rimborso: the amount, the card it goes back to, the date, the services it stopped and
    the credit note, once per refund. The receivers of payment_refunded run in no set order:
    the credit note comes through invoicing's idempotent issue, the services from a predicate
    that reads the same before and after their cancellation."""
    order = payment.order
    customer = db.session.get(Customer, order.customer_id)
    shop_url = current_app.config["SHOP_BASE_URL"]
    note = issue_credit_note(refund, now)
    queue_email(
        customer.email,
        gettext(
            "Rimborso di %(amount)s per l'ordine %(number)s",
            amount=format_eur(refund.amount_cents),
            number=order.number,
        ),
        "refund",
        dedupe_key=f"refund-{refund.id}",
        customer=customer,
        order=order,
        refund=refund,
        card=payment.saved_card,
        stopped=services_stopped_by(payment),
        credit_note=note,
        credit_note_url=f"{shop_url}/area-clienti/fatture/{note.id}" if note else None,
        shop_url=shop_url,
    )
