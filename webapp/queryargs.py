"""Numbers and dates typed by a person (a query string, a form field): read in one place.

Every value a view turns into a number or a date goes through here, so that none can overflow
an integer column, an OFFSET or a `date` (year 1 minus a day, 9999 plus one), and none that
only looks like a number ("²".isdigit() is True) reaches `int()`:

- `clamped_int`: page numbers and the like, brought inside their range (never refused);
- `parse_day`: a date in the years the shop can have data for, else a DomainError (422).
"""

from __future__ import annotations

from datetime import date, datetime

from flask_babel import gettext as _

from webapp.errors import InvalidChoice
from webapp.i18n import lazy_gettext as _l

MIN_DAY = date(2000, 1, 1)
MAX_DAY = date(2099, 12, 31)
MAX_DIGITS = 18  # fits a signed 64-bit integer


def whole_number(raw: object) -> int | None:
    """A non-negative whole number written with ASCII digits (at most 18), else None."""
    text = str(raw).strip() if raw is not None else ""
    if not text or len(text) > MAX_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def clamped_int(raw: object, default: int, low: int, high: int) -> int:
    """A number brought inside [low, high]; unreadable: `default`; too many digits: `high`."""
    text = str(raw).strip() if raw is not None else ""
    if text.isascii() and text.isdigit() and len(text) > MAX_DIGITS:
        return high
    value = whole_number(text)
    return default if value is None else min(max(value, low), high)


def parse_day(raw: object, label: str = _l("Data")) -> date:
    """An ISO date (the browser's date input) or dd/mm/yyyy, between MIN_DAY and MAX_DAY."""
    text = str(raw).strip() if raw is not None else ""
    if len(text) <= 10:
        for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
            try:
                day = datetime.strptime(text, fmt).date()
            except ValueError:
                continue
            if MIN_DAY <= day <= MAX_DAY:
                return day
            raise InvalidChoice(
                _(
                    "%(label)s fuori dall'intervallo: scegli una data dal %(low)s al %(high)s.",
                    label=label,
                    low=MIN_DAY.strftime("%d/%m/%Y"),
                    high=MAX_DAY.strftime("%d/%m/%Y"),
                )
            )
    raise InvalidChoice(_("%(label)s non valida: usa il formato gg/mm/aaaa.", label=label))
