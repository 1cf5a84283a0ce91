"""What renewals announce to the packages above them (notify's e-mails, the back office).

Sent inside the transaction that made the change; subscribers add to it and never commit.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A purchase was paid and its services started. sender: the Order; kwargs: payment,
#: card (SavedCard | None), services (list[Service]), now.
services_activated = _signals.signal("services-activated")

#: A renewal was paid and its service extended. sender: the Service; kwargs: renewal,
#: order, payment, old_expiry, new_expiry, now.
service_renewed = _signals.signal("service-renewed")
