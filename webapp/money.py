"""Money: integer cents end to end, formatted the Italian way."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale
from babel.numbers import NumberFormatError, parse_decimal, parse_pattern

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


#: The largest amount a person may type: EUR 9.999.999,99.
MAX_TYPED_CENTS = 999_999_999
_DECIMAL_POINT = re.compile(r"\d+\.\d{1,2}")  # 12.20: a group of thousands has 3 digits


class AmountInvalid(ValueError):
    """An amount typed by a person that is not one unambiguous sum of euros and cents."""


MAX_TYPED_LENGTH = 40


def parse_amount_cents(raw: str | None) -> int:
    """The one parser of amounts typed by people: '12,20', '1.234,56', '€ 12', '12.20' → cents.

    Babel's strict Italian parsing ('.' groups thousands, ',' separates the cents), so a
    misplaced separator is refused instead of guessed: '0.001' and '0.500' are neither one euro
    nor five hundred, '1,234.56' is not Italian. A dot followed by one or two digits can only be
    a decimal point and is read as one. More than two decimals, signs and letters are refused.
    """
    if len(raw or "") > MAX_TYPED_LENGTH:  # no amount is longer: nothing reads a longer value
        raise AmountInvalid(raw)
    text = re.sub(r"[\s\u00a0\u202f€]", "", raw or "")
    if not re.fullmatch(r"\d[\d.,]*", text):
        raise AmountInvalid(raw)
    if _DECIMAL_POINT.fullmatch(text):
        text = text.replace(".", ",")
    try:
        value = parse_decimal(text, locale=_LOCALE, strict=True)
    except (NumberFormatError, InvalidOperation) as exc:
        raise AmountInvalid(raw) from exc
    cents = value * 100
    if cents != cents.to_integral_value() or not 0 <= cents <= MAX_TYPED_CENTS:
        raise AmountInvalid(raw)
    return int(cents)
