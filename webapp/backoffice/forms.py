"""Reading the back office's form fields: Italian amounts and dates, with Italian errors."""

from __future__ import annotations

from datetime import date, datetime

from flask_babel import gettext as _

from webapp.clock import ROME
from webapp.errors import InvalidChoice
from webapp.i18n import lazy_gettext as _l
from webapp.money import AmountInvalid, parse_amount_cents
from webapp.queryargs import parse_day, whole_number

__all__ = ["parse_cents", "parse_day", "parse_int", "optional_int", "reason_of", "start_of_day"]


def parse_cents(raw: str | None, label: str = _l("Importo")) -> int:
    """'12,20', '12.20', '1.234,56' or '€ 12' → cents, by the one strict parser of typed
    amounts (money.parse_amount_cents); '0.001', '0.500' and anything else are refused."""
    try:
        return parse_amount_cents(raw)
    except AmountInvalid:
        raise InvalidChoice(
            _("%(label)s non valido: scrivi ad esempio 12,20 o 1.234,56.", label=label)
        ) from None


def start_of_day(day: date) -> datetime:
    """Midnight in Italy of `day`, as an aware datetime (stored in UTC)."""
    return datetime(day.year, day.month, day.day, tzinfo=ROME)


def parse_int(raw: str | None, label: str, low: int, high: int) -> int:
    value = whole_number(raw)
    if value is None or not low <= value <= high:
        raise InvalidChoice(
            _("%(label)s: scrivi un numero da %(low)d a %(high)d.", label=label, low=low, high=high)
        )
    return value


def optional_int(raw: str | None, label: str, low: int, high: int) -> int | None:
    return None if not (raw or "").strip() else parse_int(raw, label, low, high)


def reason_of(form) -> str:
    """The reason typed for an action: required, the audit log keeps it."""
    reason = (form.get("reason") or "").strip()
    if len(reason) < 3:
        raise InvalidChoice(_("Scrivi il motivo dell'operazione (resta nel registro)."))
    return reason[:500]
