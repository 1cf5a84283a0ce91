"""The customer area: "I miei servizi" (auto-renewal, frequency, card), saved cards, orders.

Every object is looked up through its owner: another customer's service, card or order is 404.
Bad input answers 422 with the Italian reason and changes nothing.
"""

from __future__ import annotations

import logging
import secrets

from flask import Blueprint, abort, current_app, flash, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from webapp.clock import format_day, now_utc, rome_date
from webapp.errors import DomainError, InvalidTransition
from webapp.extensions import db
from webapp.htmx import is_htmx, redirect_to, render
from webapp.money import format_eur
from webapp.payments import services as payments
from webapp.payments.gateway import GatewayRefused, GatewayUnavailable
from webapp.payments.models import Payment, PaymentStatus
from webapp.renewals import services as renewals
from webapp.renewals.engine import default_worker, retry_renewal
from webapp.renewals.models import Renewal, RenewalStatus, Service
from webapp.shop.models import OrderKind, OrderStatus
from webapp.shop.services import get_order, list_orders
from webapp.signing import BadSignature
from webapp.transaction import commit, rollback

log = logging.getLogger(__name__)

bp = Blueprint("area", __name__, url_prefix="/area-clienti")

VERIFY_PREFIX = "CARTA"


@bp.before_request
@login_required
def _login_required() -> None:
    """Every page of the area needs a logged-in customer."""


def _worker() -> str:
    return f"web:{default_worker()}"


def _own_service(service_id: int) -> Service:
    return renewals.get_service(service_id, current_user.id)


# --- I miei servizi ------------------------------------------------------------------------------


def _services_page(
    focus: Service | None = None,
    status: int = 200,
    message: str | None = None,
    error: str | None = None,
    card_needed: bool = False,
):
    """The services page, or (for htmx) the row of `focus` with its message."""
    now = now_utc()
    fragment = focus is not None and is_htmx()
    services = [focus] if fragment else renewals.list_services(current_user.id)
    views = renewals.service_views(services, now)
    key = focus.id if focus is not None else None
    return render(
        "area/services.html",
        # Without a focus (the page itself, e.g. boosted) htmx gets the page too: no one row.
        "area/_service.html" if fragment else "area/services.html",
        status=status,
        views=views,
        view=views[0] if fragment else None,
        cards=payments.usable_cards(current_user.id, rome_date(now)),
        messages={key: message} if message else {},
        errors={key: error} if error else {},
        card_needed={key} if card_needed else set(),
    )


@bp.get("/")
def overview():
    """I miei servizi: expiry, status, Rinnovo automatico, frequency and card of each service."""
    return _services_page()


def _years_label(years: int) -> str:
    return f"{years} {'anno' if years == 1 else 'anni'}"


@bp.post("/servizi/<int:service_id>/rinnovo-automatico")
def toggle_auto_renew(service_id: int):
    """The Rinnovo automatico switch: posts the wanted state (hidden 0 + checkbox 1)."""
    service = _own_service(service_id)
    values = request.form.getlist("auto_renew")
    if not values or any(v not in {"0", "1"} for v in values):
        return _services_page(
            service,
            422,
            error="Richiesta non valida: usa l'interruttore "
            "Rinnovo automatico per attivarlo o disattivarlo.",
        )
    enabled = "1" in values
    now = now_utc()
    try:
        cards = payments.list_cards(current_user.id)
        changed = renewals.set_auto_renew(service, enabled, cards, now)
    except renewals.CardNeeded as exc:
        rollback()
        return _services_page(service, 422, error=exc.message, card_needed=True)
    except DomainError as exc:
        rollback()
        return _services_page(service, 422, error=exc.message)
    commit()
    state = "attivato" if enabled else "disattivato"
    if changed:
        message = f"Rinnovo automatico {state}. Ti abbiamo inviato una e-mail di conferma."
    else:
        message = f"Il rinnovo automatico era già {state}."
    return _services_page(service, message=message)


@bp.post("/servizi/<int:service_id>/frequenza")
def set_frequency(service_id: int):
    """Frequenza di rinnovo: how many years each automatic renewal buys."""
    service = _own_service(service_id)
    try:
        renewals.set_frequency(service, request.form.get("frequency_years", ""))
    except DomainError as exc:
        rollback()
        return _services_page(service, 422, error=exc.message)
    commit()
    price = renewals.renewal_price(service)
    return _services_page(
        service,
        message=f"Frequenza di rinnovo aggiornata: ogni {_years_label(service.frequency_years)}, "
        f"{format_eur(price.total_cents)} IVA inclusa.",
    )


@bp.post("/servizi/<int:service_id>/carta")
def set_card(service_id: int):
    """The card the service renews with; a failed renewal is retried on it at once."""
    service = _own_service(service_id)
    raw = request.form.get("card_id", "")
    if not raw.isdigit():
        return _services_page(service, 422, error="Scegli una delle tue carte di pagamento.")
    card = payments.get_card(raw, current_user.id)
    now = now_utc()
    try:
        renewals.set_card(service, card, now)
    except DomainError as exc:
        rollback()
        return _services_page(service, 422, error=exc.message)
    commit()
    message = f"I prossimi rinnovi useranno la carta {card.masked}."
    outcome = retry_renewal(service, now, _worker())
    if outcome is not None:
        message += " " + _retry_message(service, outcome)
    return _services_page(service, message=message)


def _retry_message(service: Service, outcome: str) -> str:
    db.session.refresh(service)
    name = service.product.name
    if outcome == "charged":
        expires = format_day(service.expires_at)
        return f"Rinnovo di {name} riuscito: il servizio ora scade il {expires}."
    if outcome == "failed":
        renewal = renewals.current_renewal(service)
        reason = renewal.failure_reason if renewal else ""
        return f"Rinnovo di {name} non riuscito: {reason}"
    if outcome == "unknown":
        return f"Rinnovo di {name}: la banca non ha ancora confermato l'esito, lo verifichiamo noi."
    if outcome == "skipped":
        return f"Il rinnovo di {name} è già in corso."
    return f"Riproveremo a breve il rinnovo di {name}."


# --- saved cards ---------------------------------------------------------------------------------


def _cards_page(status: int = 200, message: str | None = None, error: str | None = None):
    cards = payments.list_cards(current_user.id)
    used_by = renewals.services_by_card(cards)
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
    nonce = secrets.token_urlsafe(12)
    base = current_app.config["SHOP_BASE_URL"]
    try:
        hosted = payments.gateway().create_payment(
            amount_cents=0,
            currency="EUR",
            order_ref=f"{VERIFY_PREFIX}-{current_user.id}-{nonce}",
            description="Verifica della carta: nessun addebito",
            return_url=base + url_for("area.card_added"),
            notify_url=None,
            save_card=True,
            idempotency_key=f"verify-{current_user.id}-{nonce}",
        )
    except (GatewayUnavailable, GatewayRefused) as exc:
        log.warning("bank refused/unreachable creating a card verification: %s", exc)
        flash(
            "Il servizio di pagamento non è raggiungibile in questo momento. "
            "Riprova tra qualche minuto.",
            "error",
        )
        return redirect_to(url_for("area.list_cards"))
    return redirect_to(hosted.redirect_url)


@bp.get("/carte/aggiunta")
def card_added():
    """Back from the bank: verify the signed return, ask the bank, save the card, fix renewals."""
    params = request.args.to_dict()
    try:
        payments.gateway().verify_return(params)
    except BadSignature:
        abort(400)
    ref = params.get("order_ref", "")
    if not ref.startswith(f"{VERIFY_PREFIX}-{current_user.id}-"):
        abort(404)
    try:
        info = payments.gateway().get_payment(params.get("payment_id", ""))
    except GatewayUnavailable:
        flash(
            "Non riusciamo a verificare la carta con la banca: ricarica questa pagina tra poco.",
            "error",
        )
        return redirect_to(url_for("area.list_cards"))
    except GatewayRefused:
        abort(400)
    if info.order_ref != ref or info.amount_cents != 0:
        abort(400)
    if info.status != "authorised" or info.card is None:
        if info.final:
            reason = info.decline_message or "verifica non riuscita"
            flash(f"La carta non è stata aggiunta: {reason}", "error")
        else:
            flash("La verifica della carta non è ancora conclusa presso la banca.", "info")
        return redirect_to(url_for("area.list_cards"))
    now = now_utc()
    try:
        card = payments.save_card(current_user.id, info.card)
    except InvalidTransition:
        abort(400)
    if card.removed_at is not None:
        flash("Questa carta è stata rimossa: aggiungila di nuovo dalla banca.", "info")
        return redirect_to(url_for("area.list_cards"))
    retry = renewals.attach_new_card(current_user.id, card, now)
    commit()
    flash(f"Carta {card.masked} aggiunta.", "success")
    for service in retry:
        outcome = retry_renewal(service, now, _worker())
        flash(
            _retry_message(service, outcome or "skipped"),
            "success" if outcome == "charged" else "info",
        )
    return redirect_to(url_for("area.overview" if retry else "area.list_cards"))


@bp.post("/carte/<int:card_id>/rimuovi")
def remove_card(card_id: int):
    """Remove a card, unless a service renews with it."""
    card = payments.get_card(card_id, current_user.id)
    masked, token = card.masked, card.gateway_token
    try:
        renewals.remove_card(card, now_utc())
    except DomainError as exc:
        rollback()
        return _cards_page(422, error=exc.message)
    commit()
    try:
        payments.gateway().forget_token(token)
    except (GatewayUnavailable, GatewayRefused) as exc:
        # The shop will never use the token again; the bank forgets it when it can.
        log.warning("bank did not forget token of card %s: %s", card_id, exc)
    return _cards_page(message=f"Carta {masked} rimossa.")


# --- orders and receipts -------------------------------------------------------------------------


@bp.get("/ordini")
def orders():
    """Orders and receipts, the automatic renewals included (only the paid ones)."""
    shown = [
        o
        for o in list_orders(current_user.id)
        if o.kind is OrderKind.PURCHASE or o.status is OrderStatus.PAID
    ]
    return render_template("area/orders.html", orders=shown)


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
