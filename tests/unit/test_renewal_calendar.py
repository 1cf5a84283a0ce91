"""Renewals fall on Italian calendar days, whatever the time of day of the purchase or the pass.

QA thinks in dates, and so does the customer ("scade il 30/11/2027"): `flask renewals run
--as-of 2027-10-31` (noon in Italy) sends the reminder of a service bought at 23:55 as well as one
bought at 00:05; the window opens, the retries fall and the service expires on days.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from tests.unit.renewal_fakes import make_card, make_service
from webapp.clock import ROME, add_years, rome_date
from webapp.extensions import db
from webapp.renewals.engine import run_renewals
from webapp.renewals.models import Renewal, ServiceStatus
from webapp.renewals.scheduler import parse_as_of

BOUGHT_ON = date(2026, 11, 30)
EXPIRY_DAY = date(2027, 11, 30)  # "scade il 30/11/2027"


def as_of(day: date, days: int = 0) -> datetime:
    """What `flask renewals run --as-of` makes of a date: noon in Italy."""
    return parse_as_of((day + timedelta(days=days)).isoformat())


@pytest.mark.parametrize("bought_at", [time(0, 5), time(12, 0), time(23, 55)])
def test_reminder_window_retries_and_expiry_fall_on_days(
    fake, dummy_customer, catalogue, bought_at
):
    bought = datetime.combine(BOUGHT_ON, bought_at, tzinfo=ROME)
    expires_at = add_years(bought.astimezone(ROME), 1)
    assert rome_date(expires_at) == EXPIRY_DAY
    card = make_card(dummy_customer, exp_year=2030)
    service = make_service(
        dummy_customer, catalogue["products"]["PEC-STD"], expires_at=expires_at, card=card
    )
    fake.mode = "insufficient_funds"

    assert run_renewals(as_of(EXPIRY_DAY, -31)).reminders == 0
    assert run_renewals(as_of(EXPIRY_DAY, -30)).reminders == 1  # 31/10, whatever the hour
    assert run_renewals(as_of(EXPIRY_DAY, -16)).opened == 0
    first = run_renewals(as_of(EXPIRY_DAY, -15))  # 15/11: the window opens, the charge fails
    assert (first.opened, first.failed) == (1, 1)
    renewal = db.session.scalar(db.select(Renewal).where(Renewal.service_id == service.id))
    assert rome_date(renewal.next_attempt_at) == EXPIRY_DAY - timedelta(days=10)
    assert run_renewals(as_of(EXPIRY_DAY, -11)).failed == 0  # not a retry day
    for days in (-10, -5, -1):  # 20/11, 25/11, 29/11
        assert run_renewals(as_of(EXPIRY_DAY, days)).failed == 1
    assert len(fake.calls) == 4
    assert run_renewals(as_of(EXPIRY_DAY)).expired == 0  # valid through 30/11
    assert run_renewals(as_of(EXPIRY_DAY, 1)).expired == 1  # expired on 1/12
    db.session.expire_all()
    assert db.session.get(type(service), service.id).status is ServiceStatus.EXPIRED


def test_a_pass_just_after_midnight_counts_for_the_new_day(fake, dummy_customer, catalogue):
    """The real scheduler runs at any hour: at 00:01 it is already the next calendar day."""
    expires_at = datetime.combine(EXPIRY_DAY, time(23, 55), tzinfo=ROME)
    card = make_card(dummy_customer, exp_year=2030)
    make_service(dummy_customer, catalogue["products"]["PEC-STD"], expires_at=expires_at, card=card)
    reminder_day = EXPIRY_DAY - timedelta(days=30)
    just_before = datetime.combine(reminder_day, time(0, 0), tzinfo=ROME) - timedelta(minutes=1)
    assert run_renewals(just_before).reminders == 0
    assert run_renewals(just_before + timedelta(minutes=2)).reminders == 1
