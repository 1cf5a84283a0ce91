"""What a customer manages of a service in "I miei servizi": rinnovo automatico, frequency and
card, and what the page shows of each service's next renewal.

Services flush; the caller commits. A switch of the rinnovo automatico announces the new
terms (_announce_switch); a card removed or added moves the services that renew on it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm.attributes import set_committed_value

from webapp.clock import rome_date, rome_midnight
from webapp.errors import InvalidChoice, NotFound
from webapp.extensions import db
from webapp.payments.models import SavedCard
from webapp.renewals.lifecycle import Life, life_of
from webapp.renewals.models import RenewalStatus, Service, ServiceStatus
from webapp.renewals.rows import RenewalRow, ServiceRead, ServiceRow
from webapp.renewals.services import (
    CardNeeded,
    RenewalPrice,
    announced_price,
    card_usable,
    current_renewal,
    current_renewals,
    list_services,
    queue_customer_email,
    renewal_date,
    settings,
)
from webapp.shop.cart import valid_years


@dataclass(frozen=True)
class ServiceView:
    """A service with what "I miei servizi" shows about its next renewal."""

    service: ServiceRow
    renewal: RenewalRow | None  # the current period's, while open
    price: RenewalPrice
    yearly_cents: int  # the list price of one year on the renewal day (the frequency menu)
    renew_on: datetime  # the first instant of the renewal day in Italy (the row shows the day)
    card_ok: bool  # the card will still be valid on the renewal date
    life: Life | None = None  # "Attivo", "In scadenza", "Scaduto", "Cessato"; "Rinnova" or not
    auto_failed: bool = False  # the automatic renewal of this period failed (banner)

    @property
    def failed(self) -> bool:
        return self.renewal is not None and self.renewal.status is RenewalStatus.FAILED


def service_views(reads: list[ServiceRead], now: datetime) -> list[ServiceView]:
    """The views of "I miei servizi" from the rows read by renewals.rows."""
    cfg = settings()
    views = []
    for read in reads:
        service, renewal = read.service, read.renewal
        day = rome_date(renewal_date(service, now, cfg.window))
        # Priced on the renewal day, as the reminder and the charge (announced_price).
        known = None if read.price_changes_ahead else read.yearly_cents
        price = announced_price(service, now, cfg, read.split_payment, known)
        views.append(
            ServiceView(
                service=service,
                renewal=renewal if service.active and renewal and renewal.open else None,
                price=price,
                yearly_cents=price.net_cents // price.years,
                renew_on=rome_midnight(day),
                card_ok=card_usable(service.saved_card, day),
                life=life_of(service, rome_date(now)),
                auto_failed=_auto_failed(renewal),
            )
        )
    return views


def _auto_failed(renewal: RenewalRow | None) -> bool:
    """The automatic renewal of the current period failed (and may have given up at expiry)."""
    return renewal is not None and (
        renewal.status is RenewalStatus.FAILED
        or (renewal.status is RenewalStatus.ABANDONED and renewal.failure_code is not None)
    )


def _check_manageable(service: Service) -> None:
    if not service.renewable:
        raise InvalidChoice(
            _(
                "Il rinnovo automatico non è disponibile per %(kind)s.",
                kind=service.product.kind.label,
            )
        )
    if not service.active:
        raise InvalidChoice(
            _("Il servizio è scaduto: per riattivarlo acquistalo di nuovo dal catalogo.")
        )


def _renewing_card(service: Service, cards: list[SavedCard], today) -> SavedCard:
    """The card auto-renewal will charge: the service's own, else the newest valid in `cards`."""
    if card_usable(service.saved_card, today):
        return service.saved_card
    card = next((c for c in cards if card_usable(c, today)), None)
    if card is None:
        raise CardNeeded(
            _(
                "Per attivare il rinnovo automatico serve una carta di pagamento valida: "
                "aggiungine una nella pagina Carte di pagamento."
            )
        )
    return card


def _announce_switch(service: Service, enabled: bool, now: datetime) -> None:
    """Queue the e-mail that says auto-renewal is now on (with card, price, date) or off."""
    cfg = settings()
    queue_customer_email(
        service,
        _("Rinnovo automatico attivato: %(name)s", name=service.product.name)
        if enabled
        else _("Rinnovo automatico disattivato: %(name)s", name=service.product.name),
        "auto_renew_changed",
        enabled=enabled,
        card=service.saved_card,
        price=announced_price(service, now, cfg),  # the renewal day's, as the page and the charge
        renew_on=renewal_date(service, now, cfg.window),
    )


def set_auto_renew(service: Service, enabled: bool, cards: list[SavedCard], now: datetime) -> bool:
    """Turn auto-renewal on or off; True when it changed (and an e-mail was queued).

    Turning it on needs a valid card: the service's own, else the newest valid one in `cards`.
    Guard: a compare-and-set UPDATE on the service's switch. Of twin requests (a double click,
    two tabs) that all read the old state, only the one whose UPDATE moves the row changes it
    and queues the e-mail; the others find it already done and queue nothing.
    """
    _check_manageable(service)
    if enabled == service.auto_renew:
        return False
    card = _renewing_card(service, cards, rome_date(now)) if enabled else None
    values = {"auto_renew": enabled} | ({"saved_card_id": card.id} if enabled else {})
    moved = db.session.execute(
        update(Service)
        .where(Service.id == service.id, Service.auto_renew == (not enabled))
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        db.session.refresh(service)  # a twin switched it first: nothing more to do
        return False
    for key, value in values.items():
        set_committed_value(service, key, value)
    if enabled:
        set_committed_value(service, "saved_card", card)
        renewal = current_renewal(service)
        if renewal is not None and renewal.open and renewal.next_attempt_at is None:
            renewal.next_attempt_at = now  # back on inside the window: the next pass tries
    db.session.flush()
    _announce_switch(service, enabled, now)
    return True


_years = bindparam("years")
_SET_FREQUENCY = (  # Core, built once: no object of the service is loaded to change it
    update(Service.__table__)
    .where(Service.__table__.c.id == bindparam("service"))
    .where(Service.__table__.c.frequency_years != _years)
    .values(frequency_years=_years)
)


def set_frequency(read: ServiceRead, years: int) -> ServiceRead:
    """Frequenza di rinnovo: 1-5 years (1-2 for a promotional product); returns the service as
    it now is.

    One UPDATE, which writes only a value that differs: twins (a double click, two tabs) set the
    same state. The value the service already had when read is not written again (no write
    transaction for a repeated post); were it changed meanwhile, this post came first.
    """
    service = read.service
    _check_manageable(service)
    years = valid_years(service.product, years)
    if years != service.frequency_years:
        db.session.execute(_SET_FREQUENCY, {"service": service.id, "years": years})
    return replace(read, service=replace(service, frequency_years=years))


def set_card(service: Service, card: SavedCard, now: datetime) -> None:
    """Renew the service with another of the customer's cards (which must be valid)."""
    _check_manageable(service)
    if card.customer_id != service.customer_id:
        raise NotFound("Carta non trovata.")
    if not card_usable(card, rome_date(now)):
        raise InvalidChoice(
            _(
                "La carta %(card)s è scaduta: scegline un'altra o aggiungine una nuova.",
                card=card.masked,
            )
        )
    service.saved_card_id = card.id
    service.saved_card = card
    db.session.flush()


def services_using(card: SavedCard) -> list[Service]:
    """Active services that renew automatically with this card."""
    return services_by_card([card])[card.id]


def services_by_card(cards: list[SavedCard]) -> dict[int, list[Service]]:
    """For each card, the active services that renew with it, in one query."""
    by_card: dict[int, list[Service]] = {card.id: [] for card in cards}
    if by_card:
        for service in db.session.scalars(
            select(Service)
            .where(
                Service.saved_card_id.in_(by_card),
                Service.auto_renew,
                Service.status == ServiceStatus.ACTIVE,
            )
            .order_by(Service.id)
        ):
            by_card[service.saved_card_id].append(service)
    return by_card


def remove_card(card: SavedCard, now: datetime) -> None:
    """Remove a saved card, unless a service still renews with it (say which)."""
    if card.removed_at is not None:
        return
    users = services_using(card)
    if users:
        names = ", ".join(s.product.name for s in users)
        raise InvalidChoice(
            _(
                "La carta %(card)s è usata per il rinnovo automatico di %(names)s: "
                "scegli un'altra carta per il servizio o disattiva il rinnovo automatico, "
                "poi rimuovila.",
                card=card.masked,
                names=names,
            )
        )
    db.session.execute(
        update(Service)
        .where(Service.saved_card_id == card.id)
        .values(saved_card_id=None)
        .execution_options(synchronize_session="fetch")
    )
    card.removed_at = now
    db.session.flush()


def attach_new_card(customer_id: int, card: SavedCard, now: datetime) -> list[Service]:
    """Give a newly added card to the auto-renewing services that need one.

    Those are the services whose renewal failed, and those whose card is missing or will have
    expired by the renewal date. Returns the ones with a failed renewal, to retry at once.
    """
    window = settings().window
    renewing = [service for service in list_services(customer_id) if service.renews]
    renewals = current_renewals(renewing)
    retry = []
    for service in renewing:
        on = rome_date(renewal_date(service, now, window))
        renewal = renewals.get(service.id)
        failed = renewal is not None and renewal.status is RenewalStatus.FAILED
        if (failed or not card_usable(service.saved_card, on)) and card_usable(card, on):
            service.saved_card_id = card.id
            service.saved_card = card
            if failed:
                retry.append(service)
    db.session.flush()
    return retry
