"""What renewals announce to the packages above them (notify's e-mails, the back office).

Sent inside the transaction that made the change; subscribers add to it and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from blinker import Namespace

_signals = Namespace()

#: A purchase was paid and its services started. sender: the Order; kwargs: payment,
#: card (SavedCard | None), services (list[Service]), now.
services_activated = _signals.signal("services-activated")

#: A renewal was paid and its service extended. sender: the Service; kwargs: renewal,
#: order, payment, old_expiry, new_expiry, now.
service_renewed = _signals.signal("service-renewed")

#: Many renewals were paid and their services extended at once, by the renewal engine's
#: set-based settlement (webapp.renewals.batch_settle). sender: the string "renewals"; kwargs:
#: renewed (list[RenewedService]: plain values, no loaded objects), now. Sent instead of one
#: `service_renewed` per service, inside the same transaction: a subscriber adds its rows with
#: set-based statements and must be idempotent per renewal (the engine may settle a renewal
#: per row after a crash, which sends `service_renewed` for it instead).
services_renewed = _signals.signal("services-renewed")


@dataclass(frozen=True)
class RenewedService:
    """One service extended by a paid renewal, as the batch settlement knows it."""

    service_id: int
    renewal_id: int
    order_id: int
    payment_id: int
    customer_email: str
    product_name: str
    old_expiry: datetime
    new_expiry: datetime
