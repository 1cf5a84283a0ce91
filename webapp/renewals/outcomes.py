"""What a renewal pass can do to one renewal, and the report that counts it."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field


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
    outcomes: Counter[RenewalOutcome] = field(default_factory=Counter)

    def count(self, outcome: RenewalOutcome) -> None:
        self.outcomes[outcome] += 1

    def __getattr__(self, name: str) -> int:
        """`report.charged`, `report.failed`, …: how many renewals had that outcome."""
        try:
            return self.outcomes[RenewalOutcome(name)]
        except ValueError:
            raise AttributeError(name) from None

    def __str__(self) -> str:
        return (
            f"promemoria {self.reminders}, avvisi carta {self.warnings}, "
            f"rinnovi aperti {self.opened}, addebitati {self.charged}, "
            f"non riusciti {self.failed}, esito da verificare {self.unknown}, "
            f"scaduti {self.expired}, saltati {self.skipped}, errori {self.errors}"
        )
