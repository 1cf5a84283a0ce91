"""The customer area: "I miei servizi" (auto-renewal, frequency, card), saved cards, orders.

Every object is looked up through its owner: another customer's service, card or order is 404.
Bad input answers 422 with the Italian reason and changes nothing.
"""

from __future__ import annotations

import logging
import secrets

from flask import Blueprint, abort, current_app, flash, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from webapp.account.forms import AutoRenewForm, FrequencyForm, RenewForm, ServiceCardForm
from webapp.clock import add_years, format_day, now_utc, rome_date
from webapp.errors import DomainError, InvalidTransition
from webapp.extensions import db
from webapp.htmx import is_htmx, redirect_to, render, render_cached
from webapp.i18n import every_years_label
from webapp.money import format_eur
from webapp.payments import cards as payments_cards
from webapp.payments import flows, settlement
from webapp.payments.gateway import GatewayRefused, GatewayUnavailable
from webapp.payments.models import Payment, PaymentStatus
from webapp.payments.picker import CardRow
from webapp.payments.refunds import refunds_of_orders
from webapp.payments.states import order_state
from webapp.payments.withdrawal import may_withdraw
from webapp.renewals import manage, manual, notices, rows, services
from webapp.renewals.engine import RenewalOutcome, default_worker, retry_renewal, use_new_card
from webapp.renewals.lifecycle import life_of
from webapp.renewals.models import Renewal, RenewalStatus, Service
from webapp.shop.cart import get_or_create_cart
from webapp.shop.order_models import OrderKind, OrderStatus
from webapp.shop.orders import get_order, list_orders
from webapp.signing import BadSignature
from webapp.transaction import commit, once_more_after_conflict, rollback

log = logging.getLogger(__name__)

bp = Blueprint("area", __name__, url_prefix="/area-clienti")


@bp.before_request
@login_required
def _login_required() -> None:
    """Every page of the area needs a logged-in customer."""


def _worker() -> str:
    return f"web:{default_worker()}"


def _own_service(service_id: int) -> Service:
    return services.get_service(service_id, current_user.id)


# --- I miei servizi ------------------------------------------------------------------------------


def _services_page(
    focus: int | None = None,
    status: int = 200,
    message: str | None = None,
    error: str | None = None,
    card_needed: bool = False,
    shown: tuple[list[manage.ServiceView], list[CardRow]] | None = None,
):
    """The services page, or (for htmx) the row of service `focus` with its message (`shown`:
    the row's view and the valid cards, when the caller built them as they now are)."""
    now = now_utc()
    fragment = focus is not None and is_htmx()
    if fragment and shown is not None:
        views, cards = shown
    elif fragment:
        read, cards = rows.service_of(focus, current_user.id, rome_date(now))
        views = manage.service_views([read], now)
    else:
        reads, cards = rows.services_of(current_user.id, rome_date(now))
        views = manage.service_views(reads, now)
    context = dict(
        views=views,
        view=views[0] if fragment else None,
        cards=cards,
        messages={focus: message} if message else {},
        errors={focus: error} if error else {},
        card_needed={focus} if card_needed else set(),
    )
    if fragment:
        # A row shows nothing but these values: asked for again, it is not rendered again.
        key = (views[0], tuple(cards), message, error, card_needed)
        return render_cached("area/services.html", "area/_service.html", key, status, **context)
    # The page itself (no focus) is the page for htmx too (e.g. boosted): it has no one row.
    return render("area/services.html", "area/services.html", status=status, **context)


@bp.get("/")
def overview():
    """I miei servizi: expiry, status, Rinnovo automatico, frequency and card of each service."""
    return _services_page()


@bp.post("/servizi/<int:service_id>/rinnovo-automatico")
def toggle_auto_renew(service_id: int):
    """The Rinnovo automatico switch: posts the wanted state (hidden 0 + checkbox 1)."""
    service = _own_service(service_id)
    form = AutoRenewForm()
    if not form.validate():
        return _services_page(service_id, 422, error=form.first_error())
    try:
        cards = payments_cards.list_cards(current_user.id)
        changed = manage.set_auto_renew(service, form.enabled, cards, now_utc())
    except DomainError as exc:
        rollback()
        needed = isinstance(exc, services.CardNeeded)
        return _services_page(service_id, 422, error=exc.message, card_needed=needed)
    commit()
    return _services_page(service_id, message=_switch_message(form.enabled, changed))


def _switch_message(enabled: bool, changed: bool) -> str:
    if changed:
        if enabled:
            return _("Rinnovo automatico attivato. Ti abbiamo inviato una e-mail di conferma.")
        return _("Rinnovo automatico disattivato. Ti abbiamo inviato una e-mail di conferma.")
    if enabled:
        return _("Il rinnovo automatico era già attivato.")
    return _("Il rinnovo automatico era già disattivato.")


@bp.post("/servizi/<int:service_id>/frequenza")
def set_frequency(service_id: int):
    """Frequenza di rinnovo: how many years each automatic renewal buys."""
    now = now_utc()
    read, cards = rows.service_of(service_id, current_user.id, rome_date(now))
    try:
        read = manage.set_frequency(read, FrequencyForm().frequency_years.data)
    except DomainError as exc:
        rollback()
        return _services_page(service_id, 422, error=exc.message)
    if read.service.announced_period is not None:  # told already: tell the new amount
        notices.notify_change(_own_service(service_id), now, services.settings())
    commit()
    views = manage.service_views([read], now)  # the row as it now is, shown as it is
    message = _(
        "Frequenza di rinnovo aggiornata: %(every)s, %(total)s IVA inclusa.",
        every=every_years_label(views[0].price.years),
        total=format_eur(views[0].price.total_cents),
    )
    return _services_page(service_id, message=message, shown=(views, cards))


@bp.post("/servizi/<int:service_id>/carta")
def set_card(service_id: int):
    """The card the service renews with; a failed renewal is retried on it at once."""
    service = _own_service(service_id)
    form = ServiceCardForm()
    if not form.validate():
        return _services_page(service_id, 422, error=form.first_error())
    card = payments_cards.get_card(form.card_id.data, current_user.id)
    now = now_utc()
    try:
        manage.set_card(service, card, now)
    except DomainError as exc:
        rollback()
        return _services_page(service_id, 422, error=exc.message)
    notices.notify_change(service, now, services.settings())
    commit()
    message = _("I prossimi rinnovi useranno la carta %(card)s.", card=card.masked)
    outcome = retry_renewal(service, now, _worker())
    if outcome is not None:
        message += " " + _retry_message(service, outcome)
    return _services_page(service_id, message=message)


def _retry_message(service: Service, outcome: str) -> str:
    db.session.refresh(service)
    name = service.product.name
    if outcome == "charged":
        expires = format_day(service.expires_at)
        return _(
            "Rinnovo di %(name)s riuscito: il servizio ora scade il %(expires)s.",
            name=name,
            expires=expires,
        )
    if outcome == "failed":
        renewal = services.current_renewal(service)
        reason = renewal.failure_reason if renewal else ""
        return _("Rinnovo di %(name)s non riuscito: %(reason)s", name=name, reason=reason)
    if outcome == "unknown":
        return _(
            "Rinnovo di %(name)s: la banca non ha ancora confermato l'esito, lo verifichiamo noi.",
            name=name,
        )
    if outcome == "skipped":
        return _("Il rinnovo di %(name)s è già in corso.", name=name)
    return _("Riproveremo a breve il rinnovo di %(name)s.", name=name)


# --- Rinnova (renewal by hand) -------------------------------------------------------------------


def _renew_page(service: Service, status: int = 200, error: str | None = None):
    """The renewal of one service: its state, and the years to choose with the new expiry."""
    now = now_utc()
    life = life_of(service, rome_date(now))
    price = services.renewal_price(service, day=rome_date(now))
    options = [
        (years, add_years(service.expires_at, years), price.yearly_net_cents * years)
        for years in manual.renewal_years(service)
    ]
    return render(
        "area/renew.html",
        "area/renew.html",
        status=status,
        service=service,
        life=life,
        options=options,
        chosen=service.frequency_years,
        error=error,
    )


@bp.get("/servizi/<int:service_id>/rinnova")
def renew_service(service_id: int):
    """ "Rinnova" in I miei servizi and "Rinnova ora" in the e-mails land here."""
    return _renew_page(_own_service(service_id))


@bp.post("/servizi/<int:service_id>/rinnova")
def add_renewal(service_id: int):
    """Put the renewal in the cart and go to the checkout (twins update the same line)."""
    service = _own_service(service_id)
    years = RenewForm().years.data

    def add() -> None:
        cart = get_or_create_cart(current_user.id, None)
        manual.add_to_cart(cart, service, years, now_utc())
        commit()

    try:
        once_more_after_conflict(add)
    except DomainError as exc:
        rollback()
        return _renew_page(service, 422, exc.message)
    return redirect_to(url_for("shop.checkout"))


# --- saved cards ---------------------------------------------------------------------------------


def _cards_page(status: int = 200, message: str | None = None, error: str | None = None):
    cards = payments_cards.list_cards(current_user.id)
    used_by = manage.services_by_card(cards)
    return render(
        "area/cards.html",
        "area/_cards.html",
        status=status,
        cards=cards,
        used_by=used_by,
        today=rome_date(now_utc()),
        message=message,
        error=error,
    )


@bp.get("/carte")
def list_cards():
    """Saved cards: which services renew with each, remove, add."""
    return _cards_page()


@bp.post("/carte/nuova")
def add_card():
    """Add a card: the bank's page with 3-D Secure and a zero-amount verification (no charge)."""
    return_url = current_app.config["SHOP_BASE_URL"] + url_for("area.card_added")
    try:
        url = flows.start_card_verification(current_user.id, return_url, secrets.token_urlsafe(12))
    except DomainError as exc:
        flash(exc.message, "error")
        return redirect_to(url_for("area.list_cards"))
    return redirect_to(url)


@bp.get("/carte/aggiunta")
def card_added():
    """Back from the bank: the card is saved, and renewals waiting for one use it at once."""
    try:
        card = flows.add_verified_card(request.args.to_dict(), current_user.id)
    except flows.CardNotAdded as exc:
        flash(exc.message, "error" if exc.final else "info")
        return redirect_to(url_for("area.list_cards"))
    except (BadSignature, InvalidTransition):
        abort(400)
    flash(_("Carta %(card)s aggiunta.", card=card.masked), "success")
    retried = use_new_card(current_user.id, card, now_utc(), _worker())
    for service, outcome in retried:
        category = "success" if outcome is RenewalOutcome.CHARGED else "info"
        flash(_retry_message(service, outcome), category)
    return redirect_to(url_for("area.overview" if retried else "area.list_cards"))


@bp.post("/carte/<int:card_id>/rimuovi")
def remove_card(card_id: int):
    """Remove a card, unless a service renews with it."""
    card = payments_cards.get_card(card_id, current_user.id)
    masked, token = card.masked, card.gateway_token
    try:
        manage.remove_card(card, now_utc())
    except DomainError as exc:
        rollback()
        return _cards_page(422, error=exc.message)
    commit()
    try:
        settlement.gateway().forget_token(token)
    except (GatewayUnavailable, GatewayRefused) as exc:
        # The shop will never use the token again; the bank forgets it when it can.
        log.warning("bank did not forget token of card %s: %s", card_id, exc)
    return _cards_page(message=_("Carta %(card)s rimossa.", card=masked))


# --- orders and receipts -------------------------------------------------------------------------


@bp.get("/ordini")
def orders():
    """Orders and receipts, the automatic renewals included (only the paid ones)."""
    shown = [
        o
        for o in list_orders(current_user.id)
        if o.kind is OrderKind.PURCHASE or o.status is OrderStatus.PAID
    ]
    refunds = refunds_of_orders([o.id for o in shown])
    now = now_utc()
    states = {o.id: order_state(o, refunds[o.id]) for o in shown}
    withdrawable = {o.id for o in shown if may_withdraw(o, refunds[o.id], now)}
    return render_template(
        "area/orders.html", orders=shown, refunds=refunds, states=states, withdrawable=withdrawable
    )


@bp.get("/ordini/<int:order_id>")
def view_receipt(order_id: int):
    """The receipt of a paid order; an unpaid one is shown on its order page."""
    order = get_order(order_id, current_user.id)
    if order.status is not OrderStatus.PAID:
        if order.kind is OrderKind.RENEWAL:
            abort(404)
        return redirect_to(url_for("orders.view_order", order_id=order.id))
    payment = db.session.scalar(
        select(Payment).where(
            Payment.order_id == order.id, Payment.status == PaymentStatus.SUCCEEDED
        )
    )
    renewal = db.session.scalar(
        select(Renewal).where(
            Renewal.order_id == order.id, Renewal.status == RenewalStatus.SUCCEEDED
        )
    )
    return render_template("area/receipt.html", order=order, payment=payment, renewal=renewal)
