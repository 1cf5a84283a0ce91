"""Money: integer cents end to end, formatted the Italian way."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.numbers import parse_pattern

VAT_RATE_PERCENT = 22


def round_half_up_div(numerator: int, denominator: int) -> int:
    """Integer division rounding halves away from zero (commercial rounding)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    return sign * ((abs(numerator) * 2 + denominator) // (2 * denominator))


def vat_cents(net_cents: int, rate_percent: int = VAT_RATE_PERCENT) -> int:
    """VAT on a taxable amount, rounded half up to the cent."""
    return round_half_up_div(net_cents * rate_percent, 100)


_LOCALE = Locale.parse("it_IT")
_PATTERN = parse_pattern("¤ #,##0.00")


@lru_cache(maxsize=4096)
def format_eur(cents: int) -> str:
    """`€ 1.234,56` for 123456 (Babel's Italian symbols; parsed once, cached per amount)."""
    return _PATTERN.apply(Decimal(cents) / 100, _LOCALE, currency="EUR", currency_digits=False)
