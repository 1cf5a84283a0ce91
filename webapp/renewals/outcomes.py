"""What a renewal pass can do to one renewal, and the report that counts it."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

from flask_babel import gettext as _


class RenewalOutcome(enum.StrEnum):
    """The outcome of processing one renewal (or expiring one service)."""

    CHARGED = "charged"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the bank did not answer: asked again at the next pass
    EXPIRED = "expired"
    SKIPPED = "skipped"  # another worker holds it, or nothing is due
    ERRORS = "errors"  # an unexpected error; the claim runs out and a later pass retries


@dataclass
class RenewalReport:
    """What one pass did."""

    reminders: int = 0
    warnings: int = 0
    opened: int = 0
    due_reminders: int = 0  # "Rinnova ora" reminders and notices (services without auto-renewal)
    ceased: int = 0  # services whose grace window ended ("Cessato")
    outcomes: Counter[RenewalOutcome] = field(default_factory=Counter)

    def count(self, outcome: RenewalOutcome) -> None:
        self.outcomes[outcome] += 1

    def __getattr__(self, name: str) -> int:
        """`report.charged`, `report.failed`, …: how many renewals had that outcome."""
        try:
            return self.outcomes[RenewalOutcome(name)]
        except ValueError:
            raise AttributeError(name) from None

    def counts(self) -> dict[str, int]:
        """Every counter by name (reminders, warnings, opened, charged, failed, ...)."""
        fixed = {"reminders": self.reminders, "warnings": self.warnings, "opened": self.opened}
        return fixed | {outcome.value: self.outcomes[outcome] for outcome in RenewalOutcome}

    def __str__(self) -> str:
        return _(
            "promemoria %(reminders)s, promemoria rinnovo manuale %(due)s, "
            "avvisi carta %(warnings)s, "
            "rinnovi aperti %(opened)s, addebitati %(charged)s, "
            "non riusciti %(failed)s, esito da verificare %(unknown)s, "
            "scaduti %(expired)s, cessati %(ceased)s, saltati %(skipped)s, errori %(errors)s",
            reminders=self.reminders,
            due=self.due_reminders,
            warnings=self.warnings,
            opened=self.opened,
            charged=self.charged,
            failed=self.failed,
            unknown=self.unknown,
            expired=self.expired,
            ceased=self.ceased,
            skipped=self.skipped,
            errors=self.errors,
        )
