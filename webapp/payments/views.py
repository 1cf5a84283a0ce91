"""Paying an order: "Paga ora su server sicuro", the bank's return and notification, the portal."""

from __future__ import annotations

import logging
import secrets

from flask import Blueprint, abort, current_app, flash, jsonify, request, url_for
from flask_login import current_user, login_required

from webapp.clock import now_utc
from webapp.errors import DomainError, InvalidTransition, NotFound
from webapp.extensions import csrf
from webapp.htmx import redirect_to, render
from webapp.payments import services
from webapp.payments.gateway import GatewayUnavailable
from webapp.payments.models import PaymentStatus
from webapp.shop.models import OrderStatus
from webapp.shop.services import get_order
from webapp.signing import BadSignature
from webapp.transaction import commit, once_more_after_conflict, rollback

log = logging.getLogger(__name__)

bp = Blueprint("payments", __name__)
portal_bp = Blueprint("portal", __name__, url_prefix="/portale-pagamenti")


def _own_order(order_id: int):
    return get_order(order_id, current_user.id)


def _order_url(order) -> str:
    return url_for("orders.view_order", order_id=order.id)


def _to_bank(order):
    """Paths 1 and 3: create (or reuse) the hosted payment and send the browser to the bank."""
    base = current_app.config["SHOP_BASE_URL"]
    try:
        payment = services.start_hosted_payment(
            order,
            return_url=base + url_for("payments.return_from_bank"),
            notify_url=base + url_for("payments.bank_notification"),
            now=now_utc(),
        )
    except DomainError as exc:
        rollback()
        flash(exc.message, "error")
        return redirect_to(_order_url(order))
    commit()
    return redirect_to(payment.redirect_url)


@bp.post("/ordini/<int:order_id>/paga")
@login_required
def pay_order(order_id: int):
    """Paga ora su server sicuro: to the portal when there are saved cards, else to the bank."""
    order = _own_order(order_id)
    try:
        services.payable_order(order)
    except DomainError as exc:
        flash(exc.message, "info")
        return redirect_to(_order_url(order))
    if services.list_cards(current_user.id):
        return redirect_to(url_for("portal.choose_card", order_id=order.id))
    return _to_bank(order)


def _settle(gateway_ref: str):
    # The return and the notification at once: if the twin saved the same card token first,
    # ask again: the payment is final then and is returned untouched.
    return once_more_after_conflict(lambda: _settle_once(gateway_ref))


def _settle_once(gateway_ref: str):
    try:
        payment = services.settle_hosted_payment(gateway_ref, now_utc())
        commit()
        return payment
    except InvalidTransition:
        # Someone else (the notification, a second tab) settled it first: read what they wrote.
        rollback()
        return services.payment_by_ref(gateway_ref)


@bp.get("/pagamenti/ritorno")
def return_from_bank():
    """The browser comes back from the bank ("torna al negozio"): verify, then ask the bank."""
    params = request.args.to_dict()
    try:
        services.gateway().verify_return(params)
        payment = _settle(params.get("payment_id", ""))
    except (BadSignature, NotFound):
        log.warning("refused bank return with bad signature or unknown payment: %s", params)
        abort(400)
    except GatewayUnavailable:
        rollback()
        flash(
            "Non riusciamo a verificare il pagamento con la banca: riprova tra poco "
            "ricaricando questa pagina. Non è stato addebitato nulla due volte.",
            "error",
        )
        return redirect_to(url_for("shop.catalogue"))
    order = payment.order
    if payment.status is PaymentStatus.SUCCEEDED:
        flash("Pagamento riuscito: grazie! Ti abbiamo inviato una e-mail di conferma.", "success")
    elif payment.status in (PaymentStatus.DECLINED, PaymentStatus.FAILED):
        if order.status is OrderStatus.PAID:
            flash("Questo ordine risulta già pagato.", "info")
        else:
            flash(
                f"Pagamento non riuscito: {payment.failure_message} "
                "Puoi riprovare con un'altra carta.",
                "error",
            )
    else:
        flash("Il pagamento non è ancora concluso presso la banca.", "info")
    return redirect_to(_order_url(order))


@bp.post("/pagamenti/notifica")
@csrf.exempt
def bank_notification():
    """The bank's server-to-server notification: signed, and answered 2xx only once settled."""
    body = request.get_data()
    try:
        services.gateway().verify_notification(request.path, body, request.headers)
        data = request.get_json(force=True, silent=True)
        if not isinstance(data, dict):  # signed, but not what the bank sends: a list, a number
            return jsonify(error="bad_request"), 400
        _settle(str(data.get("payment_id", "")))
    except BadSignature:
        return jsonify(error="bad_signature"), 401
    except NotFound:
        return jsonify(error="unknown_payment"), 404
    except GatewayUnavailable:
        rollback()
        return jsonify(error="retry"), 503
    return jsonify(ok=True)


# --- the payment portal: saved cards (path 2) and "Nuova carta di pagamento" (path 3) ----------


NEW_CARD = "new"


def _portal(
    order,
    choice: str | None = None,
    error: str | None = None,
    status: int = 200,
    new_attempt: bool = False,
):
    today = now_utc().date()
    cards = services.list_cards(current_user.id)
    usable = {c.id for c in cards if not c.is_expired(today)}
    if choice is None:
        choice = str(next(iter(sorted(usable, reverse=True)), NEW_CARD))
    return render(
        "payments/portal.html",
        "payments/_card_picker.html",
        status=status,
        order=order,
        cards=cards,
        usable=usable,
        choice=choice,
        error=error,
        # The same form posted twice is one attempt; after a declined charge the form is new.
        attempt=(not new_attempt and request.form.get("attempt")) or secrets.token_urlsafe(16),
        new_card=NEW_CARD,
    )


@portal_bp.get("/ordini/<int:order_id>")
@login_required
def choose_card(order_id: int):
    order = _own_order(order_id)
    if order.status is not OrderStatus.PENDING_PAYMENT:
        return redirect_to(_order_url(order))
    return _portal(order)


@portal_bp.post("/ordini/<int:order_id>/scelta")
@login_required
def select_card(order_id: int):
    """The card picker: selecting an option re-renders it with what Procedi will do."""
    order = _own_order(order_id)
    choice = request.form.get("choice", NEW_CARD)
    if choice != NEW_CARD:
        try:
            services.get_card(choice, current_user.id)
        except NotFound as exc:
            return _portal(order, error=exc.message, status=422)
    return _portal(order, choice=choice)


def _record_card_payment(order, choice: str, now):
    """Put the intent on record before the bank is asked (path 2).

    The same form posted twice at once: the twin recorded it first, the second run finds it.
    """

    def record():
        payment = services.begin_saved_card_payment(
            order, current_user.id, choice, request.form.get("attempt", ""), now.date()
        )
        commit()
        return payment

    return once_more_after_conflict(record)


@portal_bp.post("/ordini/<int:order_id>/procedi")
@login_required
def proceed(order_id: int):
    order = _own_order(order_id)
    choice = request.form.get("choice", "")
    if request.form.get("amount_cents") != str(order.total_cents):
        return _portal(
            order,
            choice=choice,
            status=422,
            error="L'importo non corrisponde a quello dell'ordine: ricarica la pagina.",
        )
    if choice == NEW_CARD:
        return _to_bank(order)
    now = now_utc()
    try:
        payment = _record_card_payment(order, choice, now)
        services.execute_card_charge(payment, now)
        commit()
    except InvalidTransition as exc:
        rollback()
        flash(exc.message, "info")
        return redirect_to(_order_url(order))
    except DomainError as exc:
        rollback()
        return _portal(order, choice=choice, error=exc.message, status=422)
    if payment.status is PaymentStatus.SUCCEEDED:
        flash("Pagamento riuscito: grazie! Ti abbiamo inviato una e-mail di conferma.", "success")
        return redirect_to(_order_url(order))
    if payment.status is PaymentStatus.UNKNOWN:
        flash(
            "La banca non ha ancora confermato l'esito: lo verifichiamo noi, "
            "non ripetere il pagamento.",
            "info",
        )
        return redirect_to(_order_url(order))
    if payment.order.status is OrderStatus.PAID:
        return redirect_to(_order_url(order))
    error = f"Pagamento non riuscito: {payment.failure_message} Scegli un'altra carta."
    return _portal(order, choice=choice, status=422, error=error, new_attempt=True)
