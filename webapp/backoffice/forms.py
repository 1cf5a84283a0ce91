"""Reading the back office's form fields: Italian amounts and dates, with Italian errors."""

from __future__ import annotations

from datetime import date, datetime

from flask_babel import gettext as _

from webapp.clock import ROME
from webapp.errors import InvalidChoice
from webapp.i18n import lazy_gettext as _l
from webapp.money import AmountInvalid, parse_amount_cents


def parse_cents(raw: str | None, label: str = _l("Importo")) -> int:
    """'12,20', '12.20', '1.234,56' or '€ 12' → cents, by the one strict parser of typed
    amounts (money.parse_amount_cents); '0.001', '0.500' and anything else are refused."""
    try:
        return parse_amount_cents(raw)
    except AmountInvalid:
        raise InvalidChoice(
            _("%(label)s non valido: scrivi ad esempio 12,20 o 1.234,56.", label=label)
        ) from None


def parse_day(raw: str | None, label: str = _l("Data")) -> date:
    """An ISO date (the browser's date input) or dd/mm/yyyy."""
    text = (raw or "").strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise InvalidChoice(_("%(label)s non valida: usa il formato gg/mm/aaaa.", label=label))


def start_of_day(day: date) -> datetime:
    """Midnight in Italy of `day`, as an aware datetime (stored in UTC)."""
    return datetime(day.year, day.month, day.day, tzinfo=ROME)


def parse_int(raw: str | None, label: str, low: int, high: int) -> int:
    text = (raw or "").strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidChoice(
            _("%(label)s: scrivi un numero da %(low)d a %(high)d.", label=label, low=low, high=high)
        )
    return int(text)


def optional_int(raw: str | None, label: str, low: int, high: int) -> int | None:
    return None if not (raw or "").strip() else parse_int(raw, label, low, high)


def reason_of(form) -> str:
    """The reason typed for an action: required, the audit log keeps it."""
    reason = (form.get("reason") or "").strip()
    if len(reason) < 3:
        raise InvalidChoice(_("Scrivi il motivo dell'operazione (resta nel registro)."))
    return reason[:500]
