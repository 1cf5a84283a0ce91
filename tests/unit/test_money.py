"""Money and time helpers: Italian formatting, commercial rounding, VAT, years and days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import pytest
from flask import render_template_string
from hypothesis import given
from hypothesis import strategies as st

from webapp.clock import ROME, add_years, as_utc, rome_date
from webapp.money import format_eur, round_half_up_div, vat_cents


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (123456, "€ 1.234,56"),
        (5, "€ 0,05"),
        (0, "€ 0,00"),
        (100, "€ 1,00"),
        (99, "€ 0,99"),
        (100000000, "€ 1.000.000,00"),
        (-123456, "-€ 1.234,56"),
        (-5, "-€ 0,05"),
    ],
)
def test_format_eur(cents, text):
    assert format_eur(cents) == text


def test_eur_filter_in_templates(app):
    with app.test_request_context():
        assert render_template_string("{{ 5478 | eur }}") == "€ 54,78"


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (5, 10, 1),
        (4, 10, 0),
        (15, 10, 2),
        (25, 10, 3),
        (14, 10, 1),
        (-5, 10, -1),
        (-15, 10, -2),
        (-14, 10, -1),
        (0, 7, 0),
        (7, 7, 1),
        (1, 3, 0),
        (2, 3, 1),
    ],
)
def test_round_half_up_div(numerator, denominator, expected):
    assert round_half_up_div(numerator, denominator) == expected


@pytest.mark.parametrize("denominator", [0, -1])
def test_round_half_up_div_refuses_a_non_positive_denominator(denominator):
    with pytest.raises(ValueError):
        round_half_up_div(10, denominator)


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**6))
def test_round_half_up_div_matches_decimal(numerator, denominator):
    exact = (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), ROUND_HALF_UP)
    assert round_half_up_div(numerator, denominator) == int(exact)


@pytest.mark.parametrize(
    ("net", "vat"),
    [
        (250, 55),  # 55,00 exactly
        (2, 0),  # 0,44
        (3, 1),  # 0,66
        (25, 6),  # 5,5 → 6 (half up)
        (75, 17),  # 16,5 → 17
        (125, 28),  # 27,5 → 28
        (0, 0),
        (100, 22),
        (4490, 988),  # 987,8
    ],
)
def test_vat_cents(net, vat):
    assert vat_cents(net) == vat


@given(st.integers(0, 10**9))
def test_vat_cents_is_22_percent_rounded_half_up(net):
    exact = (Decimal(net) * Decimal("0.22")).quantize(Decimal(1), ROUND_HALF_UP)
    assert vat_cents(net) == int(exact)


def test_vat_cents_other_rate():
    assert vat_cents(1000, 10) == 100
    assert vat_cents(5, 10) == 1  # 0,5 → 1


def test_add_years_on_29_february():
    leap = datetime(2024, 2, 29, 9, 30, tzinfo=UTC)
    assert add_years(leap, 1) == datetime(2025, 2, 28, 9, 30, tzinfo=UTC)
    assert add_years(leap, 4) == datetime(2028, 2, 29, 9, 30, tzinfo=UTC)
    assert add_years(leap, 5) == datetime(2029, 2, 28, 9, 30, tzinfo=UTC)


def test_add_years_on_the_italian_calendar_day():
    """Issue 20, bug 9: two services both expiring on Italian 29/02/2028 end on the same day."""
    # As stored: UTC instants (the first is 28/02 23:30 in UTC).
    just_after_midnight = datetime(2028, 2, 29, 0, 30, tzinfo=ROME).astimezone(UTC)
    at_noon = datetime(2028, 2, 29, 12, 0, tzinfo=ROME).astimezone(UTC)
    ends = {rome_date(add_years(v, 5)) for v in (just_after_midnight, at_noon)}
    assert ends == {date(2033, 2, 28)}
    assert add_years(just_after_midnight, 4) == datetime(2032, 2, 29, 0, 30, tzinfo=ROME)
    # Across a DST change the Italian wall-clock time is kept.
    summer = datetime(2026, 7, 1, 0, 15, tzinfo=ROME).astimezone(UTC)
    assert add_years(summer, 1).astimezone(ROME).replace(tzinfo=None) == datetime(2027, 7, 1, 0, 15)


def test_add_years_keeps_day_time_and_zone():
    start = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert add_years(start, 3) == datetime(2029, 11, 25, 10, 0, tzinfo=UTC)
    assert add_years(start, 3).tzinfo is UTC


def test_rome_date_is_the_italian_calendar_day():
    assert rome_date(datetime(2026, 11, 24, 23, 30, tzinfo=UTC)).isoformat() == "2026-11-25"
    assert rome_date(datetime(2026, 7, 1, 22, 30, tzinfo=UTC)).isoformat() == "2026-07-02"
    assert rome_date(datetime(2026, 7, 1, 21, 30, tzinfo=UTC)).isoformat() == "2026-07-01"


def test_as_utc():
    assert as_utc(datetime(2026, 1, 1, 12)) == datetime(2026, 1, 1, 12, tzinfo=UTC)
    plus_two = timezone(timedelta(hours=2))
    converted = as_utc(datetime(2026, 1, 1, 12, tzinfo=plus_two))
    assert converted == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert converted.utcoffset() == timedelta(0)
