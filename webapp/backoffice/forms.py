"""Reading the back office's form fields: Italian amounts and dates, with Italian errors."""

from __future__ import annotations

import re
from datetime import date, datetime

from webapp.clock import ROME
from webapp.errors import InvalidChoice

AMOUNT_RE = re.compile(r"^\d{1,7}(?:[.,]\d{1,2})?$")


def parse_cents(raw: str | None, label: str = "Importo") -> int:
    """'12,20', '12.20', '1.234,56' or '€ 12' → cents; anything else is refused."""
    text = (raw or "").replace("€", "").replace(" ", "").strip()
    if re.fullmatch(r"\d{1,3}(\.\d{3})+(,\d{1,2})?", text):
        text = text.replace(".", "")  # thousands separators, Italian style
    if not AMOUNT_RE.match(text):
        raise InvalidChoice(f"{label} non valido: scrivi ad esempio 12,20.")
    euros, _, cents = text.replace(",", ".").partition(".")
    return int(euros) * 100 + int((cents + "00")[:2])


def parse_day(raw: str | None, label: str = "Data") -> date:
    """An ISO date (the browser's date input) or dd/mm/yyyy."""
    text = (raw or "").strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise InvalidChoice(f"{label} non valida: usa il formato gg/mm/aaaa.")


def start_of_day(day: date) -> datetime:
    """Midnight in Italy of `day`, as an aware datetime (stored in UTC)."""
    return datetime(day.year, day.month, day.day, tzinfo=ROME)


def parse_int(raw: str | None, label: str, low: int, high: int) -> int:
    text = (raw or "").strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidChoice(f"{label}: scrivi un numero da {low} a {high}.")
    return int(text)


def optional_int(raw: str | None, label: str, low: int, high: int) -> int | None:
    return None if not (raw or "").strip() else parse_int(raw, label, low, high)


def reason_of(form) -> str:
    """The reason typed for an action: required, the audit log keeps it."""
    reason = (form.get("reason") or "").strip()
    if len(reason) < 3:
        raise InvalidChoice("Scrivi il motivo dell'operazione (resta nel registro).")
    return reason[:500]
