"""The life of a service around its expiry: "Attivo", "In scadenza", "Scaduto", "Cessato".

A service is valid through its expiry day. Each product says (catalogue columns, edited in the
back office, defaults in the README) whether it can be renewed by hand, from how many days before
its expiry, and for how many days after it (the grace window, "Scaduto": the service is kept and
can still be renewed from its old expiry). After the window the service is "Cessato" and can no
longer be renewed. The same rules serve the customer area, the back office, the cart and the
check made before the bank is asked.

Works on Service objects and on the area's ServiceRow rows alike (same attribute names).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, timedelta

from flask import current_app
from flask_babel import gettext as _

from webapp.clock import rome_date
from webapp.i18n import lazy_gettext as _l
from webapp.renewals.models import ServiceStatus

#: How many days before the expiry a service shows "In scadenza" (default).
EXPIRING_DAYS = 30


class LifeState(enum.StrEnum):
    ACTIVE = "attivo"
    EXPIRING = "in_scadenza"
    EXPIRED = "scaduto"  # the grace window: kept, renewable
    CEASED = "cessato"  # after the window: gone, not renewable
    CANCELLED = "annullato"  # its order was refunded

    @property
    def label(self) -> str:
        return str(_LABELS[self])


_LABELS = {
    LifeState.ACTIVE: _l("Attivo"),
    LifeState.EXPIRING: _l("In scadenza"),
    LifeState.EXPIRED: _l("Scaduto"),
    LifeState.CEASED: _l("Cessato"),
    LifeState.CANCELLED: _l("Annullato"),
}


@dataclass(frozen=True)
class Life:
    """Where a service is in its life on a day, and whether "Rinnova" is offered."""

    state: LifeState
    expiry_day: date
    grace_ends: date | None  # the last day of the grace window (None: no window)
    renewable: bool
    reason: str | None  # why not renewable, in the customer's words
    renew_from: date | None = None  # the first day a renewal is accepted (Firma Digitale)

    @property
    def label(self) -> str:
        return self.state.label


def expiring_days() -> int:
    return current_app.config.get("SERVICE_EXPIRING_DAYS", EXPIRING_DAYS)


def life_of(service, today: date, soon: int | None = None) -> Life:
    """The state of `service` on `today` and whether it can be renewed by hand."""
    product = service.product
    expiry_day = rome_date(service.expires_at)
    grace = product.grace_days or 0
    grace_ends = expiry_day + timedelta(days=grace) if grace else None
    state = _state(service.status, expiry_day, grace_ends, today, soon)
    reason, renew_from = _refusal(product, state, expiry_day, grace_ends, today)
    return Life(state, expiry_day, grace_ends, reason is None, reason, renew_from)


def _state(
    status: ServiceStatus, expiry_day: date, grace_ends: date | None, today: date, soon: int | None
) -> LifeState:
    if status is ServiceStatus.CANCELLED:
        return LifeState.CANCELLED
    if status is ServiceStatus.CEASED:
        return LifeState.CEASED
    if today <= expiry_day:
        days_left = (expiry_day - today).days
        return LifeState.EXPIRING if days_left <= (soon or expiring_days()) else LifeState.ACTIVE
    if grace_ends is not None and today <= grace_ends:
        return LifeState.EXPIRED
    return LifeState.CEASED


def _refusal(
    product, state: LifeState, expiry_day: date, grace_ends: date | None, today: date
) -> tuple[str | None, date | None]:
    """Why "Rinnova" is not offered today (None when it is), and the first day it will be."""
    if not product.renewable_by_hand:
        return _("%(kind)s non si rinnova: si acquista di nuovo.", kind=product.kind.label), None
    if state is LifeState.CANCELLED:
        return _("Il servizio è annullato: non si può rinnovare."), None
    if state is LifeState.CEASED:
        last = grace_ends or expiry_day
        return (
            _(
                "Il servizio è cessato dopo il %(day)s: non si può più rinnovare.",
                day=last.strftime("%d/%m/%Y"),
            ),
            None,
        )
    before = product.renew_before_days
    if before is not None and (expiry_day - today).days > before:
        opens = expiry_day - timedelta(days=before)
        return (
            _(
                "%(name)s si può rinnovare solo nei %(days)d giorni prima della scadenza: "
                "dal %(day)s.",
                name=product.name,
                days=before,
                day=opens.strftime("%d/%m/%Y"),
            ),
            opens,
        )
    return None, None
