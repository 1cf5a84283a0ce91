"""A document's states with the Sistema di Interscambio, and the one function that moves them.

The interface shows them in these words. Notifications can arrive twice or out of order (a
webhook and the feed, retries): a state is only ever replaced by a later step of the story, so
a late RC after the PA's NE, or a replayed MC, changes nothing.
"""

from __future__ import annotations

import enum


class SdiState(enum.StrEnum):
    MISSING_DATA = "dati_mancanti"  # the buyer's billing data is missing: never sent invalid
    TO_SEND = "da_inviare"
    SENT = "inviata"  # the intermediary took it (IdentificativoSdI), no outcome yet
    DELIVERED = "consegnata"  # RC
    NOT_DELIVERED = "non_consegnata"  # MC: issued, the original is in the buyer's area at AdE
    REJECTED = "scartata"  # NS: the document does not exist, correct and resend in 5 days
    ACCEPTED = "accettata"  # NE EC01 (public administration)
    REFUSED = "rifiutata"  # NE EC02 (public administration): credit note, then a new invoice
    EXPIRED = "decorrenza_termini"  # DT: the PA did not answer in 15 days
    UNDELIVERABLE = "impossibile_recapitare"  # AT: the PA unreachable for 10 days

    @property
    def label(self) -> str:
        return LABELS[self]

    @property
    def issued(self) -> bool:
        """The SdI took the invoice: it legally exists (RC or MC, and what follows them)."""
        return STEP[self] >= 3 and self is not SdiState.REJECTED

    @property
    def final(self) -> bool:
        return not NEXT[self]


LABELS = {
    SdiState.MISSING_DATA: "Dati mancanti",
    SdiState.TO_SEND: "Da inviare",
    SdiState.SENT: "Inviata",
    SdiState.DELIVERED: "Consegnata",
    SdiState.NOT_DELIVERED: "Non consegnata",
    SdiState.REJECTED: "Scartata",
    SdiState.ACCEPTED: "Accettata",
    SdiState.REFUSED: "Rifiutata",
    SdiState.EXPIRED: "Decorrenza termini",
    SdiState.UNDELIVERABLE: "Impossibile recapitare",
}
STEP = {
    SdiState.MISSING_DATA: 0,
    SdiState.TO_SEND: 1,
    SdiState.SENT: 2,
    SdiState.DELIVERED: 3,
    SdiState.NOT_DELIVERED: 3,
    SdiState.REJECTED: 3,
    SdiState.ACCEPTED: 4,
    SdiState.REFUSED: 4,
    SdiState.EXPIRED: 4,
    SdiState.UNDELIVERABLE: 4,
}
#: What may follow each state (skipping steps is allowed: an NE may come before its RC).
NEXT: dict[SdiState, set[SdiState]] = {
    SdiState.MISSING_DATA: {SdiState.TO_SEND},
    SdiState.TO_SEND: {
        SdiState.SENT,
        SdiState.DELIVERED,
        SdiState.NOT_DELIVERED,
        SdiState.REJECTED,
        SdiState.ACCEPTED,
        SdiState.REFUSED,
        SdiState.EXPIRED,
        SdiState.UNDELIVERABLE,
    },
    SdiState.SENT: {
        SdiState.DELIVERED,
        SdiState.NOT_DELIVERED,
        SdiState.REJECTED,
        SdiState.ACCEPTED,
        SdiState.REFUSED,
        SdiState.EXPIRED,
        SdiState.UNDELIVERABLE,
    },
    SdiState.DELIVERED: {SdiState.ACCEPTED, SdiState.REFUSED, SdiState.EXPIRED},
    SdiState.NOT_DELIVERED: {SdiState.UNDELIVERABLE},
    SdiState.REJECTED: set(),
    SdiState.ACCEPTED: set(),
    SdiState.REFUSED: set(),
    SdiState.EXPIRED: set(),
    SdiState.UNDELIVERABLE: set(),
}


def advance(current: SdiState, new: SdiState) -> SdiState | None:
    """The state after `new` is learnt: `new` when it follows `current`, else None (a replayed,
    late or impossible notification, which changes nothing)."""
    return new if new in NEXT[current] else None
