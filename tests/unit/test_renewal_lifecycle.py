"""The life of a service after its renewal window (mutation round four): the expiry pass (which
service expires, with which renewal row, claimed how, told how), the grace window's notice and
"Cessato", the services a paid order starts or extends, and a full refund's period removed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.unit.renewal_fakes import emails, make_service
from webapp.clock import rome_date, rome_midnight
from webapp.extensions import db as _db
from webapp.payments.models import Payment, PaymentChannel
from webapp.renewals.engine import run_renewals
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceEvent, ServiceStatus
from webapp.renewals.outcomes import RenewalOutcome
from webapp.renewals.services import settings

# As in test_renewal_engine: expires on 20 January 2027 (a PEC: 90 days of grace after it).
EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
AFTER = rome_midnight(rome_date(EXPIRES) + DAY)  # the first instant of the day after the expiry


def lease_now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def pec(catalogue):
    return catalogue["products"]["PEC-STD"]


def fresh(obj):
    _db.session.expire_all()
    return _db.session.get(type(obj), obj.id)


def renewals_of(service) -> list[Renewal]:
    _db.session.expire_all()
    return list(
        _db.session.scalars(
            select(Renewal).where(Renewal.service_id == service.id).order_by(Renewal.id)
        )
    )


def add_renewal(service, **fields) -> Renewal:
    renewal = Renewal(service_id=service.id, period_expires_at=service.expires_at, **fields)
    _db.session.add(renewal)
    _db.session.commit()
    return renewal


def expire_now(service, now=AFTER, worker="w1"):
    from webapp.renewals.expiry import expire

    return expire(service.id, now, worker, settings(), lease_now)


# --- the expiry pass ----------------------------------------------------------------------


def test_two_services_expiring_at_the_same_instant_each_expire_with_their_own_renewal(
    fake, dummy_customer, pec, catalogue, card
):
    fake.mode = "card_declined"
    renewing = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    spid = catalogue["products"]["SPID-PF"]
    plain = make_service(dummy_customer, spid, expires_at=EXPIRES, card=card, auto_renew=False)
    assert run_renewals(EXPIRES - 15 * DAY).failed == 1  # only the first has a renewal row
    assert run_renewals(AFTER).expired == 2
    assert fresh(renewing).status is ServiceStatus.EXPIRED
    assert fresh(plain).status is ServiceStatus.EXPIRED
    [renewal] = renewals_of(renewing)
    assert renewal.status is RenewalStatus.ABANDONED
    assert renewals_of(plain) == []


def test_last_years_renewal_does_not_keep_this_period_from_expiring(fake, dummy_customer, pec):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    last_year = EXPIRES.replace(year=2026)
    _db.session.add(
        Renewal(
            service_id=service.id,
            period_expires_at=last_year,
            status=RenewalStatus.SUCCEEDED,
            completed_at=last_year - 15 * DAY,
        )
    )
    _db.session.commit()
    report = run_renewals(AFTER)
    assert (report.expired, report.skipped) == (1, 0)
    assert fresh(service).status is ServiceStatus.EXPIRED


def test_a_renewal_claimed_by_another_worker_keeps_its_service_from_expiring(
    fake, dummy_customer, pec
):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    add_renewal(service, claimed_by="other:1", claimed_until=lease_now() + timedelta(minutes=5))
    report = run_renewals(AFTER)
    assert (report.expired, report.skipped) == (0, 1)
    assert fresh(service).status is ServiceStatus.ACTIVE
    assert renewals_of(service)[0].claimed_by == "other:1"
    assert emails("Servizio scaduto") == []


def test_a_service_is_valid_through_its_expiry_day_to_the_last_instant(fake, dummy_customer, pec):
    # Expiring at the first instant of 21 January in Italy: its expiry day is the 21st.
    at_midnight = rome_midnight(rome_date(EXPIRES) + DAY)
    service = make_service(dummy_customer, pec, expires_at=at_midnight, auto_renew=False)
    assert run_renewals(at_midnight).expired == 0
    assert run_renewals(at_midnight + DAY - timedelta(seconds=1)).expired == 0
    assert run_renewals(at_midnight + DAY).expired == 1
    assert fresh(service).status is ServiceStatus.EXPIRED


def test_an_expired_or_cancelled_service_is_not_visited_again(fake, dummy_customer, pec, catalogue):
    expired = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    spid = catalogue["products"]["SPID-PF"]
    cancelled = make_service(dummy_customer, spid, expires_at=EXPIRES, auto_renew=False)
    cancelled.status = ServiceStatus.CANCELLED
    _db.session.commit()
    first = run_renewals(AFTER)
    assert (first.expired, first.skipped, first.errors) == (1, 0, 0)
    again = run_renewals(AFTER + timedelta(hours=1))
    assert (again.expired, again.skipped, again.errors) == (0, 0, 0)
    assert fresh(expired).status is ServiceStatus.EXPIRED
    assert fresh(cancelled).status is ServiceStatus.CANCELLED


def test_the_failed_renewal_is_closed_at_the_pass_and_the_customer_told_why(
    fake, dummy_customer, pec, card
):
    fake.mode = "insufficient_funds"
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    run_renewals(EXPIRES - 15 * DAY)
    assert expire_now(service) is RenewalOutcome.EXPIRED
    [renewal] = renewals_of(service)
    assert renewal.status is RenewalStatus.ABANDONED
    assert (renewal.next_attempt_at, renewal.completed_at) == (None, AFTER)
    assert (renewal.claimed_by, renewal.claimed_until) == (None, None)
    service = fresh(service)
    assert (service.status, service.auto_renew) == (ServiceStatus.EXPIRED, False)
    [mail] = emails("Servizio scaduto")
    assert mail.dedupe_key == f"expired-{service.id}-{int(EXPIRES.timestamp())}"
    assert f"Il rinnovo automatico non è riuscito ({renewal.failure_reason})" in mail.body_text
    # A PEC keeps 90 days of grace: renewable by hand until 20 April 2027.
    assert "Puoi ancora rinnovarlo fino al 20/04/2027" in mail.body_text
    assert f"/area-clienti/servizi/{service.id}/rinnova" in mail.body_text
    state = (ServiceEvent.service_id == service.id, ServiceEvent.kind == "state")
    [event] = _db.session.scalars(select(ServiceEvent).where(*state))
    assert (event.detail, event.at) == ("Scaduto", AFTER)


def _expiry_email_without_grace(customer, catalogue, **service):
    """The "Servizio scaduto" e-mail of a product not renewable by hand, expired now."""
    product = next(p for p in catalogue["products"].values() if not p.renewable_by_hand)
    expired = make_service(customer, product, expires_at=EXPIRES, **service)
    assert expire_now(expired) is RenewalOutcome.EXPIRED
    [mail] = emails("Servizio scaduto")
    return mail


def test_an_auto_renewing_service_without_a_renewal_row_says_auto_renewal_stopped(
    fake, dummy_customer, catalogue, card
):
    mail = _expiry_email_without_grace(dummy_customer, catalogue, card=card)
    assert "Il rinnovo automatico non è riuscito ed è stato disattivato" in mail.body_text
    assert "Puoi ancora rinnovarlo" not in mail.body_text  # no grace: buy it again
    assert "acquistalo di nuovo dal catalogo" in mail.body_text


def test_a_closed_row_for_the_period_leaves_the_service_and_the_claim_alone(
    fake, dummy_customer, pec
):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    add_renewal(service, status=RenewalStatus.ABANDONED, completed_at=EXPIRES)
    assert expire_now(service) is RenewalOutcome.SKIPPED
    assert fresh(service).status is ServiceStatus.ACTIVE
    [renewal] = renewals_of(service)
    assert (renewal.claimed_by, renewal.claimed_until) == (None, None)  # given back
    assert run_renewals(AFTER).skipped == 1


def test_a_renewal_opened_but_never_attempted_expires_with_its_service(fake, dummy_customer, pec):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    add_renewal(service)  # opened, then auto-renewal turned off: no order was ever made
    assert expire_now(service) is RenewalOutcome.EXPIRED
    assert renewals_of(service)[0].status is RenewalStatus.ABANDONED
    assert fresh(service).status is ServiceStatus.EXPIRED


@pytest.mark.parametrize("status", [ServiceStatus.EXPIRED, ServiceStatus.CANCELLED])
def test_a_service_that_left_active_since_the_snapshot_is_left_as_it_is(
    fake, dummy_customer, pec, status
):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    service.status = status  # a twin pass expired it, or a refund cancelled it, meanwhile
    _db.session.commit()
    assert expire_now(service) is RenewalOutcome.SKIPPED
    assert fresh(service).status is status
    assert emails("Servizio scaduto") == []


def test_a_service_renewed_since_its_expiry_was_read_is_not_expired(fake, dummy_customer, pec):
    from sqlalchemy.orm.attributes import set_committed_value

    service = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    service.expires_at = EXPIRES.replace(year=2028)  # a renewal by hand paid meanwhile
    _db.session.commit()
    set_committed_value(service, "expires_at", EXPIRES)  # as this pass read it before
    assert expire_now(service) is RenewalOutcome.SKIPPED
    service = fresh(service)
    assert (service.status, service.expires_at) == (
        ServiceStatus.ACTIVE,
        EXPIRES.replace(year=2028),
    )


def test_a_renewal_already_succeeded_for_the_period_is_skipped(fake, dummy_customer, pec):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    add_renewal(service, status=RenewalStatus.SUCCEEDED, completed_at=EXPIRES)
    report = run_renewals(AFTER)
    assert (report.skipped, report.expired, report.errors) == (1, 0, 0)
    assert fresh(service).status is ServiceStatus.ACTIVE
    assert renewals_of(service)[0].claimed_by is None


def test_an_error_while_expiring_rolls_the_service_back(fake, dummy_customer, pec, monkeypatch):
    from webapp.renewals import expiry

    service = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)

    def broken(*args, **kwargs):
        raise RuntimeError("the outbox is down")

    monkeypatch.setattr(expiry, "_tell_expired", broken)
    assert run_renewals(AFTER).errors == 1
    assert fresh(service).status is ServiceStatus.ACTIVE
    assert emails("Servizio scaduto") == []


def _charge_in_flight(fake, service, card) -> Renewal:
    """The window's attempt declined, then a second one recorded and never sent (a crash)."""
    fake.mode = "card_declined"
    run_renewals(EXPIRES - 15 * DAY)
    [renewal] = renewals_of(service)
    _db.session.add(
        Payment(
            order_id=renewal.order_id,
            channel=PaymentChannel.RENEWAL,
            amount_cents=610,
            idempotency_key=f"renewal-{renewal.id}-2",
            saved_card_id=card.id,
        )
    )
    renewal.next_attempt_at = None  # not due again: only the charge in flight is
    _db.session.commit()
    return renewal


def test_a_charge_in_flight_at_the_expiry_is_sent_as_the_merchants_and_paid_renews(
    fake, dummy_customer, pec, card
):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    renewal = _charge_in_flight(fake, service, card)
    fake.mode = "ok"
    assert expire_now(service) is RenewalOutcome.CHARGED
    assert fake.calls[-1]["key"] == f"renewal-{renewal.id}-2"
    assert fake.calls[-1]["initiator"] == "merchant"
    service = fresh(service)
    assert service.status is ServiceStatus.ACTIVE
    assert service.expires_at == EXPIRES.replace(year=2028)
    [renewal] = renewals_of(service)
    assert (renewal.status, renewal.completed_at) == (RenewalStatus.SUCCEEDED, AFTER)
    paid = _db.session.scalar(select(Payment).where(Payment.idempotency_key.endswith("-2")))
    assert paid.completed_at == AFTER  # settled on the pass's clock


def test_a_charge_in_flight_declined_at_the_expiry_expires_the_service(
    fake, dummy_customer, pec, card
):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    _charge_in_flight(fake, service, card)
    assert expire_now(service) is RenewalOutcome.EXPIRED
    assert fake.calls[-1]["initiator"] == "merchant"
    assert fresh(service).status is ServiceStatus.EXPIRED
    assert renewals_of(service)[0].status is RenewalStatus.ABANDONED


def test_a_charge_in_flight_the_bank_cannot_answer_at_the_expiry_keeps_the_service(
    fake, dummy_customer, pec, card
):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    _charge_in_flight(fake, service, card)
    fake.mode = "down"
    assert expire_now(service) is RenewalOutcome.UNKNOWN
    assert fresh(service).status is ServiceStatus.ACTIVE
    [renewal] = renewals_of(service)
    assert (renewal.status, renewal.next_attempt_at) == (RenewalStatus.PENDING, AFTER)
    assert renewal.claimed_by is None
    assert emails("Servizio scaduto") == []


def test_an_error_while_a_pass_expires_leaves_the_renewal_claimed_in_the_passs_name(
    fake, dummy_customer, pec, card, monkeypatch
):
    """Rolled back by an error, the expiry keeps its claim on the renewal (a crash-like failure
    backs off until the lease runs out), held in the name of the pass that met the error."""
    from webapp.renewals import expiry

    fake.mode = "insufficient_funds"
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    run_renewals(EXPIRES - 15 * DAY)

    def broken(*args, **kwargs):
        raise RuntimeError("the outbox is down")

    monkeypatch.setattr(expiry, "_tell_expired", broken)
    assert run_renewals(AFTER, worker="night-pass:7").errors == 1
    [renewal] = renewals_of(service)
    assert (renewal.status, renewal.claimed_by) == (RenewalStatus.FAILED, "night-pass:7")
    assert fresh(service).status is ServiceStatus.ACTIVE


def test_a_charge_the_bank_declines_when_asked_again_at_the_expiry_expires_the_service(
    fake, dummy_customer, pec, card, monkeypatch
):
    """One pass on the day after the expiry, a charge in flight: the bank cannot be reached
    when the due charges are sent, and declines it when the expiry asks again. The failure is
    recorded like any decline, and the service expires in that same pass."""
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    renewal = _charge_in_flight(fake, service, card)
    fake.mode = "down"
    send = fake.charge_token

    def down_once(**kwargs):
        try:
            return send(**kwargs)
        finally:
            fake.mode = "card_declined"  # back, for the next question

    monkeypatch.setattr(fake, "charge_token", down_once)
    report = run_renewals(AFTER)
    assert (report.unknown, report.expired, report.errors) == (1, 1, 0)
    key = f"renewal-{renewal.id}-2"
    assert fake.finds == [key]  # asked again with the same key, then sent once
    assert [call["key"] for call in fake.calls[1:]] == [key]  # after the window's decline
    assert fresh(service).status is ServiceStatus.EXPIRED
    [renewal] = renewals_of(service)
    assert (renewal.status, renewal.failure_code) == (RenewalStatus.ABANDONED, "card_declined")
    assert len(emails("Servizio scaduto")) == 1


# --- the grace window: the notice a week before its end, then "Cessato" -------------------


def after(days: int) -> datetime:
    return EXPIRES + days * DAY


def test_the_grace_notice_goes_out_on_its_day_only_and_once(fake, dummy_customer, pec):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    run_renewals(after(1))  # expired: the grace window ends on 20/04/2027
    assert run_renewals(after(82)).due_reminders == 0  # eight days before its last day
    report = run_renewals(after(83))
    assert (report.due_reminders, report.ceased) == (1, 0)
    [notice] = emails("Ultimi giorni per rinnovare")
    assert notice.dedupe_key == f"cease-notice-{service.id}-{int(EXPIRES.timestamp())}"
    assert "lo conserviamo fino al 20/04/2027" in notice.body_text
    assert run_renewals(after(83) + timedelta(hours=1)).due_reminders == 0  # queued already
    assert run_renewals(after(84)).due_reminders == 0
    assert len(emails("Ultimi giorni per rinnovare")) == 1
    assert fresh(service).status is ServiceStatus.EXPIRED


def test_the_grace_notice_day_is_configurable(app, fake, dummy_customer, pec):
    app.config["CEASE_NOTICE_DAYS"] = 3
    make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    run_renewals(after(1))
    assert run_renewals(after(83)).due_reminders == 0
    assert run_renewals(after(87)).due_reminders == 1


def test_the_expiry_e_mail_greets_its_owner_and_links_the_shop(
    app, fake, dummy_customer, catalogue
):
    mail = _expiry_email_without_grace(dummy_customer, catalogue, auto_renew=False)
    assert mail.to_addr == dummy_customer.email
    shop = app.config["SHOP_BASE_URL"]
    assert shop.startswith("http")
    for body in (mail.body_text, mail.body_html):
        assert f"Gentile {dummy_customer.name}," in body
    assert f"acquistalo di nuovo dal catalogo: {shop}/\n" in mail.body_text
    assert f'<a href="{shop}/">catalogo</a>' in mail.body_html


def test_ceased_the_day_after_the_window_with_its_entry_and_e_mail(fake, dummy_customer, pec):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=None, auto_renew=False)
    run_renewals(after(1))
    assert run_renewals(after(90)).ceased == 0
    when = after(91)
    report = run_renewals(when)
    assert (report.ceased, report.errors) == (1, 0)
    service = fresh(service)
    assert (service.status, service.auto_renew) == (ServiceStatus.CEASED, False)
    [mail] = emails("Servizio cessato")
    assert mail.dedupe_key == f"ceased-{service.id}-{int(EXPIRES.timestamp())}"
    assert "il periodo per rinnovarlo è terminato il 20/04/2027" in mail.body_text
    entries = _db.session.scalars(
        select(ServiceEvent).where(
            ServiceEvent.service_id == service.id, ServiceEvent.kind == "state"
        )
    ).all()
    assert [(e.detail, e.at) for e in entries] == [
        ("Scaduto", after(1)),
        ("Cessato: finito il periodo per rinnovarlo", when),
    ]
    assert run_renewals(after(92)).ceased == 0  # once
    assert len(emails("Servizio cessato")) == 1


def test_a_product_without_grace_ceases_the_day_after_its_expiry(fake, dummy_customer, catalogue):
    firma = next(p for p in catalogue["products"].values() if p.kind.name == "FIRMA_DIGITALE")
    service = make_service(dummy_customer, firma, expires_at=EXPIRES, auto_renew=False)
    report = run_renewals(after(1))  # expired, and no window to wait for: ceased in that pass
    assert (report.expired, report.ceased) == (1, 1)
    [mail] = emails("Servizio cessato")
    assert "il periodo per rinnovarlo è terminato il 20/01/2027" in mail.body_text  # its expiry
    assert fresh(service).status is ServiceStatus.CEASED


def test_a_service_renewed_meanwhile_is_not_ceased(fake, dummy_customer, pec):
    from webapp.renewals.ceasing import cease

    service = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    run_renewals(after(1))
    service = fresh(service)
    read = service.expires_at
    _db.session.execute(  # a renewal by hand paid meanwhile moved the expiry on
        Service.__table__.update()
        .where(Service.__table__.c.id == service.id)
        .values(expires_at=EXPIRES.replace(year=2028), status=ServiceStatus.ACTIVE)
    )
    assert not cease(service, rome_date(read), after(91))
    _db.session.commit()
    service = fresh(service)
    assert (service.status, service.expires_at) == (
        ServiceStatus.ACTIVE,
        EXPIRES.replace(year=2028),
    )
    assert emails("Servizio cessato") == []


# --- a paid order starts services (a purchase) or extends one (a renewal) ------------------


def _services_of(order) -> list[Service]:
    _db.session.expire_all()
    lines = [line.id for line in order.lines]
    return list(
        _db.session.scalars(
            select(Service).where(Service.order_line_id.in_(lines)).order_by(Service.order_line_id)
        )
    )


def test_a_paid_purchase_starts_a_service_per_line_renewing_on_the_card(
    fake, dummy_customer, catalogue, now
):
    from tests.unit.money_world import card_of, card_order, pay_by_card
    from webapp.clock import add_years

    products = catalogue["products"]
    order = card_order(dummy_customer, products, now, skus=("PEC-STD", "SPID-PF"), years=2)
    card = card_of(dummy_customer, now)
    paid_at = now + timedelta(minutes=3)
    pay_by_card(order, paid_at, card)
    services = _services_of(order)
    assert [
        (s.customer_id, s.product_id, s.order_line_id, s.frequency_years) for s in services
    ] == [(dummy_customer.id, line.product_id, line.id, 2) for line in order.lines]
    for service in services:
        assert (service.started_at, service.expires_at) == (paid_at, add_years(paid_at, 2))
        assert (service.status, service.auto_renew, service.saved_card_id) == (
            ServiceStatus.ACTIVE,
            True,
            card.id,
        )
    [mail] = emails("Conferma pagamento ordine")
    assert mail.dedupe_key == f"order-paid-{order.id}"
    assert "Rinnovo automatico" in mail.body_text


def test_a_purchase_paid_without_a_saved_card_does_not_renew_automatically(
    fake, dummy_customer, catalogue, now
):
    from tests.unit.money_world import card_order
    from webapp.renewals.activation import activate_order

    order = card_order(dummy_customer, catalogue["products"], now)
    assert order.lines[0].auto_renew
    [service] = activate_order(order, None, now)
    assert (service.auto_renew, service.saved_card_id) == (False, None)


def test_a_line_bought_without_auto_renewal_keeps_it_off_whatever_the_card(
    fake, dummy_customer, catalogue, now
):
    from tests.unit.money_world import card_of, card_order
    from webapp.renewals.activation import activate_order

    order = card_order(dummy_customer, catalogue["products"], now)
    order.lines[0].auto_renew = False
    [service] = activate_order(order, card_of(dummy_customer, now), now)
    assert (service.auto_renew, service.saved_card_id) == (False, None)


def test_a_renewal_paid_at_a_retry_extends_from_the_old_expiry_and_clears_the_failure(
    fake, dummy_customer, pec, card
):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    fake.mode = "insufficient_funds"
    run_renewals(EXPIRES - 15 * DAY)
    fake.mode = "ok"
    retry = rome_midnight(rome_date(EXPIRES) - 10 * DAY)
    assert run_renewals(retry).charged == 1
    [renewal] = renewals_of(service)
    assert (renewal.status, renewal.completed_at, renewal.next_attempt_at) == (
        RenewalStatus.SUCCEEDED,
        retry,
        None,
    )
    assert (renewal.failure_code, renewal.failure_reason) == (None, None)
    service = fresh(service)
    assert (service.status, service.expires_at) == (
        ServiceStatus.ACTIVE,
        EXPIRES.replace(year=2028),
    )
    [receipt] = emails("Rinnovo effettuato")
    assert receipt.subject == f"Rinnovo effettuato: {pec.name} fino al 20/01/2028"
    assert receipt.dedupe_key == f"renewal-paid-{renewal.id}"
    assert "in scadenza il 20/01/2027, ora scade il 20/01/2028" in receipt.body_text


def test_a_renewal_order_without_its_renewal_row_is_refused(fake, dummy_customer, pec, now):
    from webapp.errors import InvalidTransition
    from webapp.renewals.activation import renewal_paid
    from webapp.shop.models import PaymentMethod
    from webapp.shop.order_models import Order, OrderKind

    order = Order(
        customer_id=dummy_customer.id,
        kind=OrderKind.RENEWAL,
        payment_method=PaymentMethod.CARD,
        subtotal_cents=500,
        net_cents=500,
        vat_cents=110,
        total_cents=610,
    )
    _db.session.add(order)
    _db.session.flush()
    with pytest.raises(InvalidTransition, match="^Rinnovo non trovato per questo ordine.$"):
        renewal_paid(order, None, now)


# --- the report of a pass ------------------------------------------------------------------


def test_a_pass_report_counts_each_outcome_and_names_every_counter():
    from webapp.renewals.outcomes import RenewalReport

    report = RenewalReport(reminders=3, warnings=2, opened=4)
    for outcome in ("charged", "charged", "failed", "skipped"):
        report.count(RenewalOutcome(outcome))
    assert (report.charged, report.failed, report.skipped, report.unknown) == (2, 1, 1, 0)
    assert report.counts() == {
        "reminders": 3,
        "warnings": 2,
        "opened": 4,
        "charged": 2,
        "failed": 1,
        "unknown": 0,
        "expired": 0,
        "skipped": 1,
        "errors": 0,
    }
    with pytest.raises(AttributeError, match="^refunded$"):
        report.refunded  # noqa: B018 - not an outcome: no such counter


def test_a_product_not_renewable_by_hand_offers_no_grace_even_with_grace_days(
    fake, dummy_customer, catalogue
):
    product = next(p for p in catalogue["products"].values() if not p.renewable_by_hand)
    product.grace_days = 30  # edited in the back office: still not renewable by hand
    _db.session.commit()
    service = make_service(dummy_customer, product, expires_at=EXPIRES, auto_renew=False)
    assert expire_now(service) is RenewalOutcome.EXPIRED
    [mail] = emails("Servizio scaduto")
    assert "Puoi ancora rinnovarlo" not in mail.body_text
    assert "acquistalo di nuovo dal catalogo" in mail.body_text


# --- a payment refunded in full removes the period it paid --------------------------------


def _bought(customer, catalogue, now, years=1):
    from tests.unit.invoicing_helpers import give_billing
    from tests.unit.money_world import card_order, pay_by_card

    give_billing(customer, "private")
    order = card_order(customer, catalogue["products"], now, years=years)
    payment = pay_by_card(order, now)
    [service] = _services_of(order)
    return service, payment


def test_a_partial_refund_keeps_the_period_paid(fake, dummy_customer, catalogue, now):
    from tests.unit.money_world import refund_in_full
    from webapp.payments.models import RefundKind
    from webapp.payments.refunds import execute_refund, refund_payment
    from webapp.renewals.cancellation import services_stopped_by

    service, payment = _bought(dummy_customer, catalogue, now)
    expires = service.expires_at
    later = now + DAY
    refund = refund_payment(payment, 100, kind=RefundKind.OPERATOR, reason="test", now=later)
    _db.session.commit()
    execute_refund(refund, later)
    _db.session.commit()
    assert services_stopped_by(fresh(payment)) == []
    service = fresh(service)
    assert (service.status, service.expires_at) == (ServiceStatus.ACTIVE, expires)
    refund_in_full(fresh(payment), later)  # the rest: now nothing pays the period
    assert fresh(service).status is ServiceStatus.CANCELLED


def test_a_full_refund_cancels_what_nothing_else_pays(fake, dummy_customer, catalogue, now):
    from tests.unit.money_world import refund_in_full
    from webapp.renewals.cancellation import services_stopped_by

    service, payment = _bought(dummy_customer, catalogue, now, years=2)
    when = now + 3 * DAY
    assert services_stopped_by(payment) == []  # nothing refunded yet
    refund_in_full(payment, when)
    assert services_stopped_by(fresh(payment)) == [fresh(service)]
    service = fresh(service)
    assert (service.status, service.auto_renew, service.cancelled_at) == (
        ServiceStatus.CANCELLED,
        False,
        when,
    )
    assert service.expires_at == service.started_at


def test_a_renewal_refunded_after_the_first_year_ended_leaves_the_service_expired(
    fake, dummy_customer, catalogue, now
):
    from tests.unit.money_world import refund_in_full, renew_once
    from webapp.clock import add_years
    from webapp.renewals.cancellation import services_stopped_by

    service, _ = _bought(dummy_customer, catalogue, now)
    first_expiry = service.expires_at
    renewal_payment = renew_once(service, fake)
    assert services_stopped_by(renewal_payment) == []  # the purchase still pays its year
    when = first_expiry + 5 * DAY
    refund_in_full(renewal_payment, when)
    service = fresh(service)
    assert (service.status, service.expires_at) == (ServiceStatus.EXPIRED, first_expiry)
    assert service.auto_renew and service.cancelled_at is None
    assert first_expiry == add_years(service.started_at, 1)


def test_a_duplicate_payment_refunded_removes_no_period(fake, dummy_customer, catalogue, now):
    from webapp.payments.models import PaymentStatus
    from webapp.renewals.cancellation import on_payment_refunded, services_stopped_by

    service, payment = _bought(dummy_customer, catalogue, now)
    expires = service.expires_at
    twin = Payment(
        order_id=payment.order_id,
        channel=PaymentChannel.HOSTED_PAGE,
        amount_cents=payment.amount_cents,
        refunded_cents=payment.amount_cents,
        status=PaymentStatus.DUPLICATE,
        idempotency_key="duplicate-1",
    )
    _db.session.add(twin)
    _db.session.flush()
    assert services_stopped_by(twin) == []
    on_payment_refunded(None, payment=twin, now=now + DAY)
    _db.session.commit()
    service = fresh(service)
    assert (service.status, service.expires_at) == (ServiceStatus.ACTIVE, expires)


def _locked_by(order) -> list[int]:
    """The service ids the lock of `order`'s settlement selects (its statement run again)."""
    from sqlalchemy import event

    from webapp.renewals.activation import lock_services

    seen = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    assert order.id  # loaded before: the statements below are the lock's
    engine = _db.session.get_bind()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        lock_services(order)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    [(statement, parameters)] = seen  # one statement, rows in the lock's order
    rows = _db.session.connection().exec_driver_sql(statement, parameters)
    return [row[0] for row in rows]


def test_a_settlement_locks_the_services_its_order_pays_in_id_order(
    fake, dummy_customer, catalogue, now
):
    from tests.unit.money_world import card_order, pay_by_card
    from webapp.shop.order_models import OrderLine

    products = catalogue["products"]
    pec = products["PEC-STD"]
    renewed = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    bystander = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    order = card_order(dummy_customer, products, now, skus=("SPID-PF", "PEC-PRO"))
    assert _locked_by(order) == []  # nothing started yet, nothing renewed
    pay_by_card(order, now)
    started = [s.id for s in _services_of(order)]
    order.lines.append(  # a renewal by hand of another service, in the same order
        OrderLine(
            product_id=pec.id,
            product_name=pec.name,
            kind=pec.kind,
            years=1,
            yearly_price_cents=500,
            list_cents=500,
            net_cents=500,
            service_id=renewed.id,
            renews_from=EXPIRES,
        )
    )
    _db.session.flush()
    assert _locked_by(order) == sorted([*started, renewed.id])
    assert bystander.id not in _locked_by(order)


def test_a_renewal_orders_settlement_locks_its_renewals_service(fake, dummy_customer, pec, card):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    make_service(dummy_customer, pec, expires_at=EXPIRES, card=card, auto_renew=False)
    fake.mode = "card_declined"
    run_renewals(EXPIRES - 15 * DAY)
    [renewal] = renewals_of(service)
    assert _locked_by(renewal.order) == [service.id]


def test_each_service_ceases_at_the_end_of_its_own_window(fake, dummy_customer, catalogue):
    products = catalogue["products"]
    spid = make_service(dummy_customer, products["SPID-PF"], expires_at=EXPIRES, auto_renew=False)
    pec = make_service(dummy_customer, products["PEC-STD"], expires_at=EXPIRES, auto_renew=False)
    run_renewals(after(1))
    assert run_renewals(after(31)).ceased == 1  # SPID: 30 days of grace; PEC: 90
    assert fresh(spid).status is ServiceStatus.CEASED
    assert fresh(pec).status is ServiceStatus.EXPIRED
    [mail] = emails("Servizio cessato")
    assert products["SPID-PF"].name in mail.subject


def test_a_service_expired_by_a_refund_ceases_with_auto_renewal_off(
    fake, dummy_customer, catalogue, now
):
    from tests.unit.money_world import refund_in_full, renew_once

    service, _ = _bought(dummy_customer, catalogue, now)
    first_expiry = service.expires_at
    refund_in_full(renew_once(service, fake), first_expiry + 5 * DAY)
    assert fresh(service).auto_renew  # expired by the refund, auto-renewal as it was
    report = run_renewals(first_expiry + 91 * DAY)
    assert report.ceased == 1
    service = fresh(service)
    assert (service.status, service.auto_renew) == (ServiceStatus.CEASED, False)


def test_cease_moves_only_a_service_still_expired_at_the_expiry_read(fake, dummy_customer, pec):
    from sqlalchemy.orm.attributes import set_committed_value

    from webapp.renewals.ceasing import cease

    service = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    run_renewals(after(1))
    service = fresh(service)
    assert cease(service, rome_date(after(90)), after(91))
    _db.session.commit()
    assert not cease(fresh(service), rome_date(after(90)), after(92))  # ceased already
    _db.session.rollback()
    other = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    run_renewals(after(1) + timedelta(hours=1))
    other = fresh(other)
    other.expires_at = EXPIRES + 30 * DAY  # the back office moved its expiry: still expired
    _db.session.commit()
    set_committed_value(other, "expires_at", EXPIRES)  # as the pass read it before
    assert not cease(other, rome_date(after(90)), after(91))
    _db.session.commit()
    assert fresh(other).status is ServiceStatus.EXPIRED
    entries = _db.session.scalars(
        select(ServiceEvent.detail).where(ServiceEvent.detail.startswith("Cessato"))
    ).all()
    assert len(entries) == 1


def test_two_services_ceasing_the_same_day_are_both_counted(fake, dummy_customer, pec):
    make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    run_renewals(after(1))
    assert run_renewals(after(91)).ceased == 2


def test_a_renewal_by_hand_refunded_gives_back_its_period_and_its_twin_none(
    fake, dummy_customer, pec
):
    from tests.unit.invoicing_helpers import hosted_payment
    from tests.unit.money_world import refund_in_full
    from tests.unit.test_manual_renewal import renewal_order
    from webapp.payments.models import PaymentStatus, Refund
    from webapp.payments.refunds import execute_refund
    from webapp.payments.settlement import succeed_payment
    from webapp.shop.order_models import Order

    service = make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    now = after(-10)
    first = renewal_order(dummy_customer, service, 1, now)
    second = renewal_order(dummy_customer, fresh(service), 1, now)  # a second tab
    paid = hosted_payment(_db.session.get(Order, first.id))
    succeed_payment(paid, None, now)
    _db.session.commit()
    twin = hosted_payment(_db.session.get(Order, second.id))
    succeed_payment(twin, None, now)  # paid anyway: refunded in full at once
    _db.session.commit()
    [refund] = _db.session.scalars(select(Refund).where(Refund.payment_id == twin.id)).all()
    execute_refund(refund, now)
    _db.session.commit()
    assert fresh(twin).status is PaymentStatus.SUCCEEDED
    assert fresh(service).expires_at == EXPIRES.replace(year=2028)  # the twin took no period
    refund_in_full(fresh(paid), after(-5))
    service = fresh(service)
    assert service.expires_at == EXPIRES  # back to the expiry it renewed
    # The factory's purchase has no payment on record: nothing else pays the service.
    assert service.status is ServiceStatus.CANCELLED


def test_two_notices_the_same_day_are_both_counted(fake, dummy_customer, pec):
    make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    make_service(dummy_customer, pec, expires_at=EXPIRES, auto_renew=False)
    run_renewals(after(1))
    assert run_renewals(after(83)).due_reminders == 2


def test_refunding_one_services_renewal_moves_only_that_service_back(
    fake, dummy_customer, catalogue, now
):
    from tests.unit.money_world import refund_in_full, renew_once

    first, _ = _bought(dummy_customer, catalogue, now)
    second, _ = _bought(dummy_customer, catalogue, now + timedelta(days=2))
    renew_once(first, fake)
    payment = renew_once(second, fake)
    refund_in_full(payment, now + 300 * DAY)
    assert fresh(first).expires_at == expiry_after(first, 2)
    assert fresh(second).expires_at == expiry_after(second, 1)


def expiry_after(service, years):
    from webapp.clock import add_years

    return add_years(fresh(service).started_at, years)


def test_another_services_renewal_does_not_keep_a_refunded_purchase_paid(
    fake, dummy_customer, catalogue, now
):
    from tests.unit.money_world import refund_in_full, renew_once

    refunded, payment = _bought(dummy_customer, catalogue, now)
    renewed, _ = _bought(dummy_customer, catalogue, now + DAY)
    fresh(refunded).auto_renew = False  # only the other is renewed
    _db.session.commit()
    renew_once(renewed, fake)
    refund_in_full(payment, now + 30 * DAY)
    assert fresh(refunded).status is ServiceStatus.CANCELLED
    assert fresh(renewed).status is ServiceStatus.ACTIVE


def test_an_order_renewing_by_hand_and_buying_refunded_in_full_stops_both(
    fake, dummy_customer, catalogue, now
):
    from tests.unit.money_world import pay_by_card, refund_in_full
    from webapp.renewals import manual
    from webapp.shop import cart as shop_cart
    from webapp.shop import checkout
    from webapp.shop.models import PaymentMethod

    renewed, purchase = _bought(dummy_customer, catalogue, now)
    _bought(dummy_customer, catalogue, now)  # another service, paid and kept
    when = now + 10 * DAY
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    manual.add_to_cart(cart, renewed, 1, when)  # the renewal line first
    shop_cart.add_product(cart, catalogue["products"]["SPID-PF"].id)
    shop_cart.set_payment_method(cart, PaymentMethod.CARD)
    order = checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, when)
    _db.session.commit()
    paid = pay_by_card(order, when)
    [spid] = _services_of(order)
    refund_in_full(purchase, when + DAY)  # the first year: the renewal still pays the service
    assert fresh(renewed).status is ServiceStatus.ACTIVE
    refund_in_full(fresh(paid), when + 2 * DAY)  # now nothing pays it
    assert fresh(renewed).status is ServiceStatus.CANCELLED
    assert fresh(spid).status is ServiceStatus.CANCELLED


def test_a_declined_attempt_of_the_same_order_pays_nothing(fake, dummy_customer, catalogue, now):
    from tests.unit.money_world import refund_in_full
    from webapp.payments.models import PaymentStatus

    service, payment = _bought(dummy_customer, catalogue, now)
    _db.session.add(
        Payment(
            order_id=payment.order_id,
            channel=PaymentChannel.HOSTED_PAGE,
            amount_cents=payment.amount_cents,
            status=PaymentStatus.DECLINED,
            idempotency_key="declined-first-try",
        )
    )
    _db.session.commit()
    refund_in_full(payment, now + DAY)
    assert fresh(service).status is ServiceStatus.CANCELLED


def test_a_renewal_refunded_first_no_longer_pays_when_the_purchase_is_refunded(
    fake, dummy_customer, catalogue, now
):
    from tests.unit.money_world import refund_in_full, renew_once

    service, purchase = _bought(dummy_customer, catalogue, now)
    renewal_payment = renew_once(service, fake)
    refund_in_full(renewal_payment, now + 30 * DAY)
    assert fresh(service).status is ServiceStatus.ACTIVE  # the purchase still pays its year
    refund_in_full(fresh(purchase), now + 31 * DAY)
    service = fresh(service)
    assert (service.status, service.expires_at) == (ServiceStatus.CANCELLED, service.started_at)


def test_a_period_bought_on_29_february_is_removed_back_to_its_start(
    fake, dummy_customer, catalogue
):
    from tests.unit.money_world import refund_in_full

    leap = datetime(2028, 2, 29, 10, 0, tzinfo=UTC)
    service, payment = _bought(dummy_customer, catalogue, leap)
    assert service.expires_at == datetime(2029, 2, 28, 10, 0, tzinfo=UTC)
    refund_in_full(payment, leap + DAY)
    service = fresh(service)
    assert (service.status, service.expires_at) == (ServiceStatus.CANCELLED, leap)


def test_a_renewal_refunded_at_the_very_instant_the_paid_year_ends_expires_it(
    fake, dummy_customer, catalogue, now
):
    from tests.unit.money_world import refund_in_full, renew_once

    service, _ = _bought(dummy_customer, catalogue, now)
    first_expiry = service.expires_at
    refund_in_full(renew_once(service, fake), first_expiry)
    service = fresh(service)
    assert (service.status, service.expires_at) == (ServiceStatus.EXPIRED, first_expiry)


def test_a_full_refund_moves_only_its_own_service(fake, dummy_customer, catalogue, now):
    from tests.unit.money_world import refund_in_full

    refunded, payment = _bought(dummy_customer, catalogue, now)
    kept, _ = _bought(dummy_customer, catalogue, now)  # the same expiry, to the second
    expires = kept.expires_at
    assert refunded.expires_at == expires
    refund_in_full(payment, now + DAY)
    assert fresh(refunded).status is ServiceStatus.CANCELLED
    kept = fresh(kept)
    assert (kept.status, kept.expires_at) == (ServiceStatus.ACTIVE, expires)


def test_a_period_is_removed_only_from_the_expiry_read(fake, dummy_customer, catalogue, now):
    from sqlalchemy.orm.attributes import set_committed_value

    from webapp.renewals.cancellation import Period, remove_period

    service, payment = _bought(dummy_customer, catalogue, now)
    read = service.expires_at
    service.expires_at = read + 30 * DAY  # moved meanwhile (the back office)
    _db.session.commit()
    set_committed_value(service, "expires_at", read)  # as the refund read it before
    remove_period(Period(service, service.started_at, 1), payment, now + DAY)
    _db.session.commit()
    service = fresh(service)
    assert (service.status, service.expires_at) == (ServiceStatus.ACTIVE, read + 30 * DAY)


def test_a_renewal_paid_extends_only_its_own_service(fake, dummy_customer, catalogue, pec, card):
    renewed = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    spid = catalogue["products"]["SPID-PF"]
    other = make_service(dummy_customer, spid, expires_at=EXPIRES, card=card, auto_renew=False)
    assert run_renewals(EXPIRES - 15 * DAY).charged == 1
    assert fresh(renewed).expires_at == EXPIRES.replace(year=2028)
    assert fresh(other).expires_at == EXPIRES  # the same expiry, not renewed


def test_a_charge_settled_after_the_period_moved_on_does_not_move_it_again(
    fake, dummy_customer, pec, card
):
    from webapp.renewals.charging import process

    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    renewal = _charge_in_flight(fake, service, card)
    two_years = EXPIRES.replace(year=2029)
    service = fresh(service)
    service.expires_at = two_years  # moved on meanwhile (an operator, a payment by hand)
    _db.session.commit()
    fake.mode = "ok"
    process(renewal.id, EXPIRES - 14 * DAY, "w1", settings(), lease_now)
    assert fresh(service).expires_at == two_years  # not back to one year after the old expiry


def test_no_grace_notice_on_the_expiry_day_of_a_service_a_refund_expired(
    fake, dummy_customer, catalogue
):
    from tests.unit.money_world import refund_in_full, renew_once
    from webapp.renewals.ceasing import after_expiry
    from webapp.renewals.outcomes import RenewalReport

    catalogue["products"]["PEC-STD"].grace_days = 7  # the notice would be due on the expiry day
    _db.session.commit()
    midnight = rome_midnight(rome_date(datetime(2026, 11, 25, 10, 0, tzinfo=UTC)))
    service, _ = _bought(dummy_customer, catalogue, midnight)
    first_expiry = service.expires_at  # the first instant of its expiry day in Italy
    refund_in_full(renew_once(service, fake), first_expiry)
    assert fresh(service).status is ServiceStatus.EXPIRED  # valid through today all the same
    report = RenewalReport()
    after_expiry(first_expiry + timedelta(hours=2), report)
    assert (report.due_reminders, report.ceased) == (0, 0)
    assert emails("Ultimi giorni per rinnovare") == []


def test_no_grace_notice_for_a_service_kept_active_by_an_unknown_charge(
    fake, dummy_customer, pec, card
):
    service = make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)
    _charge_in_flight(fake, service, card)
    fake.mode = "down"  # the charge's outcome stays unknown: the service is kept
    assert run_renewals(after(1)).unknown >= 1
    report = run_renewals(after(83))  # a week before the window would end
    assert (report.expired, report.due_reminders) == (0, 0)
    assert fresh(service).status is ServiceStatus.ACTIVE
    assert emails("Ultimi giorni per rinnovare") == []
