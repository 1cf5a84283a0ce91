"""Paying an order: "Paga ora su server sicuro", the bank's return and notification, the portal.

Views only read input and turn a flow's outcome (webapp.payments.flows) into a response.
"""

from __future__ import annotations

import logging
import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from webapp.clock import now_utc, rome_date
from webapp.errors import DomainError
from webapp.extensions import csrf
from webapp.htmx import is_htmx, redirect_to, render, render_cached
from webapp.i18n import lazy_gettext as _l
from webapp.payments import cards as payments_cards
from webapp.payments import flows, payable, picker, settlement
from webapp.payments.forms import NEW_CARD, CardChoiceForm, ProceedForm
from webapp.payments.gateway import GatewayUnavailable
from webapp.payments.models import SavedCard
from webapp.shop.order_models import Order, OrderStatus
from webapp.shop.orders import get_order
from webapp.signing import BadSignature

log = logging.getLogger(__name__)

bp = Blueprint("payments", __name__)
portal_bp = Blueprint("portal", __name__, url_prefix="/portale-pagamenti")

BANK_UNREACHABLE = _l(
    "Non riusciamo a verificare il pagamento con la banca: riprova tra poco "
    "ricaricando questa pagina. Non è stato addebitato nulla due volte."
)


def _order_url(order: Order) -> str:
    return url_for("orders.view_order", order_id=order.id)


def _to_order(order: Order, message: str, category: str = "info"):
    flash(message, category)
    return redirect_to(_order_url(order))


def _to_bank(order: Order):
    """Paths 1 and 3: create (or reuse) the hosted payment and send the browser to the bank."""
    base = current_app.config["SHOP_BASE_URL"]
    try:
        payment = flows.start_hosted_payment(
            order,
            return_url=base + url_for("payments.return_from_bank"),
            notify_url=base + url_for("payments.bank_notification"),
            now=now_utc(),
        )
    except DomainError as exc:
        return _to_order(order, exc.message, "error")
    return redirect_to(payment.redirect_url)


@bp.post("/ordini/<int:order_id>/paga")
@login_required
def pay_order(order_id: int):
    """Paga ora su server sicuro: to the portal when there are saved cards, else to the bank."""
    order = get_order(order_id, current_user.id)
    try:
        payable.payable_order(order, rome_date(now_utc()))
    except DomainError as exc:
        return _to_order(order, exc.message)
    if payments_cards.list_cards(current_user.id):
        return redirect_to(url_for("portal.choose_card", order_id=order.id))
    return _to_bank(order)


@bp.get("/pagamenti/ritorno")
def return_from_bank():
    """The browser comes back from the bank ("torna al negozio"): verify, then ask the bank."""
    params = request.args.to_dict()
    try:
        settlement.gateway().verify_return(params)
        result = flows.settle_hosted_payment(params.get("payment_id", ""), now_utc())
    except (BadSignature, DomainError):
        log.warning("refused bank return with bad signature or unknown payment: %s", params)
        abort(400)
    except GatewayUnavailable:
        flash(str(BANK_UNREACHABLE), "error")
        return redirect_to(url_for("shop.catalogue"))
    message = result.message
    if result.outcome is flows.Outcome.DECLINED:
        message += " " + _("Puoi riprovare con un'altra carta.")
    return _to_order(result.payment.order, message, result.category)


@bp.post("/pagamenti/notifica")
@csrf.exempt
def bank_notification():
    """The bank's server-to-server notification: signed, and answered 2xx only once settled."""
    body = request.get_data()
    try:
        settlement.gateway().verify_notification(request.path, body, request.headers)
        data = request.get_json(force=True, silent=True)
        if not isinstance(data, dict):  # signed, but not what the bank sends: a list, a number
            return jsonify(error="bad_request"), 400
        flows.settle_hosted_payment(str(data.get("payment_id", "")), now_utc())
    except BadSignature:
        return jsonify(error="bad_signature"), 401
    except DomainError:
        return jsonify(error="unknown_payment"), 404
    except GatewayUnavailable:
        return jsonify(error="retry"), 503
    return jsonify(ok=True)


# --- the payment portal: saved cards (path 2) and "Nuova carta di pagamento" (path 3) ----------


def _portal(
    order: Order | picker.OrderTotal,
    choice: str | None = None,
    error: str | None = None,
    status: int = 200,
    new_attempt: bool = False,
    cards: list[SavedCard] | list[picker.CardRow] | None = None,
):
    today = rome_date(now_utc())
    cards = payments_cards.list_cards(current_user.id) if cards is None else cards
    usable = frozenset(c.id for c in cards if not c.is_expired(today))
    if choice is None:
        choice = str(max(usable, default=NEW_CARD))
    # The same form posted twice is one attempt; after a declined charge the form is new.
    attempt = None if new_attempt else request.form.get("attempt")
    context = dict(
        order=order,
        cards=cards,
        usable=usable,
        choice=choice,
        error=error,
        attempt=(attempt or secrets.token_urlsafe(16))[:40],
        new_card=NEW_CARD,
    )
    if isinstance(order, picker.OrderTotal):
        # Plain rows (the htmx picker): the fragment shows nothing but these values.
        key = (order, tuple(cards), usable, choice, error, context["attempt"])
        return render_cached(
            "payments/portal.html", "payments/_card_picker.html", key, status, **context
        )
    return render("payments/portal.html", "payments/_card_picker.html", status=status, **context)


@portal_bp.get("/")
@login_required
def portal_home():
    """The portal's front page: the orders still to pay by card and the saved cards."""
    return render_template(
        "payments/index.html",
        orders=payable.payable_orders(current_user.id),
        cards=payments_cards.list_cards(current_user.id),
    )


@portal_bp.get("/ordini/<int:order_id>")
@login_required
def choose_card(order_id: int):
    """The card picker for an order still to pay (a paid one goes back to its page)."""
    order = get_order(order_id, current_user.id)
    if order.status is not OrderStatus.PENDING_PAYMENT:
        return redirect_to(_order_url(order))
    return _portal(order)


@portal_bp.post("/ordini/<int:order_id>/scelta")
@login_required
def select_card(order_id: int):
    """The card picker: selecting an option re-renders it with what Procedi will do."""
    if is_htmx():  # the fragment: the order's total and the cards, as plain rows in one read
        order, cards = picker.order_and_cards(order_id, current_user.id)
    else:
        order, cards = (
            get_order(order_id, current_user.id),
            payments_cards.list_cards(current_user.id),
        )
    form = CardChoiceForm()
    if not form.validate():
        return _portal(order, error=form.first_error(), status=422, cards=cards)
    # The picker shows the customer's cards anyway: the choice is checked against them.
    if form.choice.data != NEW_CARD and int(form.choice.data) not in {c.id for c in cards}:
        return _portal(order, error=_("Carta non trovata."), status=422, cards=cards)
    return _portal(order, choice=form.choice.data, cards=cards)


@portal_bp.post("/ordini/<int:order_id>/procedi")
@login_required
def proceed(order_id: int):
    """Procedi: the saved card is charged (once, whoever clicks twice), or off to the bank."""
    order = get_order(order_id, current_user.id)
    form = ProceedForm()
    if not form.validate() or form.amount_cents.data != order.total_cents:
        error = form.first_error() or _("L'importo non corrisponde all'ordine: ricarica la pagina.")
        return _portal(order, choice=form.choice.data, error=error, status=422)
    if form.choice.data == NEW_CARD:
        return _to_bank(order)
    try:
        result = flows.pay_with_saved_card(
            order, current_user.id, form.choice.data, form.attempt.data or "", now_utc()
        )
    except DomainError as exc:
        return _portal(order, choice=form.choice.data, error=exc.message, status=422)
    return _charge_answer(order, form.choice.data, result)


def _charge_answer(order: Order, choice: str, result: flows.PaymentResult):
    """After a saved-card charge: to the bank for 3-D Secure, back to choose, or to the order."""
    if result.outcome is flows.Outcome.AUTHENTICATION_REQUIRED:
        return _to_bank(order)  # the same order, paid once, on the bank's page with 3-D Secure
    if result.outcome is flows.Outcome.DECLINED:
        error = f"{result.message} " + _("Scegli un'altra carta.")
        return _portal(order, choice, error, status=422, new_attempt=True)
    return _to_order(order, result.message, result.category)
