"""Time helpers: everything is stored UTC-aware; `now` is passed into services."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ROME = ZoneInfo("Europe/Rome")


def now_utc() -> datetime:
    """The current time, UTC-aware (the only place that reads the clock)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Treat a naive datetime read back from SQLite as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def add_years(value: datetime, years: int) -> datetime:
    """The same Italian calendar day and wall-clock time `years` later, as UTC; 29 February
    becomes 28 February. Years are added to the date the customer reads (Europe/Rome), not to
    the UTC instant: 29/02 00:30 in Rome is 28/02 in UTC, and must not end on 01/03."""
    local = as_utc(value).astimezone(ROME)
    target = local.year + years
    day = min(local.day, calendar.monthrange(target, local.month)[1])
    moved = local.replace(tzinfo=None, year=target, day=day).replace(tzinfo=ROME)
    return moved.astimezone(UTC)


def rome_date(value: datetime) -> date:
    """The calendar day in Italy of a UTC instant (what customers see)."""
    return as_utc(value).astimezone(ROME).date()


def format_day(value: datetime) -> str:
    """The Italian calendar day of a UTC instant as customers read it: 25/11/2026."""
    return rome_date(value).strftime("%d/%m/%Y")


def rome_midnight(day: date) -> datetime:
    """The first instant (as UTC) of a calendar day in Italy."""
    return datetime.combine(day, time(0), tzinfo=ROME).astimezone(UTC)


def expiring_by(today: date, days: int) -> datetime:
    """The bound `expires_at < bound` of what expires at most `days` calendar days after today.

    Renewals think in Italian calendar days, as customers and QA do ("scade il 30/11/2027"):
    whatever the time of day of the purchase or of the pass, a service enters the renewal
    window, gets its reminder and its retries on a day, not at an instant.
    """
    return rome_midnight(today + timedelta(days=days + 1))
