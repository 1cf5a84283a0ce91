"""Money: integer cents end to end, formatted the Italian way."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency

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


def format_eur(cents: int) -> str:
    """`€ 1.234,56` for 123456."""
    return format_currency(
        Decimal(cents) / 100, "EUR", format="¤ #,##0.00", locale="it_IT", currency_digits=False
    )
