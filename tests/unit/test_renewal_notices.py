"""The announced price is the charged price (mutation round four): what a notice records, when
it is sent again, the verdict of the engine's batch path, and the charge held for a new notice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from tests.unit.renewal_fakes import make_card, make_service
from webapp.clock import rome_date, rome_midnight
from webapp.extensions import db as _db
from webapp.outbox.models import OutboxEmail
from webapp.renewals import notices
from webapp.renewals.models import Service
from webapp.renewals.services import RenewalPrice, settings

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)  # the window opens on 05/01/2027
DAY = timedelta(days=1)
WINDOW = rome_midnight(rome_date(EXPIRES) - 15 * DAY)


@pytest.fixture
def service(dummy_customer, catalogue, card):
    return make_service(
        dummy_customer, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=card
    )


def notices_sent() -> list[OutboxEmail]:
    _db.session.expire_all()
    return list(
        _db.session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.subject.contains("addebiteremo"))
            .order_by(OutboxEmail.id)
        )
    )


def fresh(obj):
    _db.session.expire_all()
    return _db.session.get(type(obj), obj.id)


PRICE = RenewalPrice(1, 500, 110)  # € 6,10
DEARER = RenewalPrice(1, 700, 154)  # € 8,54


def row(period=EXPIRES, cents=610, years=1, card_id=7, expires=EXPIRES):
    return SimpleNamespace(
        announced_period=period,
        expires_at=expires,
        announced_cents=cents,
        announced_years=years,
        announced_card_id=card_id,
        card_id=7,
    )


def test_the_batch_verdict_charges_only_what_was_announced_for_this_period():
    assert notices.batch_verdict(row(), 610, 1) == "charge"
    assert notices.batch_verdict(row(period=None), 610, 1) == "announce"
    assert notices.batch_verdict(row(period=EXPIRES.replace(year=2026)), 610, 1) == "announce"
    assert notices.batch_verdict(row(cents=500), 610, 1) == "no"
    assert notices.batch_verdict(row(years=2), 610, 1) == "no"
    assert notices.batch_verdict(row(card_id=8), 610, 1) == "no"
    naive = EXPIRES.replace(tzinfo=None)  # SQLite reads instants back without their zone
    assert notices.batch_verdict(row(period=naive), 610, 1) == "charge"


def test_a_charge_held_for_a_notice_is_due_at_the_first_instant_of_tomorrow_in_italy():
    late = datetime(2027, 1, 5, 22, 30, tzinfo=UTC)  # 23:30 in Italy, still the 5th
    assert notices.next_day(late) == datetime(2027, 1, 5, 23, 0, tzinfo=UTC)
    assert notices.next_day(datetime(2027, 1, 5, 23, 30, tzinfo=UTC)) == datetime(
        2027, 1, 6, 23, 0, tzinfo=UTC
    )


def test_a_notice_is_recorded_once_and_a_twin_loses(service):
    first = notices.announcement_of(service, PRICE)
    assert first == notices.Announcement(EXPIRES, 610, 1, service.saved_card_id)
    assert notices.last_announcement(service) is None
    assert notices.record(service, first)
    assert notices.last_announcement(service) == first
    assert not notices.record(service, first)  # unchanged
    _db.session.commit()
    # A twin pass records the dearer notice meanwhile; this one still holds the first.
    _db.session.execute(
        Service.__table__.update()
        .where(Service.__table__.c.id == service.id)
        .values(announced_cents=854)
    )
    assert service.announced_cents == 610
    assert not notices.record(service, notices.announcement_of(service, RenewalPrice(2, 1000, 220)))
    assert notices.last_announcement(service) == notices.Announcement(
        EXPIRES, 854, 1, service.saved_card_id
    )


def test_last_years_notice_is_not_this_periods(service):
    notices.record(service, notices.Announcement(EXPIRES.replace(year=2026), 610, 1, None))
    assert notices.last_announcement(service) is None


def test_a_change_is_announced_only_after_a_first_notice_and_only_once(service, now):
    cfg = settings()
    assert not notices.notify_change(service, now, cfg)  # the reminder will tell it
    assert notices_sent() == []
    notices.record(service, notices.announcement_of(service, PRICE))
    assert not notices.notify_change(service, now, cfg)  # the same terms: nothing to tell
    service.frequency_years = 2
    _db.session.commit()
    assert notices.notify_change(service, now, cfg)
    _db.session.commit()
    [mail] = notices_sent()
    assert mail.subject == "Rinnovo di PEC Standard: il 05/01/2027 addebiteremo € 12,20"
    period = int(EXPIRES.timestamp())
    assert mail.dedupe_key == (
        f"notice-{service.id}-{period}-1220-2-{service.saved_card_id}-{int(now.timestamp())}"
    )
    assert "Visa •••• 4242" in mail.body_text  # the card it will charge
    assert not notices.notify_change(fresh(service), now + DAY, cfg)
    assert len(notices_sent()) == 1


def test_in_the_window_the_notice_names_today(service):
    cfg = settings()
    notices.record(service, notices.announcement_of(service, PRICE))
    service.frequency_years = 2
    _db.session.commit()
    today = WINDOW + 3 * DAY + timedelta(hours=9)
    assert notices.notify_change(service, today, cfg)
    _db.session.commit()
    [mail] = notices_sent()
    assert "il 08/01/2027 addebiteremo" in mail.subject


def test_before_a_charge_only_a_new_amount_or_frequency_waits(service, card, dummy_customer):
    cfg = settings()
    in_window = WINDOW + timedelta(hours=10)
    assert notices.announce_before_charge(service, PRICE, in_window, cfg)  # nothing told: go
    assert len(notices_sent()) == 1  # the notice goes with the attempt
    assert notices.announce_before_charge(service, PRICE, in_window, cfg)  # as told
    assert len(notices_sent()) == 1
    other = make_card(dummy_customer, last4="1111")
    service.saved_card_id = other.id
    _db.session.commit()
    assert notices.announce_before_charge(fresh(service), PRICE, in_window, cfg)  # card only
    assert len(notices_sent()) == 2
    assert not notices.announce_before_charge(fresh(service), DEARER, in_window, cfg)
    assert len(notices_sent()) == 3
    two_years = RenewalPrice(2, 1000, 220)
    assert not notices.announce_before_charge(fresh(service), two_years, in_window, cfg)
    expiry_day = rome_midnight(rome_date(EXPIRES))  # on the expiry day it goes ahead
    assert notices.announce_before_charge(fresh(service), DEARER, expiry_day, cfg)


def test_the_batch_announces_its_unannounced_renewals(service, now):
    job = SimpleNamespace(
        service_id=service.id, years=1, net_cents=500, vat_cents=110, split_payment=False
    )
    notices.announce_jobs([job], WINDOW, settings())
    _db.session.commit()
    [mail] = notices_sent()
    assert mail.subject == "Rinnovo di PEC Standard: il 05/01/2027 addebiteremo € 6,10"
    assert notices.last_announcement(fresh(service)) == notices.Announcement(
        EXPIRES, 610, 1, service.saved_card_id
    )


def test_a_notice_recorded_for_one_service_leaves_the_others_alone(
    service, dummy_customer, catalogue, card
):
    other = make_service(
        dummy_customer, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=card
    )
    assert notices.record(service, notices.announcement_of(service, PRICE))
    _db.session.commit()
    assert notices.last_announcement(fresh(other)) is None


def test_the_batch_announces_a_public_administrations_price_without_vat(service):
    job = SimpleNamespace(
        service_id=service.id, years=1, net_cents=500, vat_cents=110, split_payment=True
    )
    notices.announce_jobs([job], WINDOW, settings())
    _db.session.commit()
    [mail] = notices_sent()
    assert mail.subject.endswith("addebiteremo € 5,00")  # split payment: the net only
