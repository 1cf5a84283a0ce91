"""One label for every state a person reads: the enums' internal codes in Italian.

`label(value)` (the templates' `| label` filter) turns "paid", "purchase", "hosted_page",
"succeeded", "active"... into "Pagato", "Acquisto", "Pagina della banca", "Riuscito", "Attivo".
An enum with a `label` of its own (ServiceKind, PaymentMethod, SdiState, StaffRole...) keeps it;
a code this table does not know is shown as it is, so a new state is never a blank.
"""

from __future__ import annotations

import enum

from webapp.i18n import lazy_gettext as _l
from webapp.payments.models import PaymentChannel, PaymentStatus, RefundKind, RefundStatus
from webapp.renewals.models import RenewalStatus, ServiceStatus
from webapp.shop.models import DiscountKind
from webapp.shop.order_models import OrderKind, OrderStatus

LABELS: dict[enum.Enum, object] = {
    OrderStatus.PENDING_PAYMENT: _l("In attesa di pagamento"),
    OrderStatus.PAID: _l("Pagato"),
    OrderStatus.CANCELLED: _l("Annullato"),
    OrderKind.PURCHASE: _l("Acquisto"),
    OrderKind.RENEWAL: _l("Rinnovo automatico"),
    PaymentChannel.HOSTED_PAGE: _l("Pagina della banca"),
    PaymentChannel.SAVED_CARD: _l("Carta salvata"),
    PaymentChannel.RENEWAL: _l("Addebito di rinnovo"),
    PaymentChannel.BANK_TRANSFER: _l("Bonifico bancario"),
    PaymentStatus.PENDING: _l("In corso"),
    PaymentStatus.SUCCEEDED: _l("Riuscito"),
    PaymentStatus.DECLINED: _l("Rifiutato"),
    PaymentStatus.FAILED: _l("Non riuscito"),
    PaymentStatus.UNKNOWN: _l("Esito sconosciuto"),
    PaymentStatus.DUPLICATE: _l("Duplicato"),
    PaymentStatus.TO_VERIFY: _l("Da verificare"),
    RefundStatus.PENDING: _l("In attesa"),
    RefundStatus.SUCCEEDED: _l("Riuscito"),
    RefundStatus.FAILED: _l("Non riuscito"),
    RefundStatus.UNKNOWN: _l("Esito sconosciuto"),
    RefundStatus.TO_VERIFY: _l("Da verificare"),
    RefundKind.DUPLICATE: _l("Pagamento duplicato"),
    RefundKind.OPERATOR: _l("Deciso dallo staff"),
    RefundKind.WITHDRAWAL: _l("Recesso"),
    RefundKind.MISMATCH: _l("Risposta della banca diversa"),
    ServiceStatus.ACTIVE: _l("Attivo"),
    ServiceStatus.EXPIRED: _l("Scaduto"),
    ServiceStatus.CANCELLED: _l("Annullato"),
    ServiceStatus.CEASED: _l("Cessato"),
    RenewalStatus.PENDING: _l("In corso"),
    RenewalStatus.SUCCEEDED: _l("Riuscito"),
    RenewalStatus.FAILED: _l("Non riuscito"),
    RenewalStatus.ABANDONED: _l("Abbandonato"),
    DiscountKind.PERCENT: _l("Percentuale"),
    DiscountKind.FIXED: _l("Importo fisso"),
}


def label(value: object) -> str:
    """The Italian words for an enum member (its own `label` first); anything else as text."""
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        own = getattr(value, "label", None)
        if own is not None and not callable(own):
            return str(own)
        if value in LABELS:
            return str(LABELS[value])
        return str(value.value)
    return str(value)
