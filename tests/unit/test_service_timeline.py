"""The back office's view of a service (mutation round four): its timeline, renewals and
events newest first in the operator's words, and the services still in their grace window."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.unit.renewal_fakes import make_service
from webapp.extensions import db as _db
from webapp.renewals.models import Renewal, RenewalStatus, ServiceStatus
from webapp.renewals.timeline import (
    EMAIL,
    RENEWAL,
    STATE,
    Entry,
    GraceRow,
    in_grace,
    record_event,
    timeline_of,
)

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)  # a Wednesday, 11:00 in Italy
DAY = timedelta(days=1)
T0 = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def products(catalogue):
    return catalogue["products"]


def test_the_timeline_tells_each_renewal_and_event_newest_first(dummy_customer, products):
    service = make_service(dummy_customer, products["PEC-STD"], expires_at=EXPIRES)
    other = make_service(dummy_customer, products["SPID-PF"], expires_at=EXPIRES)
    _db.session.add_all(
        [
            Renewal(  # last year's, paid by hand: no attempt, its old reason not told
                service_id=service.id,
                period_expires_at=EXPIRES.replace(year=2026),
                status=RenewalStatus.SUCCEEDED,
                manual=True,
                failure_reason="Vecchio motivo.",
                created_at=T0 - 400 * DAY,
                completed_at=T0 - 380 * DAY,
            ),
            Renewal(  # this year's, failed twice: told at its last attempt
                service_id=service.id,
                period_expires_at=EXPIRES,
                status=RenewalStatus.FAILED,
                attempts=2,
                failure_reason="Fondi insufficienti.",
                created_at=T0,
                last_attempt_at=T0 + 5 * DAY,
            ),
            Renewal(service_id=other.id, period_expires_at=EXPIRES, created_at=T0),
        ]
    )
    record_event(service.id, STATE, "Scaduto", T0 + 16 * DAY)
    record_event(service.id, EMAIL, "x" * 400, T0 + 2 * DAY)
    record_event(other.id, STATE, "Scaduto", T0 + 16 * DAY)
    _db.session.commit()
    assert timeline_of(service.id) == [
        Entry(T0 + 16 * DAY, STATE, "Scaduto"),
        Entry(
            T0 + 5 * DAY,
            RENEWAL,
            "Rinnovo automatico del periodo in scadenza il 20/01/2027: non riuscito, "
            "tentativi 2 (Fondi insufficienti.)",
        ),
        Entry(T0 + 2 * DAY, EMAIL, "x" * 300),  # the column's 300 characters
        Entry(
            T0 - 380 * DAY,
            RENEWAL,
            "Rinnovo manuale del periodo in scadenza il 20/01/2026: riuscito",
        ),
    ]
    assert timeline_of(other.id) == [
        Entry(T0 + 16 * DAY, STATE, "Scaduto"),
        Entry(T0, RENEWAL, "Rinnovo automatico del periodo in scadenza il 20/01/2027: in corso"),
    ]


def test_an_abandoned_renewal_reads_as_such_at_its_close(dummy_customer, products):
    service = make_service(dummy_customer, products["PEC-STD"], expires_at=EXPIRES)
    _db.session.add(
        Renewal(
            service_id=service.id,
            period_expires_at=EXPIRES,
            status=RenewalStatus.ABANDONED,
            attempts=1,
            created_at=T0,
            last_attempt_at=T0 + DAY,
            completed_at=T0 + 16 * DAY,
        )
    )
    _db.session.commit()
    assert timeline_of(service.id) == [
        Entry(
            T0 + 16 * DAY,
            RENEWAL,
            "Rinnovo automatico del periodo in scadenza il 20/01/2027: "
            "abbandonato (servizio scaduto), tentativi 1",
        )
    ]


def _expired(customer, product, expires_at, status=ServiceStatus.EXPIRED):
    service = make_service(customer, product, expires_at=expires_at, auto_renew=False)
    service.status = status
    _db.session.commit()
    return service


def test_the_grace_list_holds_the_services_still_renewable_soonest_to_cease_first(
    create_customer, products
):
    anna = create_customer(email="anna@example.it", name="Anna Bianchi")
    bruno = create_customer(email="bruno@example.it", name="Bruno Verdi")
    pec, spid = products["PEC-STD"], products["SPID-PF"]  # 90 and 30 days of grace
    today = date(2027, 2, 10)
    pec_old = _expired(anna, pec, EXPIRES)  # window to 20/04
    spid_old = _expired(bruno, spid, EXPIRES)  # window to 19/02
    spid_last_day = _expired(anna, spid, datetime(2027, 1, 11, 10, 0, tzinfo=UTC))  # to 10/02
    still_active = _expired(bruno, pec, EXPIRES + DAY, ServiceStatus.ACTIVE)  # to 21/04
    _expired(anna, spid, datetime(2027, 1, 10, 10, 0, tzinfo=UTC))  # window ended 09/02
    _expired(anna, pec, EXPIRES, ServiceStatus.CEASED)
    _expired(anna, pec, EXPIRES, ServiceStatus.CANCELLED)
    _expired(anna, pec, datetime(2027, 2, 10, 10, 0, tzinfo=UTC))  # its expiry day: valid
    firma = next(p for p in products.values() if p.kind.name == "FIRMA_DIGITALE")
    _expired(anna, firma, EXPIRES)  # no grace
    marca = next(p for p in products.values() if not p.renewable_by_hand)
    marca.grace_days = 30
    _db.session.commit()
    _expired(anna, marca, EXPIRES)  # not renewable by hand
    rows = in_grace(today)
    assert [r.service_id for r in rows] == [
        spid_last_day.id,
        spid_old.id,
        pec_old.id,
        still_active.id,
    ]
    assert rows[1] == GraceRow(
        spid_old.id,
        bruno.id,
        "Bruno Verdi",
        "bruno@example.it",
        spid.name,
        EXPIRES,
        date(2027, 2, 19),
    )
    assert [r.grace_ends for r in rows] == [
        date(2027, 2, 10),
        date(2027, 2, 19),
        date(2027, 4, 20),
        date(2027, 4, 21),
    ]
    assert [r.service_id for r in in_grace(today, limit=2)] == [spid_last_day.id, spid_old.id]


def test_the_grace_list_ties_on_the_same_last_day_by_service(create_customer, products):
    anna = create_customer(email="anna@example.it", name="Anna Bianchi")
    first = _expired(anna, products["PEC-STD"], EXPIRES)
    second = _expired(anna, products["PEC-PRO"], EXPIRES)
    assert [r.service_id for r in in_grace(date(2027, 2, 10))] == [first.id, second.id]


def test_the_grace_list_bounds_a_day_of_grace_and_an_expiry_at_midnight(create_customer, products):
    from webapp.clock import rome_midnight

    anna = create_customer(email="anna@example.it", name="Anna Bianchi")
    today = date(2027, 2, 10)
    pec = products["PEC-STD"]
    pec.grace_days = 1  # one day of grace: renewable the day after its expiry only
    _db.session.commit()
    yesterday = _expired(anna, pec, datetime(2027, 2, 9, 10, 0, tzinfo=UTC))
    _expired(anna, pec, rome_midnight(today))  # its expiry day is today: still valid
    assert [(r.service_id, r.grace_ends) for r in in_grace(today)] == [(yesterday.id, today)]
