"""Back office: an order with its timeline; bank transfers, refunds, payment checks, e-mails."""

from __future__ import annotations

from flask import request
from flask_babel import gettext as _

from webapp.backoffice import files
from webapp.backoffice import operations as ops
from webapp.backoffice.blueprint import act, bp, current_staff, get_or_404, page, request_id
from webapp.backoffice.forms import parse_cents, parse_day, reason_of
from webapp.clock import now_utc, rome_date
from webapp.extensions import db
from webapp.htmx import render
from webapp.money import format_eur
from webapp.payments import flows
from webapp.payments.models import Payment, Refund, RefundStatus
from webapp.payments.states import order_states
from webapp.payments.withdrawal import withdrawal_deadline, withdrawal_refusal
from webapp.renewals.lifecycle import life_of
from webapp.shop.models import Customer
from webapp.shop.order_models import Order


def order_page(
    order: Order, status: int = 200, message: str | None = None, error: str | None = None
):
    """The order page, or (htmx) its #order-file fragment with the outcome of an action."""
    file = files.order_file(order)
    now = now_utc()
    customer = db.session.get(Customer, order.customer_id)
    return render(
        "backoffice/order.html",
        "backoffice/_order_file.html",
        status=status,
        f=file,
        state=order_states([order])[order.id],
        # "Recesso possibile" only while it can be used (consumer, in time, not yet refunded).
        deadline=withdrawal_deadline(order)
        if withdrawal_refusal(order, customer, now) is None
        else None,
        message=message,
        error=error,
        today=now_utc().date().isoformat(),
    )


@bp.get("/ordini/<int:order_id>")
def view_order(order_id: int):
    """The order: lines, payments, refunds, services, e-mails and staff actions on a timeline."""
    return order_page(get_or_404(Order, order_id))


@bp.post("/ordini/<int:order_id>/bonifico")
def record_transfer(order_id: int):
    """A bank transfer received: amount, value date, CRO/TRN → the order is paid."""
    order = get_or_404(Order, order_id)
    return act(
        lambda: _record_transfer(order, request.form),
        lambda error: order_page(order, 422, error=error),
        lambda _payment: order_page(
            order, message=_("Bonifico registrato: ordine pagato, servizi attivati.")
        ),
    )


def _record_transfer(order: Order, form) -> Payment:
    amount = parse_cents(form.get("amount"), _("Importo del bonifico"))
    value_date = parse_day(form.get("value_date"), _("Data valuta"))
    return ops.transfer(
        order,
        amount,
        value_date,
        form.get("reference", ""),
        current_staff(),
        request_id(),
        now_utc(),
    )


@bp.post("/pagamenti/<int:payment_id>/rimborso")
def refund_payment(payment_id: int):
    """A full or partial refund of a card payment, with the reason (one e-mail to the customer)."""
    payment = get_or_404(Payment, payment_id)
    return act(
        lambda: _request_refund(payment, request.form),
        lambda error: order_page(payment.order, 422, error=error),
        lambda refund: _refund_outcome(payment.order, flows.run_refund(refund.id, now_utc())),
    )


def _request_refund(payment: Payment, form) -> Refund:
    amount = parse_cents(form.get("amount"), _("Importo del rimborso"))
    return ops.request_refund(
        payment, amount, reason_of(form), current_staff(), request_id(), now_utc()
    )


def _refund_outcome(order: Order, refund: Refund):
    """The refund was recorded and committed, then the bank asked: what it answered."""
    if refund.status is RefundStatus.SUCCEEDED:
        return order_page(
            order,
            message=_("Rimborso di %(amount)s eseguito.", amount=format_eur(refund.amount_cents)),
        )
    return order_page(
        order,
        422,
        error=_(
            "Rimborso non eseguito dalla banca: %(reason)s.",
            reason=refund.failure_message or refund.status.value,
        ),
    )


@bp.post("/pagamenti/<int:payment_id>/verifica")
def settle_payment(payment_id: int):
    """Ask the bank how a stuck payment ended (never a second charge)."""
    payment = get_or_404(Payment, payment_id)
    return act(
        lambda: ops.settle(payment, current_staff(), request_id(), now_utc()),
        lambda error: order_page(payment.order, 422, error=error),
        lambda settled: order_page(
            settled.order,
            message=_(
                "Pagamento n. %(id)s: %(label)s.",
                id=settled.id,
                label=files.PAYMENT_LABELS[settled.status],
            ),
        ),
    )


def customer_page(customer: Customer, status: int = 200, **context):
    file = files.customer_file(customer)
    today = rome_date(now_utc())
    lives = {s.id: life_of(s, today) for s in file.services}  # "Attivo" … "Cessato"
    return page("backoffice/customer.html", status, c=file, lives=lives, **context)


@bp.get("/clienti/<int:customer_id>")
def view_customer(customer_id: int):
    """A customer: details (address confirmed or not), orders, services."""
    return customer_page(get_or_404(Customer, customer_id))


@bp.post("/clienti/<int:customer_id>/conferma-email")
def resend_confirmation(customer_id: int):
    """E-mail the customer a new confirmation link (the operator never sees it)."""
    customer = get_or_404(Customer, customer_id)
    return act(
        lambda: ops.send_account_link(
            customer, "confirm", current_staff(), request_id(), now_utc()
        ),
        lambda error: customer_page(customer, 422, error=error),
        lambda _sent: customer_page(
            customer, message=_("Link di conferma inviato a %(email)s.", email=customer.email)
        ),
    )


@bp.post("/clienti/<int:customer_id>/reimposta-password")
def send_reset_link(customer_id: int):
    """E-mail the customer a password reset link: staff never see or set a password."""
    customer = get_or_404(Customer, customer_id)
    return act(
        lambda: ops.send_account_link(customer, "reset", current_staff(), request_id(), now_utc()),
        lambda error: customer_page(customer, 422, error=error),
        lambda _sent: customer_page(
            customer,
            message=_(
                "Link per reimpostare la password inviato a %(email)s.", email=customer.email
            ),
        ),
    )
