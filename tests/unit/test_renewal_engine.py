"""The renewal engine with a fixed clock and a fake bank: window, price, retries, expiry,
reminders, card warnings, unknown outcomes, crashes, and two passes at once charging once."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tests.unit.renewal_fakes import emails, make_card, make_service
from webapp.clock import rome_date, rome_midnight
from webapp.extensions import db as _db
from webapp.outbox.models import OutboxEmail
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.renewals.charging import next_retry
from webapp.renewals.engine import retry_renewal, run_renewals
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceStatus
from webapp.shop.order_models import Order, OrderKind, OrderStatus

# The service expires on 20 January 2027: reminder on 21/12, window on 5/1, retries on 10/1,
# 15/1 and 19/1 (the defaults: 30, 15 and 10-5-1 days).
EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def days_before(days: float) -> datetime:
    return EXPIRES - days * DAY


def day_start(days_before_expiry: int) -> datetime:
    """The first instant in Italy of the day `days_before_expiry` days before the expiry day."""
    return rome_midnight(rome_date(EXPIRES) - timedelta(days=days_before_expiry))


@pytest.fixture
def pec(catalogue):
    return catalogue["products"]["PEC-STD"]  # € 5,00 a year


@pytest.fixture
def service(dummy_customer, pec, card):
    return make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)


def fresh(obj):
    _db.session.expire_all()
    return _db.session.get(type(obj), obj.id)


def renewal_of(service) -> Renewal | None:
    _db.session.expire_all()
    return _db.session.scalar(select(Renewal).where(Renewal.service_id == service.id))


# --- reminders and warnings ----------------------------------------------------------------


def test_nothing_happens_before_the_reminder(fake, service):
    report = run_renewals(days_before(31))
    assert (report.reminders, report.opened, report.charged, report.expired) == (0, 0, 0, 0)
    assert fake.calls == []
    assert _db.session.scalar(select(func.count(OutboxEmail.id))) == 0


def test_reminder_30_days_before_says_amount_card_and_how_to_turn_off(fake, service):
    report = run_renewals(days_before(30))
    assert report.reminders == 1
    assert report.warnings == 0
    [mail] = emails("Promemoria")
    assert mail.subject == "Promemoria: il 05/01/2027 rinnoviamo PEC Standard"
    assert mail.dedupe_key == f"reminders-{service.customer_id}-2026-12-21"  # one a day
    assert "05/01/2027" in mail.body_text  # the renewal date: 15 days before expiry
    assert "€ 6,10" in mail.body_text  # 5,00 + 22% VAT
    assert "Visa •••• 4242" in mail.body_text
    assert "disattiva il Rinnovo automatico" in mail.body_text
    assert "/area-clienti" in mail.body_text
    # A rerun, or the next pass a few minutes later, sends nothing more; nobody is charged.
    assert run_renewals(days_before(30)).reminders == 0
    assert run_renewals(days_before(29)).reminders == 0
    assert len(emails("Promemoria")) == 1
    assert fake.calls == []


def test_no_reminder_when_auto_renewal_is_off(fake, dummy_customer, pec, card):
    make_service(dummy_customer, pec, expires_at=EXPIRES, card=card, auto_renew=False)
    assert run_renewals(days_before(30)).reminders == 0


def test_warning_when_the_card_will_have_expired_by_the_renewal_date(fake, dummy_customer, pec):
    # Valid today (November 2026) but not on 5 January 2027.
    old = make_card(dummy_customer, exp_month=12, exp_year=2026, last4="1111")
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=old)
    report = run_renewals(days_before(30))
    assert (report.reminders, report.warnings) == (1, 1)
    # The warning is the reminder itself: one e-mail, whose subject says what to do.
    [warning] = _db.session.scalars(select(OutboxEmail)).all()
    assert warning.subject == "La carta per il rinnovo di PEC Standard sarà scaduta"
    assert warning.dedupe_key == f"reminders-{service.customer_id}-2026-12-21"
    assert "Visa •••• 1111" in warning.body_text
    assert "scade a fine 12/2026" in warning.body_text
    assert "/area-clienti/carte" in warning.body_text
    assert run_renewals(days_before(29)).warnings == 0


def test_no_warning_for_a_card_valid_through_the_renewal_month(fake, dummy_customer, pec):
    january = make_card(dummy_customer, exp_month=1, exp_year=2027)
    make_service(dummy_customer, pec, expires_at=EXPIRES, card=january)
    assert run_renewals(days_before(30)).warnings == 0


# --- the charge ------------------------------------------------------------------------------


def test_not_charged_before_the_window(fake, service):
    """The window opens on a day (15 days before the expiry day), whatever the time."""
    report = run_renewals(day_start(15) - timedelta(minutes=1))  # 23:59 the day before
    assert report.charged == 0
    assert fake.calls == []
    assert renewal_of(service) is None
    assert run_renewals(day_start(15) + timedelta(minutes=1)).charged == 1  # 00:01 that day


def test_charged_in_window_at_todays_list_price_times_frequency_without_discount(
    fake, dummy_customer, pec, card
):
    # Bought for 2 years with a discount; the list price went up since.
    service = make_service(
        dummy_customer, pec, expires_at=EXPIRES, years=2, card=card, discount_cents=300
    )
    pec.yearly_price_cents = 700
    _db.session.commit()

    report = run_renewals(days_before(15))
    assert (report.opened, report.charged, report.failed) == (1, 1, 0)
    [call] = fake.calls
    assert call["amount_cents"] == 1400 + 308  # 2 x 7,00 + 22% VAT, no discount
    assert call["initiator"] == "merchant"
    assert call["token"] == card.gateway_token

    renewal = renewal_of(service)
    assert renewal.status is RenewalStatus.SUCCEEDED
    assert renewal.period_expires_at == EXPIRES
    assert call["key"] == f"renewal-{renewal.id}-1"
    order = _db.session.get(Order, renewal.order_id)
    assert (order.kind, order.status) == (OrderKind.RENEWAL, OrderStatus.PAID)
    assert (order.net_cents, order.discount_cents, order.vat_cents, order.total_cents) == (
        1400,
        0,
        308,
        1708,
    )
    assert order.lines[0].service_id == service.id and order.lines[0].years == 2
    [payment] = _db.session.scalars(select(Payment).where(Payment.order_id == order.id))
    assert (payment.channel, payment.status) == (PaymentChannel.RENEWAL, PaymentStatus.SUCCEEDED)

    # Extended by the frequency from the old expiry, not from the day of the charge.
    service = fresh(service)
    assert service.expires_at == datetime(2029, 1, 20, 10, 0, tzinfo=UTC)
    assert service.status is ServiceStatus.ACTIVE and service.auto_renew

    [receipt] = emails("Rinnovo effettuato")
    assert "20/01/2029" in receipt.body_text
    assert "€ 17,08" in receipt.body_text
    assert f"/area-clienti/ordini/{order.id}" in receipt.body_text

    # Later passes in the same period charge nothing more.
    for when in (days_before(15), days_before(10), days_before(1), EXPIRES + DAY):
        assert run_renewals(when).charged == 0
    assert len(fake.calls) == 1


def test_a_service_with_auto_renewal_off_is_not_charged_and_expires(
    fake, dummy_customer, pec, card
):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card, auto_renew=False)
    assert run_renewals(days_before(15)).opened == 0
    assert run_renewals(EXPIRES + timedelta(hours=12)).expired == 0  # valid all its last day
    report = run_renewals(day_start(-1))  # the first instant of the day after
    assert report.expired == 1
    assert fake.calls == []
    assert fresh(service).status is ServiceStatus.EXPIRED
    [mail] = emails("Servizio scaduto")
    assert "è scaduto il 20/01/2027" in mail.body_text
    assert "non è riuscito" not in mail.body_text


def test_firma_digitale_is_never_charged(fake, dummy_customer, catalogue, card):
    firma = catalogue["products"]["FIRMA-R"]
    make_service(dummy_customer, firma, expires_at=EXPIRES, card=card, auto_renew=True)
    report = run_renewals(days_before(15))
    assert (report.opened, report.charged) == (0, 0)
    assert fake.calls == []


# --- failures, retries and expiry ------------------------------------------------------------


def test_declined_renewal_is_retried_on_schedule_then_the_service_expires(fake, service):
    fake.mode = "insufficient_funds"
    assert run_renewals(days_before(15)).failed == 1
    renewal = renewal_of(service)
    assert renewal.status is RenewalStatus.FAILED
    assert renewal.failure_code == "insufficient_funds"
    assert "fondi sufficienti" in renewal.failure_reason
    assert renewal.next_attempt_at == day_start(10)
    [mail] = emails("Rinnovo non riuscito")
    assert "fondi sufficienti" in mail.body_text
    assert "/area-clienti/carte" in mail.body_text  # the link to add a card
    assert "Riproveremo il 10/01/2027" in mail.body_text

    # Not due between retries.
    assert run_renewals(days_before(12)).failed == 0
    assert len(fake.calls) == 1

    for when, following in ((10, day_start(5)), (5, day_start(1)), (1, None)):
        assert run_renewals(days_before(when)).failed == 1
        assert renewal_of(service).next_attempt_at == following
    assert len(fake.calls) == 4
    assert len({c["key"] for c in fake.calls}) == 4  # four attempts, four keys
    assert len(emails("Rinnovo non riuscito")) == 4
    assert fake.succeeded == []

    # The expiry passes unpaid: expired, auto-renewal off, the order cancelled, an e-mail.
    assert run_renewals(day_start(-1) - timedelta(minutes=1)).expired == 0  # its last day
    report = run_renewals(day_start(-1))
    assert (report.expired, report.charged) == (1, 0)
    service = fresh(service)
    assert service.status is ServiceStatus.EXPIRED and not service.auto_renew
    renewal = renewal_of(service)
    assert renewal.status is RenewalStatus.ABANDONED
    assert _db.session.get(Order, renewal.order_id).status is OrderStatus.CANCELLED
    [mail] = emails("Servizio scaduto")
    assert "Il rinnovo automatico non è riuscito" in mail.body_text
    assert run_renewals(EXPIRES + 2 * DAY).expired == 0
    assert len(emails("Servizio scaduto")) == 1
    assert len(fake.calls) == 4


def test_a_retry_takes_the_new_frequency_and_price(fake, service):
    fake.mode = "card_declined"
    run_renewals(days_before(15))
    service = fresh(service)
    service.frequency_years = 3
    _db.session.commit()
    fake.mode = "ok"
    # Not what the first attempt announced: a new notice with the new amount first (issue 20),
    # the charge the next day.
    assert run_renewals(days_before(10)).charged == 0
    assert len(fake.calls) == 1
    [notice] = emails("addebiteremo € 18,30")
    assert "3 anni" in notice.body_text
    assert run_renewals(days_before(9)).charged == 1
    assert fake.calls[-1]["amount_cents"] == 1500 + 330
    assert fresh(service).expires_at == datetime(2030, 1, 20, 10, 0, tzinfo=UTC)


def test_expired_card_fails_without_asking_the_bank(fake, dummy_customer, pec):
    old = make_card(dummy_customer, exp_month=12, exp_year=2026)
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=old)
    assert run_renewals(days_before(15)).failed == 1
    assert fake.calls == []
    renewal = renewal_of(service)
    assert renewal.failure_code == "expired_card"
    assert "scaduta" in renewal.failure_reason
    [mail] = emails("Rinnovo non riuscito")
    assert "Aggiungi una nuova carta" in mail.body_text


def test_no_card_fails_with_how_to_fix(fake, dummy_customer, pec):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=None)
    assert run_renewals(days_before(15)).failed == 1
    assert fake.calls == []
    assert renewal_of(service).failure_code == "no_card"


def test_turning_auto_renewal_off_after_a_failure_stops_the_retries(fake, service):
    fake.mode = "insufficient_funds"
    run_renewals(days_before(15))
    service = fresh(service)
    service.auto_renew = False
    _db.session.commit()
    fake.mode = "ok"
    assert run_renewals(days_before(10)).charged == 0
    assert len(fake.calls) == 1


def test_fixing_the_card_retries_at_once(fake, dummy_customer, pec):
    old = make_card(dummy_customer, exp_month=12, exp_year=2026)
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=old)
    run_renewals(days_before(15))
    new = make_card(dummy_customer, last4="5555")
    service = fresh(service)
    service.saved_card_id = new.id
    _db.session.commit()
    # Two days later, long before the next retry date (10 days before expiry).
    assert retry_renewal(service, days_before(13)) == "charged"
    assert fake.calls[0]["token"] == new.gateway_token
    assert fresh(service).expires_at == datetime(2028, 1, 20, 10, 0, tzinfo=UTC)
    assert retry_renewal(fresh(service), days_before(13)) is None  # nothing left to retry


def test_next_retry_points():
    assert next_retry(EXPIRES, days_before(15), (10, 5, 1)) == day_start(10)
    assert next_retry(EXPIRES, days_before(10), (1, 10, 5)) == day_start(5)
    assert next_retry(EXPIRES, days_before(3), (10, 5, 1)) == day_start(1)
    assert next_retry(EXPIRES, days_before(1), (10, 5, 1)) is None


def test_window_and_retries_are_configurable(app, fake, service):
    app.config.update(RENEWAL_WINDOW_DAYS=20, RENEWAL_RETRY_DAYS=[7])
    fake.mode = "insufficient_funds"
    assert run_renewals(days_before(20)).failed == 1
    assert renewal_of(service).next_attempt_at == day_start(7)


# --- never twice ------------------------------------------------------------------------------


def test_the_database_allows_one_renewal_per_service_and_period(fake, service):
    _db.session.add(Renewal(service_id=service.id, period_expires_at=EXPIRES))
    _db.session.commit()
    _db.session.add(Renewal(service_id=service.id, period_expires_at=EXPIRES))
    with pytest.raises(IntegrityError):
        _db.session.commit()
    _db.session.rollback()


def test_unknown_outcome_is_asked_of_the_bank_not_charged_again(fake, service):
    fake.mode = "timeout_after_charge"  # the bank charged, the answer got lost
    report = run_renewals(days_before(15))
    assert (report.unknown, report.charged, report.failed) == (1, 0, 0)
    renewal = renewal_of(service)
    assert renewal.status is RenewalStatus.PENDING
    assert renewal.failure_code == "bank_unavailable"
    [payment] = _db.session.scalars(select(Payment).where(Payment.order_id == renewal.order_id))
    assert payment.status is PaymentStatus.UNKNOWN
    assert emails("Rinnovo non riuscito") == []  # nothing to tell the customer yet

    report = run_renewals(days_before(15) + timedelta(minutes=5))
    assert report.charged == 1
    assert fake.finds == [f"renewal-{renewal.id}-1"]
    assert len(fake.calls) == 1  # asked, not charged again
    assert len(fake.succeeded) == 1
    assert fresh(service).expires_at == datetime(2028, 1, 20, 10, 0, tzinfo=UTC)


def test_bank_unreachable_then_back(fake, service):
    fake.mode = "down"
    assert run_renewals(days_before(15)).unknown == 1
    assert run_renewals(days_before(15) + timedelta(minutes=5)).unknown == 1  # still down
    fake.mode = "ok"
    assert run_renewals(days_before(15) + timedelta(minutes=10)).charged == 1
    # The bank never saw the key: the same attempt (same key) is sent once it answers.
    assert [c["key"] for c in fake.calls] == [f"renewal-{renewal_of(service).id}-1"]


def test_unknown_outcome_keeps_the_service_until_the_bank_answers(fake, service):
    fake.mode = "down"
    assert run_renewals(days_before(1)).unknown == 1  # first seen late: the scheduler was down
    report = run_renewals(EXPIRES)
    assert report.expired == 0  # paid or not? not known yet: not expired
    assert fresh(service).status is ServiceStatus.ACTIVE
    fake.mode = "ok"
    report = run_renewals(EXPIRES + timedelta(minutes=5))
    assert (report.charged, report.expired) == (1, 0)
    service = fresh(service)
    assert service.status is ServiceStatus.ACTIVE
    assert service.expires_at == datetime(2028, 1, 20, 10, 0, tzinfo=UTC)


def test_a_crash_after_the_charge_is_resolved_with_the_same_key(fake, service):
    fake.mode = "crash_after_charge"
    now = days_before(15)
    assert run_renewals(now).errors == 1
    # The attempt was recorded before the bank was asked; the claim outlives the crash.
    renewal = renewal_of(service)
    assert renewal.claimed_by is not None
    assert run_renewals(now).charged == 0  # the claim still holds
    later = lambda: datetime.now(UTC) + timedelta(minutes=10)  # noqa: E731 - the claim ran out
    assert run_renewals(now, lease_clock=later).charged == 1
    assert len(fake.succeeded) == 1
    assert {c["key"] for c in fake.calls} == {f"renewal-{renewal.id}-1"}
    assert fresh(service).expires_at == datetime(2028, 1, 20, 10, 0, tzinfo=UTC)


def test_a_row_claimed_by_another_worker_is_left_alone(fake, service):
    run_renewals(days_before(16))
    _db.session.add(
        Renewal(
            service_id=service.id,
            period_expires_at=EXPIRES,
            next_attempt_at=days_before(15),
            claimed_by="other:1",
            claimed_until=datetime.now(UTC) + timedelta(minutes=5),
        )
    )
    _db.session.commit()
    report = run_renewals(days_before(15))
    assert report.charged == 0
    assert fake.calls == []
    assert renewal_of(service).claimed_by == "other:1"


def test_claiming_is_a_guarded_update(fake, service):
    from webapp.renewals.claims import claim as _claim

    _db.session.add(Renewal(service_id=service.id, period_expires_at=EXPIRES))
    _db.session.commit()
    rid = renewal_of(service).id
    t0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert _claim(rid, "w1", t0)
    assert not _claim(rid, "w2", t0 + timedelta(minutes=1))  # w1's lease is live
    assert renewal_of(service).claimed_by == "w1"
    assert _claim(rid, "w2", t0 + timedelta(minutes=6))  # w1 crashed: its lease ran out
    assert renewal_of(service).claimed_by == "w2"


def test_a_claim_is_given_back_only_by_the_worker_that_holds_it(
    fake, service, dummy_customer, catalogue
):
    from webapp.renewals.claims import claim as _claim
    from webapp.renewals.claims import unclaim

    _db.session.add(Renewal(service_id=service.id, period_expires_at=EXPIRES))
    _db.session.commit()
    rid = renewal_of(service).id
    t0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert _claim(rid, "w1", t0)
    unclaim(rid, "w2")  # not w2's to give back
    assert (renewal_of(service).claimed_by, renewal_of(service).claimed_until) == (
        "w1",
        t0 + timedelta(minutes=5),
    )
    assert not _claim(rid, "w2", t0 + timedelta(minutes=1))
    other = make_service(dummy_customer, catalogue["products"]["SPID-PF"], expires_at=EXPIRES)
    _db.session.add(Renewal(service_id=other.id, period_expires_at=EXPIRES))
    _db.session.commit()
    other_id = renewal_of(other).id
    assert _claim(other_id, "w1", t0)  # w1 holds two rows
    unclaim(rid, "w1")  # w1's attempt on the first rolled back: that row is free at once
    assert (renewal_of(service).claimed_by, renewal_of(service).claimed_until) == (None, None)
    assert renewal_of(other).claimed_by == "w1"  # the other row stays w1's
    assert _claim(rid, "w2", t0 + timedelta(minutes=1))


def test_a_closed_renewal_is_never_due_and_the_lease_is_configurable(app, fake, service):
    from webapp.renewals.claims import claim as _claim
    from webapp.renewals.claims import due_and_unclaimed, release

    t0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    _db.session.add(
        Renewal(
            service_id=service.id,
            period_expires_at=EXPIRES,
            status=RenewalStatus.SUCCEEDED,  # paid: closed, whatever its next attempt says
            next_attempt_at=t0 - timedelta(days=1),
        )
    )
    _db.session.commit()
    rid = renewal_of(service).id
    assert _db.session.scalars(due_and_unclaimed(t0, t0)).all() == []
    assert not _claim(rid, "w1", t0, due_at=t0)
    renewal_of(service).status = RenewalStatus.FAILED  # open again: due
    _db.session.commit()
    assert _db.session.scalars(due_and_unclaimed(t0, t0)).all() == [rid]
    app.config["RENEWAL_CLAIM_SECONDS"] = 60
    assert _claim(rid, "w1", t0, due_at=t0)
    assert renewal_of(service).claimed_until == t0 + timedelta(seconds=60)
    del app.config["RENEWAL_CLAIM_SECONDS"]  # not configured: five minutes
    assert _claim(rid, "w2", t0 + timedelta(minutes=2), due_at=t0)
    assert renewal_of(service).claimed_until == t0 + timedelta(minutes=7)
    release(renewal_of(service))  # the attempt is over: the row is held by nobody
    _db.session.commit()
    assert (renewal_of(service).claimed_by, renewal_of(service).claimed_until) == (None, None)


def test_a_renewal_whose_charge_is_in_flight_is_due_whatever_its_next_attempt(
    fake, service, dummy_customer, pec
):
    from tests.unit.backoffice_world import make_order
    from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
    from webapp.renewals.claims import due_and_unclaimed

    t0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    order = make_order(dummy_customer, pec, "card", t0)
    _db.session.add(
        Renewal(service_id=service.id, period_expires_at=EXPIRES, order_id=order.id)
    )  # no next attempt planned (a crash after the charge was recorded)
    charge = Payment(
        order_id=order.id,
        channel=PaymentChannel.RENEWAL,
        amount_cents=order.total_cents,
        idempotency_key="renewal-in-flight",
        status=PaymentStatus.UNKNOWN,
    )
    _db.session.add(charge)
    _db.session.commit()
    rid = renewal_of(service).id
    assert _db.session.scalars(due_and_unclaimed(t0, t0)).all() == [rid]  # its outcome to ask
    charge.status = PaymentStatus.SUCCEEDED
    _db.session.commit()
    assert _db.session.scalars(due_and_unclaimed(t0, t0)).all() == []


def test_a_pass_takes_the_renewals_in_due_order(fake, dummy_customer, catalogue, card):
    from webapp.renewals.claims import due_and_unclaimed

    products = catalogue["products"]
    t0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    due_at = [t0 - timedelta(hours=1), t0 - timedelta(hours=3), t0 - timedelta(hours=2)]
    ids = []
    for sku, at in zip(("PEC-STD", "SPID-PF", "CONS-1"), due_at, strict=True):
        service = make_service(dummy_customer, products[sku], expires_at=EXPIRES, card=card)
        _db.session.add(
            Renewal(service_id=service.id, period_expires_at=EXPIRES, next_attempt_at=at)
        )
        _db.session.commit()
        ids.append(renewal_of(service).id)
    assert _db.session.scalars(due_and_unclaimed(t0, t0)).all() == [ids[1], ids[2], ids[0]]
    held = _db.session.get(Renewal, ids[1])
    held.claimed_by, held.claimed_until = "other:1", t0  # another worker's lease, to t0
    _db.session.commit()
    assert _db.session.scalars(due_and_unclaimed(t0, t0)).all() == [ids[2], ids[0]]  # held
    later = t0 + timedelta(seconds=1)  # the lease has run out
    assert _db.session.scalars(due_and_unclaimed(t0, later)).all() == [ids[1], ids[2], ids[0]]


def test_two_passes_at_once_charge_each_service_once(app, fake, dummy_customer, catalogue, card):
    products = catalogue["products"]
    services = [
        make_service(
            dummy_customer, products[sku], expires_at=EXPIRES + i * timedelta(hours=1), card=card
        )
        for i, sku in enumerate(("PEC-STD", "SPID-PF", "CONS-1", "FPA-100"))
    ]
    fake.latency = 0.05  # the bank takes a moment: both workers are inside a pass together
    barrier = threading.Barrier(2)
    reports, failures = {}, []

    def worker(name: str) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                reports[name] = run_renewals(days_before(14), worker=name)
            except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
                failures.append(exc)
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures
    assert sum(r.charged for r in reports.values()) == len(services)
    assert sum(r.errors for r in reports.values()) == 0
    assert len(fake.succeeded) == len(services)
    assert len(fake.calls) == len(services)
    _db.session.expire_all()
    assert _db.session.scalar(select(func.count(Renewal.id))) == len(services)
    succeeded = _db.session.scalar(
        select(func.count(Payment.id)).where(Payment.status == PaymentStatus.SUCCEEDED)
    )
    assert succeeded == len(services)
    for i, s in enumerate(services):
        assert fresh(s).expires_at == add_year(EXPIRES + i * timedelta(hours=1))
    assert len(emails("Rinnovo effettuato")) == len(services)


def add_year(value: datetime) -> datetime:
    return value.replace(year=value.year + 1)


def test_renewal_orders_cannot_be_paid_by_the_customer(fake, service):
    from webapp.errors import InvalidTransition
    from webapp.payments.payable import payable_order

    fake.mode = "insufficient_funds"
    run_renewals(days_before(15))
    order = _db.session.get(Order, renewal_of(service).order_id)
    assert order.status is OrderStatus.PENDING_PAYMENT
    with pytest.raises(InvalidTransition):
        payable_order(order, datetime.now(UTC).date())


def test_saved_card_charge_left_unknown_is_reconciled(fake, dummy_customer, pec, card, now):
    from webapp.payments.charges import execute_card_charge
    from webapp.payments.flows import reconcile
    from webapp.shop.models import PaymentMethod

    order = Order(
        customer_id=dummy_customer.id,
        payment_method=PaymentMethod.CARD,
        subtotal_cents=500,
        net_cents=500,
        vat_cents=110,
        total_cents=610,
        created_at=now,
    )
    _db.session.add(order)
    _db.session.flush()
    payment = Payment(
        order_id=order.id,
        channel=PaymentChannel.SAVED_CARD,
        amount_cents=610,
        idempotency_key="card-x",
        saved_card_id=card.id,
    )
    _db.session.add(payment)
    _db.session.commit()
    fake.mode = "timeout_after_charge"
    execute_card_charge(payment, now)
    _db.session.commit()
    assert payment.status is PaymentStatus.UNKNOWN
    assert reconcile(now) == 1
    assert fresh(payment).status is PaymentStatus.SUCCEEDED
    assert len(fake.calls) == 1


def test_a_pass_that_read_the_id_before_its_twin_attempted_it_does_not_attempt_it_again(
    fake, service
):
    """Two passes on a retry day: the second read the due id, then the first failed it and
    moved the next attempt on. The claim re-checks "still due", so no second charge or e-mail."""
    from webapp.renewals.charging import due_renewals as _due_renewals
    from webapp.renewals.charging import process as _process
    from webapp.renewals.services import settings

    fake.mode = "insufficient_funds"
    run_renewals(days_before(15))  # the first attempt fails; next retry 10 days before
    retry_day = days_before(10)
    lease_now = datetime.now(UTC)
    stale_ids = list(_due_renewals(retry_day, lease_now))  # the twin's snapshot
    assert run_renewals(retry_day).failed == 1  # the other pass attempts it
    assert len(fake.calls) == 2
    assert stale_ids == [renewal_of(service).id]
    outcome = _process(stale_ids[0], retry_day, "twin", settings(), lambda: lease_now)
    assert outcome == "skipped"
    assert run_renewals(retry_day).failed == 0
    assert len(fake.calls) == 2
    assert len(emails("Rinnovo non riuscito")) == 2


# --- what a failure records and says (mutation round 3) ------------------------------------------


def test_a_failure_records_the_reason_as_a_sentence_and_mails_the_fix_and_the_card(fake, service):
    fake.mode = "insufficient_funds"
    run_renewals(days_before(15))
    renewal = renewal_of(service)
    assert renewal.failure_reason == "La carta non ha fondi sufficienti."
    assert renewal.last_attempt_at == days_before(15)  # "Rinnovo non riuscito il ..." in the area
    [mail] = emails("Rinnovo non riuscito")
    assert mail.dedupe_key == f"renewal-failed-{renewal.id}-1"
    assert "Verifica la disponibilità della carta" in mail.body_text  # this code's own fix
    assert "Aggiungi una nuova carta" not in mail.body_text  # not the default one
    assert "carta Visa •••• 4242" in mail.body_text


def test_a_decline_the_shop_has_no_words_for_takes_the_banks_message(fake, service, monkeypatch):
    from tests.unit import renewal_fakes

    monkeypatch.setitem(renewal_fakes.DECLINE_MESSAGES, "do_not_honor", "transazione negata")
    fake.mode = "do_not_honor"
    run_renewals(days_before(15))
    renewal = renewal_of(service)
    assert renewal.failure_code == "do_not_honor"
    assert renewal.failure_reason == "Transazione negata."
    [mail] = emails("Rinnovo non riuscito")
    assert "Transazione negata." in mail.body_text
    assert "Aggiungi una nuova carta" in mail.body_text  # the default fix


def test_a_bank_message_of_the_full_column_length_still_fits_the_reason(fake, service, monkeypatch):
    from tests.unit import renewal_fakes

    # The payment keeps 300 characters; the reason adds the full stop: cut back to 300.
    monkeypatch.setitem(renewal_fakes.DECLINE_MESSAGES, "do_not_honor", "x" * 300)
    fake.mode = "do_not_honor"
    run_renewals(days_before(15))
    assert renewal_of(service).failure_reason == "X" + "x" * 299


def test_an_unknown_outcome_tells_the_customer_we_are_checking(fake, service):
    fake.mode = "down"
    run_renewals(days_before(15))
    assert renewal_of(service).failure_reason == (
        "La banca non ha risposto: stiamo verificando l'esito dell'addebito."
    )


def test_next_retry_at_a_retry_point_is_the_following_one():
    """A pass at the very first instant of a retry day plans the next retry day, not now."""
    assert next_retry(EXPIRES, day_start(10), (10, 5, 1)) == day_start(5)
    assert next_retry(EXPIRES, day_start(1), (10, 5, 1)) is None


def test_an_attempt_commits_keeping_its_objects_loaded(fake, service):
    """The attempt is committed before the bank is asked, without reloading what it holds."""
    from sqlalchemy import inspect

    from webapp.renewals.charging import _commit_keeping_loaded

    session = _db.session()
    assert session.expire_on_commit
    loaded = fresh(service)
    loaded.auto_renew = False
    _commit_keeping_loaded()
    assert not inspect(loaded).expired_attributes  # nothing to reload
    assert session.expire_on_commit  # the session's own setting is back
    assert renewal_of(service) is None and not fresh(service).auto_renew  # committed


def test_an_unknown_outcome_is_due_again_at_the_next_pass(fake, service):
    """Asked again at the next pass: due now, even once the charge is no longer in flight."""
    from webapp.renewals.claims import due_and_unclaimed

    when = days_before(15)
    fake.mode = "down"
    run_renewals(when)
    renewal = renewal_of(service)
    assert renewal.next_attempt_at == when
    payment = _db.session.scalar(select(Payment).where(Payment.order_id == renewal.order_id))
    payment.status = PaymentStatus.DECLINED  # settled elsewhere meanwhile
    _db.session.commit()
    later = when + timedelta(minutes=5)
    assert _db.session.scalars(due_and_unclaimed(later, later)).all() == [renewal.id]


def test_a_retry_charges_the_same_renewal_order(fake, service):
    """One order per renewal period: a retry reprices it, no second order left unpaid."""
    fake.mode = "card_declined"
    run_renewals(days_before(15))
    first = renewal_of(service).order_id
    assert _db.session.get(Order, first).created_at == days_before(15)  # the pass's clock
    [attempt] = _db.session.scalars(select(Payment).where(Payment.order_id == first))
    assert attempt.created_at == days_before(15)
    run_renewals(days_before(10))
    assert renewal_of(service).order_id == first
    orders = _db.session.scalars(select(Order.id).where(Order.kind == OrderKind.RENEWAL)).all()
    assert orders == [first]
    assert {c["order_ref"] for c in fake.calls} == {fake.calls[0]["order_ref"]}


def test_a_renewal_invoice_line_has_a_whole_unit_price_in_cents(fake, dummy_customer, pec, card):
    """The invoice keeps the line as charged: a yearly price in whole cents, x the years."""
    from webapp.invoicing.services import invoice_of_order

    service = make_service(dummy_customer, pec, expires_at=EXPIRES, years=2, card=card)
    run_renewals(days_before(15))
    invoice = invoice_of_order(renewal_of(service).order_id)
    [line] = invoice.lines
    assert (line["quantity"], line["unit_price_cents"], line["net_cents"]) == (2, 500, 1000)
    assert line["discount_cents"] == 0  # no discount is carried over to a renewal
    assert _db.session.get(Order, invoice.order_id).discount_code is None  # nor its code
    assert type(line["unit_price_cents"]) is int


def test_a_renewal_order_page_shows_auto_renewal_still_on(client, auth, fake, service):
    """The customer's page of the renewal order: the renewed service keeps renewing."""
    run_renewals(days_before(15))
    order_id = renewal_of(service).order_id
    auth.login()
    page = client.get(f"/ordini/{order_id}").get_data(as_text=True)
    assert "Attivo, ogni anno" in page
    assert "Non attivo" not in page


def test_a_renewal_whose_order_was_cancelled_is_skipped_and_given_back_at_once(fake, service):
    """The attempt finds its order no longer payable: nothing charged, the row free again."""
    from webapp.renewals.charging import process as _process
    from webapp.renewals.services import settings
    from webapp.shop.orders import cancel_order

    fake.mode = "card_declined"
    run_renewals(days_before(15))
    renewal = renewal_of(service)
    cancel_order(_db.session.get(Order, renewal.order_id), days_before(14))
    _db.session.commit()
    fake.mode = "ok"
    lease_now = datetime.now(UTC)
    outcome = _process(renewal.id, days_before(10), "w1", settings(), lambda: lease_now)
    assert outcome == "skipped"
    assert len(fake.calls) == 1
    renewal = renewal_of(service)
    assert (renewal.claimed_by, renewal.claimed_until) == (None, None)
    assert renewal.attempts == 1  # the attempt was rolled back


def test_another_orders_charge_in_flight_is_not_this_renewals(
    fake, dummy_customer, catalogue, card
):
    """Each renewal settles only its own order's charge in flight."""
    from webapp.renewals.charging import process as _process
    from webapp.renewals.services import settings

    products = catalogue["products"]
    one = make_service(dummy_customer, products["PEC-STD"], expires_at=EXPIRES, card=card)
    two = make_service(dummy_customer, products["SPID-PF"], expires_at=EXPIRES, card=card)
    fake.mode = "card_declined"
    run_renewals(days_before(15))
    first = renewal_of(one)
    _db.session.add(
        Payment(
            order_id=first.order_id,
            channel=PaymentChannel.RENEWAL,
            amount_cents=610,
            idempotency_key="renewal-lost-answer",
            saved_card_id=card.id,
            status=PaymentStatus.UNKNOWN,
        )
    )
    _db.session.commit()
    fake.mode = "ok"
    second = renewal_of(two)
    lease_now = datetime.now(UTC)
    assert _process(second.id, days_before(10), "w1", settings(), lambda: lease_now) == "charged"
    assert fake.calls[-1]["key"] == f"renewal-{second.id}-2"
    assert fake.finds == []  # the other order's charge was not asked about


def test_an_attempt_reads_its_renewal_service_and_card_in_one_select(fake, service):
    """The service and its card come with the renewal (joined), not one lazy SELECT each."""
    from sqlalchemy import event

    from webapp.renewals.charging import process as _process
    from webapp.renewals.services import settings

    fake.mode = "card_declined"
    run_renewals(days_before(15))
    renewal_id = renewal_of(service).id
    _db.session.expire_all()
    seen = []

    def record(conn, cursor, statement, *args):
        seen.append(" ".join(statement.split()))

    engine = _db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        lease_now = datetime.now(UTC)
        _process(renewal_id, days_before(10), "w1", settings(), lambda: lease_now)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    by_id = re.compile(r" FROM (service|saved_card) WHERE \1\.id = (\?|%\(\w+\)s)$")
    alone = [s for s in seen if by_id.search(s)]
    assert alone == [], alone


def _second_attempt_on_record(fake, service, card) -> Renewal:
    """The window's first attempt declined, then a second one recorded (PENDING) and no more."""
    fake.mode = "card_declined"
    run_renewals(days_before(15))
    renewal = renewal_of(service)
    _db.session.add(
        Payment(
            order_id=renewal.order_id,
            channel=PaymentChannel.RENEWAL,
            amount_cents=610,
            idempotency_key=f"renewal-{renewal.id}-2",
            saved_card_id=card.id,
        )
    )
    _db.session.commit()
    return renewal


def test_an_attempt_recorded_but_never_sent_is_sent_as_the_merchants(fake, service, card):
    """A crash between recording the attempt and asking the bank: the next pass sends that
    attempt (its key), as a charge the merchant starts (the customer is not there)."""
    from webapp.renewals.charging import process as _process
    from webapp.renewals.services import settings

    renewal = _second_attempt_on_record(fake, service, card)  # the bank never asked
    fake.mode = "ok"
    lease_now = datetime.now(UTC)
    assert _process(renewal.id, days_before(14), "w1", settings(), lambda: lease_now) == "charged"
    assert fake.calls[-1]["key"] == f"renewal-{renewal.id}-2"
    assert fake.calls[-1]["initiator"] == "merchant"


def test_an_attempt_sent_and_declined_later_is_retried_on_schedule(fake, service, card):
    """The charge in flight turns out declined: a failure like any other, next retry planned."""
    from webapp.renewals.charging import process as _process
    from webapp.renewals.services import settings

    renewal = _second_attempt_on_record(fake, service, card)
    lease_now = datetime.now(UTC)
    assert _process(renewal.id, days_before(14), "w1", settings(), lambda: lease_now) == "failed"
    renewal = renewal_of(service)
    assert (renewal.status, renewal.next_attempt_at) == (RenewalStatus.FAILED, day_start(10))


def test_a_renewal_turned_off_is_set_aside_without_an_error(fake, service):
    fake.mode = "insufficient_funds"
    run_renewals(days_before(15))
    service = fresh(service)
    service.auto_renew = False
    _db.session.commit()
    report = run_renewals(days_before(10))
    assert (report.charged, report.failed, report.errors) == (0, 0, 0)
    renewal = renewal_of(service)
    assert renewal.next_attempt_at is None  # not due again until turned back on
    assert renewal.claimed_by is None


def test_a_pass_opens_and_charges_the_nearest_expiry_first(fake, dummy_customer, catalogue, card):
    """Services entering the window together: the one expiring first is opened and charged
    first (a pass cut short leaves the later expiries, not the nearer ones)."""
    products = catalogue["products"]
    later = make_service(
        dummy_customer, products["PEC-STD"], expires_at=EXPIRES + timedelta(hours=1), card=card
    )
    nearer = make_service(dummy_customer, products["SPID-PF"], expires_at=EXPIRES, card=card)
    assert run_renewals(days_before(15)).charged == 2
    assert renewal_of(nearer).id < renewal_of(later).id
    assert [c["key"] for c in fake.calls] == [
        f"renewal-{renewal_of(nearer).id}-1",
        f"renewal-{renewal_of(later).id}-1",
    ]


def test_only_active_services_in_their_validity_are_opened(fake, dummy_customer, catalogue, card):
    """The window opens a renewal for an active service still valid today: not for one whose
    expiry day is over (its period ended; the expiry pass handles it), nor for one no longer
    active, whatever its switch says."""
    from webapp.renewals.charging import open_renewals
    from webapp.renewals.outcomes import RenewalReport
    from webapp.renewals.services import settings

    products = catalogue["products"]
    ended = make_service(
        dummy_customer, products["PEC-STD"], expires_at=EXPIRES - 15 * DAY, card=card
    )
    cancelled = make_service(dummy_customer, products["SPID-PF"], expires_at=EXPIRES, card=card)
    cancelled.status = ServiceStatus.CANCELLED
    _db.session.commit()
    report = RenewalReport()
    open_renewals(day_start(14), settings(), report)  # the day after `ended`'s expiry day
    assert report.opened == 0
    assert renewal_of(ended) is None and renewal_of(cancelled) is None


def test_a_renewal_opened_by_a_pass_is_charged_in_that_same_pass(fake, service):
    """Opened "due now" at the pass's own instant, stored in UTC whatever the zone of the
    clock handed in (here Italy's): charged at once, created at that instant."""
    from zoneinfo import ZoneInfo

    when = (days_before(15) + timedelta(microseconds=123456)).astimezone(ZoneInfo("Europe/Rome"))
    report = run_renewals(when)
    assert (report.opened, report.charged) == (1, 1)
    renewal = renewal_of(service)
    assert renewal.created_at == when


def test_the_window_bounds_at_the_first_instant_of_a_day(fake, dummy_customer, catalogue, card):
    """A service expiring at 00:00 in Italy: opened on its expiry day (valid through it), and
    not yet on the day whose window ends exactly at that instant."""
    from webapp.clock import expiring_by
    from webapp.renewals.charging import open_renewals
    from webapp.renewals.outcomes import RenewalReport
    from webapp.renewals.services import settings

    products = catalogue["products"]
    today = rome_date(days_before(15))
    last_day = make_service(
        dummy_customer, products["PEC-STD"], expires_at=rome_midnight(today), card=card
    )
    edge = make_service(
        dummy_customer, products["SPID-PF"], expires_at=expiring_by(today, 15), card=card
    )
    report = RenewalReport()
    open_renewals(rome_midnight(today) + timedelta(hours=9), settings(), report)
    assert report.opened == 1
    assert renewal_of(last_day) is not None and renewal_of(edge) is None


def test_a_period_is_opened_whatever_another_service_has(fake, dummy_customer, catalogue, card):
    """The row that blocks opening is this service's for this period, not another service's
    row for the same expiry."""
    from webapp.renewals.charging import open_renewals
    from webapp.renewals.outcomes import RenewalReport
    from webapp.renewals.services import settings

    products = catalogue["products"]
    neighbour = make_service(dummy_customer, products["SPID-PF"], expires_at=EXPIRES, card=card)
    _db.session.add(Renewal(service_id=neighbour.id, period_expires_at=EXPIRES))
    newcomer = make_service(dummy_customer, products["CONS-1"], expires_at=EXPIRES, card=card)
    _db.session.commit()
    report = RenewalReport()
    open_renewals(days_before(15), settings(), report)
    assert report.opened == 1
    assert renewal_of(newcomer) is not None


def test_a_period_is_opened_whatever_the_service_had_before(fake, dummy_customer, pec, card):
    """Last year's renewal row of the same service does not block this year's period."""
    from webapp.renewals.charging import open_renewals
    from webapp.renewals.outcomes import RenewalReport
    from webapp.renewals.services import settings

    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    last_year = EXPIRES.replace(year=EXPIRES.year - 1)
    _db.session.add(
        Renewal(service_id=service.id, period_expires_at=last_year, status=RenewalStatus.SUCCEEDED)
    )
    _db.session.commit()
    report = RenewalReport()
    open_renewals(days_before(15), settings(), report)
    assert report.opened == 1
    periods = _db.session.scalars(
        select(Renewal.period_expires_at).where(Renewal.service_id == service.id)
    ).all()
    assert sorted(periods) == [last_year, EXPIRES]


# --- a retry at once: whose failure, which row, in whose name (mutation round 5) ---------------


def _expired_card(customer):
    return make_card(customer, exp_month=12, exp_year=2026, last4="0069")


def _failed_on_an_expired_card(customer, pec, expired=None):
    """A service whose card has expired by the renewal: the first attempt fails without the bank."""
    return make_service(customer, pec, expires_at=EXPIRES, card=expired or _expired_card(customer))


def test_a_retry_takes_its_own_services_failure_and_leaves_anothers_on_schedule(
    fake, dummy_customer, pec
):
    """Two services expiring at the same instant both failed once: retrying the second one
    charges the second one only; the first keeps its failure and its planned retry."""
    expired = _expired_card(dummy_customer)
    first = _failed_on_an_expired_card(dummy_customer, pec, expired)
    second = _failed_on_an_expired_card(dummy_customer, pec, expired)
    assert run_renewals(days_before(15)).failed == 2
    planned = renewal_of(first).next_attempt_at
    new = make_card(dummy_customer, last4="5555")
    second = fresh(second)
    second.saved_card_id = new.id
    _db.session.commit()

    assert retry_renewal(second, days_before(13)) == "charged"
    assert [call["token"] for call in fake.calls] == [new.gateway_token]
    assert fresh(second).expires_at == datetime(2028, 1, 20, 10, 0, tzinfo=UTC)
    assert fresh(first).expires_at == EXPIRES
    row = renewal_of(first)
    assert (row.status, row.attempts, row.next_attempt_at) == (RenewalStatus.FAILED, 1, planned)


def test_a_retry_finds_nothing_to_retry_while_a_charge_waits_for_the_banks_answer(fake, service):
    """Only a failed renewal is retried: one whose outcome the bank has still to tell is not
    failed, and the retry neither asks the bank nor touches the row."""
    fake.mode = "timeout_after_charge"
    assert run_renewals(days_before(15)).unknown == 1
    before = renewal_of(service)
    planned = (before.status, before.attempts, before.next_attempt_at)
    assert retry_renewal(fresh(service), days_before(15) + timedelta(minutes=1)) is None
    assert fake.finds == [] and len(fake.calls) == 1
    after = renewal_of(service)
    assert (after.status, after.attempts, after.next_attempt_at) == planned


def test_a_retry_that_read_the_failure_before_the_expiry_closed_it_leaves_it_closed(
    fake, dummy_customer, pec
):
    """The compare-and-set is on the status too: the expiry pass closed the row (attempt count
    unchanged) after this retry read it; the closed row gets no next attempt back."""
    from webapp.clock import now_utc
    from webapp.renewals.expiry import expire
    from webapp.renewals.services import settings

    service = _failed_on_an_expired_card(dummy_customer, pec)
    run_renewals(days_before(15))
    now = EXPIRES + DAY
    real_scalar = _db.session.scalar
    expired = []

    def read_then_the_pass_expires_it(stmt, *args, **kw):
        found = real_scalar(stmt, *args, **kw)
        if isinstance(found, Renewal) and not expired:
            expired.append(None)  # once: the pass reads the row through here too
            expired[0] = expire(found.service_id, now, "pass", settings(), now_utc)
        return found

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_db.session, "scalar", read_then_the_pass_expires_it)
        assert retry_renewal(fresh(service), now) == "skipped"
    assert expired == ["expired"]
    row = renewal_of(service)
    assert (row.status, row.attempts) == (RenewalStatus.ABANDONED, 1)
    assert row.next_attempt_at is None  # closed: never due again
    assert fresh(service).status is ServiceStatus.EXPIRED
    assert fake.calls == []


def _crashing_on_a_new_card(fake, customer, pec) -> Service:
    """A renewal failed on an expired card, its service moved to a new card on which the next
    charge crashes after the bank took it (the retry ends in "errors", its claim kept)."""
    service = _failed_on_an_expired_card(customer, pec)
    run_renewals(days_before(15))
    new = make_card(customer, last4="5555")
    service = fresh(service)
    service.saved_card_id = new.id
    _db.session.commit()
    fake.mode = "crash_after_charge"
    return service


def test_a_retry_holds_the_row_in_the_name_of_the_worker_given(fake, dummy_customer, pec):
    """The back office retries as "backoffice:<host:pid>": a retry cut short by an error leaves
    the claim (until its lease runs out) in that name, not this process's default one."""
    from webapp.renewals.claims import default_worker

    service = _crashing_on_a_new_card(fake, dummy_customer, pec)
    name = f"backoffice:{default_worker()}"
    assert retry_renewal(service, days_before(13), name) == "errors"
    assert renewal_of(service).claimed_by == name


def test_a_retry_without_a_worker_name_holds_the_row_as_this_process(fake, dummy_customer, pec):
    from webapp.renewals.claims import default_worker

    service = _crashing_on_a_new_card(fake, dummy_customer, pec)
    assert retry_renewal(service, days_before(13)) == "errors"
    assert renewal_of(service).claimed_by == default_worker()


def test_a_new_card_retries_the_failed_renewals_in_the_name_of_the_worker_given(
    fake, dummy_customer, pec
):
    from webapp.renewals.engine import use_new_card

    service = _failed_on_an_expired_card(dummy_customer, pec)
    run_renewals(days_before(15))
    new = make_card(dummy_customer, last4="5555")
    fake.mode = "crash_after_charge"
    [(retried, outcome)] = use_new_card(dummy_customer.id, new, days_before(13), "area:web-1")
    assert (retried.id, outcome) == (service.id, "errors")
    assert fresh(service).saved_card_id == new.id
    assert renewal_of(service).claimed_by == "area:web-1"
