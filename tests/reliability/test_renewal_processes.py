"""Renewal passes as real processes on PostgreSQL against the mock bank as its own process.

Two schedulers at once, a scheduler killed with SIGKILL and restarted, the bank unreachable or
killed during a pass: each due service is charged exactly once at the bank and extended exactly
once in the shop, and nothing is marked paid that the bank did not charge.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.reliability.conftest import System, free_port, requires_postgres, wait_until
from webapp.clock import add_years, now_utc, rome_date
from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
from webapp.renewals.models import Renewal, RenewalStatus, Service
from webapp.renewals.scheduler import parse_as_of
from webapp.shop.order_models import Order, OrderKind, OrderStatus

pytestmark = [pytest.mark.reliability, requires_postgres]

PRICE_CENTS = 610  # PEC Standard: € 5,00 + 22% VAT, one year


def _as_of() -> tuple[str, datetime]:
    """Today (the pass's business date) and an expiry 10 days later: inside the window."""
    day = rome_date(now_utc()).isoformat()
    return day, parse_as_of(day) + timedelta(days=10)


def _succeeded_payments(system: System) -> int:
    return system.shop_count(
        select(func.count(Payment.id)).where(
            Payment.channel == PaymentChannel.RENEWAL, Payment.status == PaymentStatus.SUCCEEDED
        )
    )


def _shop_keys(system: System, status: PaymentStatus) -> set[str]:
    from webapp.extensions import db

    db.session.rollback()
    return set(db.session.scalars(select(Payment.idempotency_key).where(Payment.status == status)))


def assert_renewed_exactly_once(system: System, n: int, expires_at: datetime) -> None:
    """Bank: n succeeded charges, one per renewal order. Shop: each service extended once."""
    from webapp.extensions import db

    charges = system.bank_charges()
    succeeded = [c for c in charges if c[2] == "succeeded"]
    per_order = Counter(ref for _, ref, _, _ in succeeded)
    assert len(succeeded) == n, f"{len(succeeded)} charges at the bank for {n} services"
    assert per_order.most_common(1)[0][1] == 1, f"charged twice: {per_order.most_common(3)}"
    assert {amount for *_, amount in succeeded} == {PRICE_CENTS}

    db.session.rollback()
    shop_paid = _shop_keys(system, PaymentStatus.SUCCEEDED)
    assert shop_paid == {key for key, *_ in succeeded}, "shop and bank disagree on what was paid"
    statuses = Counter(db.session.scalars(select(Payment.status)))
    assert statuses == {PaymentStatus.SUCCEEDED: n}, statuses
    renewals = Counter(db.session.scalars(select(Renewal.status)))
    assert renewals == {RenewalStatus.SUCCEEDED: n}, renewals
    expiries = Counter(db.session.scalars(select(Service.expires_at)))
    assert expiries == {add_years(expires_at, 1): n}, "a service was not extended exactly once"
    paid_renewals = db.session.scalar(
        select(func.count(Order.id)).where(
            Order.kind == OrderKind.RENEWAL, Order.status == OrderStatus.PAID
        )
    )
    assert paid_renewals == n


def test_two_schedulers_at_once_charge_1000_services_exactly_once(system: System, capsys):
    n = 1000
    as_of, expires_at = _as_of()
    system.seed_due_services(n, expires_at)
    system.bank.start()

    started = time.monotonic()
    procs = [system.renewals(f"w{i}", as_of) for i in (1, 2)]
    reports = [system.finish(p) for p in procs]
    elapsed = time.monotonic() - started

    assert [r["errori"] for r in reports] == [0, 0]
    assert sum(r["addebitati"] for r in reports) == n
    assert sum(r["rinnovi aperti"] for r in reports) == n  # each row opened by one of them
    assert all(r["addebitati"] > 0 for r in reports), f"the passes did not overlap: {reports}"
    assert_renewed_exactly_once(system, n, expires_at)

    again = system.run("w3", as_of)  # a third pass later the same day: nothing to do
    assert again["addebitati"] == 0 and again["rinnovi aperti"] == 0
    assert system.bank_charge_count() == n
    with capsys.disabled():
        print(
            f"\n[reliability] {n} services, 2 processes: {system.bank_charge_count()} charges, "
            f"0 duplicates, split {reports[0]['addebitati']}/{reports[1]['addebitati']}, "
            f"{elapsed:.1f} s"
        )


def test_two_schedulers_on_the_reminder_day_send_each_customer_one_reminder(system: System):
    """200 customers, each with a service renewed automatically and one to renew by hand, both
    due in 30 days: two passes at once queue one e-mail per customer listing both, and record
    each automatic renewal's announcement once (issue 26: one reminder per customer and day)."""
    from webapp.extensions import db
    from webapp.outbox.models import OutboxEmail
    from webapp.renewals.models import ServiceEvent

    as_of = rome_date(now_utc()).isoformat()
    services = system.seed_due_services(400, parse_as_of(as_of) + timedelta(days=30))
    # Each even service's customer also gets the next one, without auto-renewal.
    firsts = {s: db.session.get(Service, s).customer_id for s in services[::2]}
    for auto_id, hand_id in zip(services[::2], services[1::2], strict=True):
        hand = db.session.get(Service, hand_id)
        hand.customer_id, hand.auto_renew, hand.saved_card_id = firsts[auto_id], False, None
    db.session.commit()

    reports = [system.finish(p) for p in [system.renewals(f"r{i}", as_of) for i in (1, 2)]]
    assert [r["errori"] for r in reports] == [0, 0]
    assert sum(r["promemoria"] for r in reports) == 200
    assert sum(r["promemoria rinnovo manuale"] for r in reports) == 200
    print(f"\n[reliability] reminders split {[r['promemoria'] for r in reports]}")

    db.session.rollback()
    mails = db.session.execute(select(OutboxEmail.dedupe_key, OutboxEmail.subject)).all()
    assert len(mails) == 200, f"{len(mails)} e-mails for 200 customers"
    assert {subject for _, subject in mails} == {"Promemoria: 2 servizi in scadenza"}
    assert {key for key, _ in mails} == {f"reminders-{c}-{as_of}" for c in firsts.values()}
    announced = db.session.scalar(
        select(func.count(Service.id)).where(Service.announced_period.is_not(None))
    )
    assert announced == 200  # every automatic renewal, none of the others
    events = Counter(
        db.session.scalars(select(ServiceEvent.service_id).where(ServiceEvent.kind == "email"))
    )
    assert set(events) == set(services) and set(events.values()) == {1}
    again = system.run("r3", as_of)  # later the same day: nothing more
    assert again["promemoria"] == 0 and again["promemoria rinnovo manuale"] == 0


def _live_claims(system: System) -> int:
    return system.shop_count(
        select(func.count(Renewal.id)).where(Renewal.claimed_until > now_utc())
    )


def test_scheduler_killed_mid_pass_and_restarted_charges_each_service_once(system: System, capsys):
    n = 200
    claim_seconds = 2
    as_of, expires_at = _as_of()
    system.seed_due_services(n, expires_at)
    system.bank.start()

    started = time.monotonic()
    kills = []
    for target in (n // 4, (n * 3) // 5):
        # Batches of 10 (PostgreSQL's batch path): the kill lands mid-pass, between batches
        # or inside one (after its record commit, during its charges or its settlement).
        proc = system.renewals(
            f"doomed-{target}", as_of, RENEWAL_CLAIM_SECONDS=claim_seconds, RENEWAL_BATCH_SIZE=10
        )
        wait_until(
            lambda t=target, p=proc: _succeeded_payments(system) >= t or p.poll() is not None,
            60,
            f"{target} renewals charged",
        )
        assert proc.poll() is None, "the pass ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        kills.append(_succeeded_payments(system))
        # The killed worker's claims run out before another worker takes its rows.
        wait_until(lambda: _live_claims(system) == 0, claim_seconds + 10, "claims to expire")

    assert kills[-1] < n, "everything was charged before the last kill"
    report = system.run(
        "survivor", as_of, RENEWAL_CLAIM_SECONDS=claim_seconds, RENEWAL_BATCH_SIZE=10
    )
    elapsed = time.monotonic() - started
    assert report["errori"] == 0
    assert report["addebitati"] == n - kills[-1]
    assert_renewed_exactly_once(system, n, expires_at)
    with capsys.disabled():
        print(
            f"\n[reliability] {n} services, SIGKILL at {kills[0]} and {kills[1]} charged, "
            f"restart charged {report['addebitati']}: {system.bank_charge_count()} charges, "
            f"0 duplicates, {elapsed:.1f} s"
        )


def test_bank_down_during_passes_then_back(system: System, capsys):
    """Unreachable for a whole pass, then killed in the middle of one: paid once when back."""
    n = 200
    as_of, expires_at = _as_of()
    system.seed_due_services(n, expires_at)

    def unextended() -> int:
        return system.shop_count(
            select(func.count(Service.id)).where(Service.expires_at == expires_at)
        )

    # 1. Nobody listens at the bank's address: every outcome unknown, nothing paid.
    closed = f"http://127.0.0.1:{free_port()}"
    report = system.run("w-down", as_of, bank_url=closed)
    assert report["esito da verificare"] == n and report["addebitati"] == 0
    assert _shop_keys(system, PaymentStatus.SUCCEEDED) == set()
    assert len(_shop_keys(system, PaymentStatus.UNKNOWN)) == n
    assert (
        system.shop_count(
            select(func.count(Renewal.id)).where(
                Renewal.status == RenewalStatus.PENDING, Renewal.failure_code == "bank_unavailable"
            )
        )
        == n
    )
    assert unextended() == n, "a service was extended without a charge"

    # 2. The bank comes up, then is killed in the middle of the next pass.
    system.bank.start()
    assert system.bank_charge_count() == 0
    proc = system.renewals("w-cut", as_of)
    wait_until(
        lambda: system.bank_charge_count() >= n // 4 or proc.poll() is not None,
        60,
        "a quarter of the charges at the bank",
    )
    system.bank.kill()  # requests in flight are cut: a charge may be made and its answer lost
    report = system.finish(proc)
    assert report["errori"] == 0
    assert 0 < report["esito da verificare"] < n
    at_bank = {key for key, _, status, _ in system.bank_charges() if status == "succeeded"}
    paid = _shop_keys(system, PaymentStatus.SUCCEEDED)
    unknown = _shop_keys(system, PaymentStatus.UNKNOWN)
    assert paid <= at_bank, "the shop marked paid what the bank did not charge"
    assert len(paid) + len(unknown) == n
    assert unextended() == n - len(paid)
    answer_lost = len(unknown & at_bank)

    # 3. Back again: each open outcome is asked (same key), each service charged once.
    system.bank.start()
    report = system.run("w-back", as_of)
    assert report["errori"] == 0 and report["addebitati"] == len(unknown)
    assert_renewed_exactly_once(system, n, expires_at)
    assert system.run("w-again", as_of)["addebitati"] == 0
    assert system.bank_charge_count() == n
    with capsys.disabled():
        print(
            f"\n[reliability] bank down: a pass of {n} with the bank unreachable: {n} unknown, "
            f"0 paid; bank killed after {len(paid)} paid ({answer_lost} charged with the answer "
            f"lost); back: {system.bank_charge_count()} charges, 0 duplicates"
        )
