"""Issue 28: renewal by hand and the life of a service after its expiry, with the time-travel
pass (`run_renewals(as_of)`) and a fake bank: each product's window, reminders to services
without auto-renewal, "Cessato", and one period renewed once whoever pays it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.unit.invoicing_helpers import NS, hosted_payment, pay, xml_tree
from tests.unit.renewal_fakes import emails, make_card, make_service
from webapp.clock import add_years, expiring_by, rome_date, rome_midnight
from webapp.errors import InvalidChoice, InvalidTransition
from webapp.extensions import db as _db
from webapp.invoicing.models import Invoice
from webapp.invoicing.xsd import schema_errors
from webapp.outbox.models import OutboxEmail
from webapp.payments.models import Refund
from webapp.payments.payable import payable_order
from webapp.payments.settlement import succeed_payment
from webapp.renewals import manual
from webapp.renewals.engine import run_renewals
from webapp.renewals.lifecycle import LifeState, life_of
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceEvent, ServiceStatus
from webapp.renewals.timeline import RENEWAL
from webapp.shop import cart as shop_cart
from webapp.shop import checkout
from webapp.shop.models import PaymentMethod, ProductPrice
from webapp.shop.order_models import Order, OrderKind, OrderStatus

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)  # valid through 20/01/2027
DAY = timedelta(days=1)


def after(days: int) -> datetime:
    """Noon-ish of the day `days` after the expiry day (negative: before it)."""
    return EXPIRES + days * DAY


@pytest.fixture
def products(catalogue):
    return catalogue["products"]


def service_of(customer, product, auto_renew=False, card=None) -> Service:
    return make_service(customer, product, expires_at=EXPIRES, auto_renew=auto_renew, card=card)


def fresh(service: Service) -> Service:
    _db.session.expire_all()
    return _db.session.get(Service, service.id)


def renewal_order(customer, service: Service, years: int, now: datetime) -> Order:
    """ "Rinnova" → the cart → Conferma e completa l'ordine (card), as the views do."""
    cart = shop_cart.get_or_create_cart(customer.id, None)
    manual.add_to_cart(cart, service, years, now)
    shop_cart.set_payment_method(cart, PaymentMethod.CARD)
    order = checkout.confirm_order(cart, customer.id, cart.checkout_token, True, now)
    _db.session.commit()
    return order


def renew_by_hand(customer, service: Service, years: int, now: datetime) -> Order:
    order = renewal_order(customer, service, years, now)
    payable_order(order, rome_date(now))  # the check made before the bank is asked
    pay(order, now)
    _db.session.commit()
    return order


# --- PEC: a grace window of 90 days ----------------------------------------------------------


def test_pec_renewed_40_days_after_expiry_keeps_its_identity(fake, dummy_customer, products):
    pec = service_of(dummy_customer, products["PEC-STD"])
    twin = service_of(dummy_customer, products["SPID-PF"])  # the same expiry, not renewed
    run_renewals(after(1))
    assert fresh(pec).status is ServiceStatus.EXPIRED
    [expired] = emails(f"Servizio scaduto: {products['PEC-STD'].name}")
    assert f"/area-clienti/servizi/{pec.id}/rinnova" in expired.body_text
    assert "Puoi ancora rinnovarlo fino al 20/04/2027" in expired.body_text

    now = after(40)
    assert life_of(fresh(pec), rome_date(now)).state is LifeState.EXPIRED  # "Scaduto"
    order = renew_by_hand(dummy_customer, fresh(pec), 2, now)

    renewed = fresh(pec)
    assert renewed.id == pec.id and renewed.order_line_id == pec.order_line_id
    assert renewed.status is ServiceStatus.ACTIVE
    assert renewed.expires_at == add_years(EXPIRES, 2)  # from the old expiry, not from today
    count = _db.session.scalar(
        select(func.count(Service.id)).where(Service.customer_id == dummy_customer.id)
    )
    assert count == 2  # no new service: the same box, the same address
    assert (fresh(twin).status, fresh(twin).expires_at) == (ServiceStatus.EXPIRED, EXPIRES)
    [line] = _db.session.get(Order, order.id).lines
    assert (line.service_id, line.renews_from, line.renews_to) == (
        pec.id,
        EXPIRES,
        add_years(EXPIRES, 2),
    )
    renewal = _db.session.scalar(select(Renewal).where(Renewal.service_id == pec.id))
    assert (renewal.status, renewal.manual, renewal.order_line_id) == (
        RenewalStatus.SUCCEEDED,
        True,
        line.id,
    )
    assert (renewal.attempts, renewal.created_at) == (0, now)  # no automatic attempt
    [event] = _db.session.scalars(
        select(ServiceEvent).where(ServiceEvent.service_id == pec.id, ServiceEvent.kind == RENEWAL)
    ).all()
    assert event.at == now
    assert event.detail.startswith(f"Rinnovo manuale pagato (ordine {order.number})")
    assert life_of(renewed, rome_date(now)).state is LifeState.ACTIVE


def test_pec_on_day_91_is_ceased_and_cannot_be_renewed(
    fake, dummy_customer, products, client, auth
):
    pec = service_of(dummy_customer, products["PEC-STD"])
    run_renewals(after(1))
    run_renewals(after(83))  # a week before the window's last day (20/04/2027)
    [notice] = emails("Ultimi giorni per rinnovare")
    assert "lo conserviamo fino al 20/04/2027" in notice.body_text
    assert f"/area-clienti/servizi/{pec.id}/rinnova" in notice.body_text
    run_renewals(after(83))
    assert len(emails("Ultimi giorni per rinnovare")) == 1  # once

    report = run_renewals(after(90))  # the window's last day: still "Scaduto"
    assert report.ceased == 0
    assert life_of(fresh(pec), rome_date(after(90))).renewable

    report = run_renewals(after(91))
    assert report.ceased == 1
    service = fresh(pec)
    assert service.status is ServiceStatus.CEASED
    life = life_of(service, rome_date(after(91)))
    assert (life.state, life.renewable, life.label) == (LifeState.CEASED, False, "Cessato")
    assert len(emails("Servizio cessato")) == 1
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    with pytest.raises(InvalidChoice, match="cessato"):
        manual.add_to_cart(cart, service, 1, after(91))

    auth.login()
    page = client.get("/area-clienti/").get_data(as_text=True)
    assert f'id="service-{pec.id}-status">Cessato<' in page
    assert f'id="service-{pec.id}-renew"' not in page  # no "Rinnova"
    answer = client.post(f"/area-clienti/servizi/{pec.id}/rinnova", data={"years": "1"})
    assert answer.status_code == 422


# --- Firma Digitale: only in the 90 days before expiry; Marca Temporale: never ---------------


def test_firma_digitale_renews_only_in_the_90_days_before_expiry(fake, dummy_customer, products):
    firma = service_of(dummy_customer, products["FIRMA-R"])
    early = life_of(firma, rome_date(after(-91)))
    assert not early.renewable and "solo nei 90 giorni prima della scadenza" in early.reason
    assert early.renew_from == rome_date(EXPIRES) - timedelta(days=90)
    assert life_of(firma, rome_date(after(-90))).renewable
    assert life_of(firma, rome_date(EXPIRES)).renewable  # the expiry day itself

    run_renewals(after(1))
    expired = fresh(firma)
    life = life_of(expired, rome_date(after(1)))
    assert (life.state, life.renewable) == (LifeState.CEASED, False)
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    with pytest.raises(InvalidChoice):
        manual.add_to_cart(cart, expired, 1, after(1))


def test_firma_renewal_paid_after_expiry_is_refused_before_the_bank(fake, dummy_customer, products):
    firma = service_of(dummy_customer, products["FIRMA-R"])
    order = renewal_order(dummy_customer, firma, 1, after(-5))  # in the cart before expiry
    with pytest.raises(InvalidChoice, match="cessato"):
        payable_order(order, rome_date(after(1)))  # paid the day after: refused


def test_marca_temporale_is_never_renewable(fake, dummy_customer, products):
    marca = service_of(dummy_customer, products["MARCHE-50"])
    life = life_of(marca, rome_date(after(-10)))
    assert not life.renewable and "non si rinnova" in life.reason


# --- never twice -------------------------------------------------------------------------------


def test_service_renewed_by_hand_is_not_charged_by_the_automatic_pass(
    fake, dummy_customer, products
):
    card = make_card(dummy_customer)
    pec = service_of(dummy_customer, products["PEC-STD"], auto_renew=True, card=card)
    renew_by_hand(dummy_customer, pec, 1, after(-20))  # "Rinnova" with auto-renew on
    assert fresh(pec).expires_at == add_years(EXPIRES, 1)
    for days in (-15, -10, -5, -1, 0, 1):
        run_renewals(after(days))
    assert fake.calls == []  # the card was never charged for the period renewed by hand
    renewals = _db.session.scalar(
        select(func.count(Order.id)).where(Order.kind == OrderKind.RENEWAL)
    )
    assert renewals == 0
    assert fresh(pec).expires_at == add_years(EXPIRES, 1)
    assert fresh(pec).auto_renew  # the next period renews automatically as before


def test_failed_automatic_renewal_then_renewed_by_hand_is_not_retried(
    fake, dummy_customer, products, client, auth
):
    card = make_card(dummy_customer)
    pec = service_of(dummy_customer, products["PEC-STD"], auto_renew=True, card=card)
    fake.mode = "insufficient_funds"
    run_renewals(after(-15))
    assert len(fake.calls) == 1
    auth.login()
    page = client.get("/area-clienti/").get_data(as_text=True)
    assert "Il rinnovo automatico non è riuscito" in page
    assert f'href="/area-clienti/servizi/{pec.id}/rinnova">Rinnova ora</a>' in page

    fake.mode = "ok"
    renew_by_hand(dummy_customer, fresh(pec), 1, after(-12))
    renewal = _db.session.scalar(select(Renewal).where(Renewal.service_id == pec.id))
    assert (renewal.status, renewal.manual) == (RenewalStatus.SUCCEEDED, True)
    assert (renewal.completed_at, renewal.next_attempt_at) == (after(-12), None)
    assert (renewal.failure_code, renewal.failure_reason) == (None, None)  # paid: no failure
    assert renewal.order_line_id is not None
    assert _db.session.get(Order, renewal.order_id).status is OrderStatus.CANCELLED
    run_renewals(after(-10))  # a retry day of the failed automatic renewal
    assert len(fake.calls) == 1  # not charged again
    assert fresh(pec).expires_at == add_years(EXPIRES, 1)


def test_two_renewal_orders_for_one_period_extend_once(fake, dummy_customer, products):
    pec = service_of(dummy_customer, products["PEC-STD"])
    now = after(-10)
    first = renewal_order(dummy_customer, pec, 1, now)
    second = renewal_order(dummy_customer, fresh(pec), 1, now)  # a second tab
    pay(first, now)
    _db.session.commit()
    with pytest.raises(InvalidTransition, match="già stato rinnovato"):
        payable_order(_db.session.get(Order, second.id), rome_date(now))  # before the bank

    # Paid anyway (both bank pages open at once): refunded at once, extended once.
    payment = hosted_payment(_db.session.get(Order, second.id))
    succeed_payment(payment, None, now)
    _db.session.commit()
    assert fresh(pec).expires_at == add_years(EXPIRES, 1)
    [refund] = _db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)).all()
    assert refund.amount_cents == payment.amount_cents
    count = _db.session.scalar(select(func.count(Renewal.id)).where(Renewal.service_id == pec.id))
    assert count == 1
    assert fresh(pec).status is ServiceStatus.ACTIVE  # the refund does not cancel the service


# --- reminders to services without auto-renewal ------------------------------------------------


def test_reminders_60_30_7_and_0_days_before_with_rinnova_ora(fake, dummy_customer, products):
    pec = service_of(dummy_customer, products["PEC-STD"])
    sent = []
    for days in range(-62, 1):
        report = run_renewals(after(days) - timedelta(hours=1))
        run_renewals(after(days))  # a second pass the same day sends nothing more
        if report.due_reminders:
            sent.append(-days)
    assert sent == [60, 30, 7, 0]
    reminders = emails("Promemoria: PEC Standard scade il 20/01/2027")
    assert len(reminders) == 3
    assert len(emails("PEC Standard scade oggi")) == 1
    text = reminders[1].body_text  # the 30-day one
    assert "tra 30 giorni" in text
    assert "Rinnovarlo per 1 anno costa € 6,10 (IVA inclusa)" in text
    assert "scadrà il 20/01/2028" in text
    assert f"/area-clienti/servizi/{pec.id}/rinnova" in text.split("Rinnova ora: ")[1]
    keys = {m.dedupe_key for m in reminders}
    assert f"reminders-{dummy_customer.id}-{rome_date(after(-30)).isoformat()}" in keys


def test_one_reminder_a_day_lists_every_service_of_the_customer(fake, dummy_customer, products):
    """Three services due the same day: one e-mail that lists them all (issue 26), whatever
    their kind; a second pass that day sends nothing more."""
    card = make_card(dummy_customer)
    auto = service_of(dummy_customer, products["PEC-PRO"], auto_renew=True, card=card)
    pec = service_of(dummy_customer, products["PEC-STD"])
    firma = service_of(dummy_customer, products["FIRMA-R"])
    report = run_renewals(after(-30))
    assert (report.reminders, report.warnings, report.due_reminders) == (1, 0, 2)
    [mail] = emails("")
    assert mail.to_addr == dummy_customer.email
    assert mail.subject == "Promemoria: 3 servizi in scadenza"
    assert mail.dedupe_key == f"reminders-{dummy_customer.id}-{rome_date(after(-30)).isoformat()}"
    text = mail.body_text
    automatic, by_hand = text.split("== Rinnovo automatico ==")[1].split("== Da rinnovare ==")
    assert "Il servizio PEC Pro scade il 20/01/2027 e ha il rinnovo automatico attivo" in automatic
    assert "sulla carta Visa •••• 4242" in automatic
    for service in (pec, firma):
        name = service.product.name
        assert f"Il servizio {name} scade il 20/01/2027, tra 30 giorni" in by_hand
        assert f"/area-clienti/servizi/{service.id}/rinnova" in by_hand
    assert "PEC Standard" in mail.body_html and "Rinnovo automatico" in mail.body_html
    assert fresh(auto).announced_period is not None  # the amount of the charge was told
    for service in (auto, pec, firma):  # each service's timeline has the e-mail
        events = _db.session.scalars(
            select(ServiceEvent.detail).where(
                ServiceEvent.service_id == service.id, ServiceEvent.kind == "email"
            )
        ).all()
        assert events == [mail.subject]
    again = run_renewals(after(-30) + timedelta(hours=2))
    assert (again.reminders, again.due_reminders) == (0, 0)
    assert len(emails("")) == 1


def test_each_customer_gets_the_reminder_of_its_own_services(
    fake, dummy_customer, create_customer, products
):
    other = create_customer(email="anna@example.it", name="Anna Bianchi")
    service_of(dummy_customer, products["PEC-STD"])
    service_of(other, products["PEC-STD"])
    service_of(other, products["FIRMA-R"])
    assert run_renewals(after(-7)).due_reminders == 3
    sent = {m.to_addr: m.subject for m in emails("")}
    assert sent == {
        dummy_customer.email: "Promemoria: PEC Standard scade il 20/01/2027",
        "anna@example.it": "Promemoria: 2 servizi in scadenza",
    }


def test_the_days_reminder_lists_the_soonest_expiry_first_and_skips_what_cannot_be_renewed(
    app, fake, dummy_customer, products
):
    """A service due later comes after the sooner one; Marche temporali (consumed, bought
    again, not renewable by hand) get no reminder; with no reminder days configured, services
    without auto-renewal get none, and an auto-renewing one still gets its own."""
    later = make_service(
        dummy_customer, products["FIRMA-R"], expires_at=EXPIRES + 7 * DAY, auto_renew=False
    )
    sooner = service_of(dummy_customer, products["PEC-STD"])
    service_of(dummy_customer, products["MARCHE-50"])
    app.config["RENEWAL_DUE_REMINDER_DAYS"] = [30, 37]  # 37 days before the later one's expiry
    assert run_renewals(after(-30)).due_reminders == 2
    [mail] = emails("")
    assert mail.subject == "Promemoria: 2 servizi in scadenza"
    text = mail.body_text
    assert text.index(sooner.product.name) < text.index(later.product.name)
    assert "Marche temporali" not in text
    app.config["RENEWAL_DUE_REMINDER_DAYS"] = []
    card = make_card(dummy_customer)
    auto = make_service(
        dummy_customer, products["PEC-PRO"], expires_at=EXPIRES + DAY, auto_renew=True, card=card
    )
    report = run_renewals(after(-29))
    assert (report.reminders, report.due_reminders) == (1, 0)
    [mail] = emails("rinnoviamo")
    assert mail.subject == f"Promemoria: il 06/01/2027 rinnoviamo {auto.product.name}"


def test_the_reminder_range_runs_from_the_reminder_day_to_the_window(
    fake, dummy_customer, products
):
    """Auto-renewal: a service whose expiry is the first instant past the window's days is
    reminded today; one the first instant past the reminder's days is not (yet)."""
    today = rome_date(after(-30))
    card = make_card(dummy_customer)
    edge = make_service(
        dummy_customer, products["PEC-PRO"], expires_at=expiring_by(today, 15), card=card
    )
    too_far = make_service(
        dummy_customer, products["PEC-STD"], expires_at=expiring_by(today, 30), card=card
    )
    assert run_renewals(after(-30)).reminders == 1
    assert fresh(edge).announced_period is not None
    assert fresh(too_far).announced_period is None


def test_a_service_expiring_at_midnight_is_reminded_that_day(fake, dummy_customer, products):
    today = rome_date(after(-30))
    make_service(
        dummy_customer, products["PEC-STD"], expires_at=rome_midnight(today), auto_renew=False
    )
    assert run_renewals(after(-30)).due_reminders == 1
    assert len(emails("PEC Standard scade oggi: rinnovalo ora")) == 1


def test_every_customers_reminder_is_counted(fake, dummy_customer, create_customer, products):
    other = create_customer(email="anna@example.it", name="Anna Bianchi")
    for customer in (dummy_customer, other):
        old = make_card(customer, exp_month=12, exp_year=2026, last4="1111")
        service_of(customer, products["PEC-PRO"], auto_renew=True, card=old)
    report = run_renewals(after(-30))
    assert (report.reminders, report.warnings) == (2, 2)


def test_the_reminder_quotes_the_price_of_the_pass_day_and_links_the_shop(
    app, fake, dummy_customer, products
):
    """The price in force on the day of the pass (time travel included), not the machine's
    date; the customer's name and the shop's own address."""
    pec = service_of(dummy_customer, products["PEC-STD"])
    day = rome_date(after(-30))
    for cents, start in ((800, day), (900, day + DAY)):
        _db.session.add(
            ProductPrice(product_id=pec.product_id, yearly_price_cents=cents, effective_from=start)
        )
    _db.session.commit()
    run_renewals(after(-30))
    [mail] = emails("")
    assert "Rinnovarlo per 1 anno costa € 9,76" in mail.body_text  # € 8,00 + IVA
    assert mail.body_text.startswith("Gentile Mario Rossi,")
    shop = app.config["SHOP_BASE_URL"]
    assert f"Rinnova ora: {shop}/area-clienti/servizi/{pec.id}/rinnova" in mail.body_text
    assert f'href="{shop}/area-clienti/servizi/{pec.id}/rinnova"' in mail.body_html
    assert f"Area clienti: {shop}/area-clienti" in mail.body_html


def test_a_pass_that_finds_the_days_reminder_queued_announces_nothing(
    fake, dummy_customer, products
):
    """A twin pass queued today's e-mail first: this pass records no announcement of its own
    (it would claim a reminder the customer never got); the service is reminded the next day."""
    card = make_card(dummy_customer)
    auto = service_of(dummy_customer, products["PEC-PRO"], auto_renew=True, card=card)
    today = rome_date(after(-30)).isoformat()
    _db.session.add(
        OutboxEmail(
            dedupe_key=f"reminders-{dummy_customer.id}-{today}",
            to_addr=dummy_customer.email,
            subject="Promemoria (the twin pass's)",
            body_text="",
            body_html="",
        )
    )
    _db.session.commit()
    assert run_renewals(after(-30)).reminders == 0
    assert fresh(auto).announced_period is None
    assert run_renewals(after(-29)).reminders == 1
    assert fresh(auto).announced_cents == 3050  # € 25,00 + 22% VAT, told the next day
    assert len(emails("rinnoviamo PEC Pro")) == 1


def test_no_reminder_after_renewal_nor_to_auto_renewing_services(fake, dummy_customer, products):
    card = make_card(dummy_customer)
    pec = service_of(dummy_customer, products["PEC-STD"])
    service_of(dummy_customer, products["PEC-PRO"], auto_renew=True, card=card)
    renew_by_hand(dummy_customer, pec, 1, after(-45))
    for days in (-30, -7, 0):
        assert run_renewals(after(days)).due_reminders == 0


# --- the invoice line carries the period ---------------------------------------------------------


def test_invoice_line_has_the_renewed_period_and_is_valid(fake, dummy_customer, products):
    pec = service_of(dummy_customer, products["PEC-STD"])
    order = renew_by_hand(dummy_customer, pec, 2, after(-10))
    invoice = _db.session.scalar(select(Invoice).where(Invoice.order_id == order.id))
    assert invoice is not None
    [line] = invoice.lines
    assert line["period_start"] == "2027-01-21" and line["period_end"] == "2029-01-20"
    assert "dal 21/01/2027 al 20/01/2029" in line["description"]
    xml = invoice.xml
    assert schema_errors(xml) == []
    tree = xml_tree(xml)
    detail = tree.find(".//DettaglioLinee", NS)
    assert detail.findtext("DataInizioPeriodo") == "2027-01-21"
    assert detail.findtext("DataFinePeriodo") == "2029-01-20"


def test_payment_refused_before_the_bank_while_the_automatic_charge_is_in_flight(
    fake, dummy_customer, products
):
    card = make_card(dummy_customer)
    pec = service_of(dummy_customer, products["PEC-STD"], auto_renew=True, card=card)
    order = renewal_order(dummy_customer, pec, 1, after(-16))
    fake.mode = "timeout_after_charge"  # charged, the answer lost: the outcome is to be asked
    run_renewals(after(-15))
    with pytest.raises(InvalidTransition, match="in corso presso la banca"):
        payable_order(_db.session.get(Order, order.id), rome_date(after(-15)))
    fake.mode = "ok"
    run_renewals(after(-14))  # the pass asks the bank: the automatic charge renewed the period
    assert fresh(pec).expires_at == add_years(EXPIRES, 1)
    with pytest.raises(InvalidTransition, match="già stato rinnovato"):
        payable_order(_db.session.get(Order, order.id), rome_date(after(-14)))


def test_a_payment_settled_after_the_service_ceased_is_refunded(fake, dummy_customer, products):
    pec = service_of(dummy_customer, products["PEC-STD"])
    run_renewals(after(1))
    order = renewal_order(dummy_customer, fresh(pec), 1, after(90))  # the window's last day
    run_renewals(after(91))  # "Cessato" before the bank's answer is settled
    payment = pay(_db.session.get(Order, order.id), after(91))
    _db.session.commit()
    service = fresh(pec)
    assert (service.status, service.expires_at) == (ServiceStatus.CEASED, EXPIRES)
    [refund] = _db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)).all()
    assert refund.amount_cents == payment.amount_cents
    assert _db.session.scalar(select(Renewal).where(Renewal.service_id == pec.id)) is None


# --- one lock order for every paying transaction (a deadlock otherwise) ------------------------


def _statements_while(action) -> list[str]:
    """The SQL sent to the database while `action()` runs, in order."""
    from sqlalchemy import event

    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        sent.append(" ".join(statement.split()))

    engine = _db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent


def _first(sent: list[str], predicate) -> int:
    return next(i for i, statement in enumerate(sent) if predicate(statement))


def _locks_service_before_the_counter(sent: list[str], service_id: int, writes=True) -> None:
    dialect = _db.engine.dialect.name
    lock = _first(sent, lambda s: "FROM service WHERE service.order_line_id IN" in s)
    counter = _first(sent, lambda s: "invoice_counter" in s)
    assert lock < counter, sent[: counter + 1]
    if writes:  # the paying transaction's first write comes after the lock
        assert lock < _first(sent, lambda s: s.startswith(("UPDATE", "INSERT"))), sent[:lock]
    if dialect == "postgresql":
        assert sent[lock].endswith("FOR UPDATE"), sent[lock]


def test_a_renewal_by_hand_locks_its_service_before_the_order_and_the_invoice_counter(
    fake, dummy_customer, products
):
    """The batch settlement locks the services, then numbers the invoices; a renewal by hand
    paid at that instant used to number its invoice, then wait for the service: deadlock."""
    pec = service_of(dummy_customer, products["PEC-STD"])
    now = after(-10)
    order = renewal_order(dummy_customer, pec, 1, now)
    payment = hosted_payment(_db.session.get(Order, order.id))
    sent = _statements_while(lambda: succeed_payment(payment, None, now))
    _db.session.commit()
    _locks_service_before_the_counter(sent, pec.id)
    assert fresh(pec).expires_at == add_years(EXPIRES, 1)


def test_an_automatic_renewal_settled_per_row_locks_its_service_first(
    app, fake, dummy_customer, products
):
    app.config["RENEWAL_BATCH_SIZE"] = 0  # the per-row path (the batch's: test_renewal_batches)
    card = make_card(dummy_customer)
    pec = service_of(dummy_customer, products["PEC-STD"], auto_renew=True, card=card)
    sent = _statements_while(lambda: run_renewals(after(-10)))
    _locks_service_before_the_counter(sent, pec.id, writes=False)
    assert fresh(pec).expires_at == add_years(EXPIRES, 1)


# --- the life of a service, day by day (lifecycle.life_of on plain rows) ------------------------


def _row(grace=None, by_hand=True, before=None, status=ServiceStatus.ACTIVE):
    """A service row as the area reads it: the product's rules and the expiry (20/01/2027)."""
    from types import SimpleNamespace

    from webapp.shop.models import ServiceKind

    product = SimpleNamespace(
        grace_days=grace,
        renewable_by_hand=by_hand,
        renew_before_days=before,
        kind=ServiceKind.PEC,
        name="PEC Standard",
    )
    return SimpleNamespace(product=product, expires_at=EXPIRES, status=status)


def test_in_scadenza_from_the_configured_days_before_through_the_expiry_day(app):
    day = rome_date(EXPIRES)
    assert life_of(_row(), day - 31 * DAY).state is LifeState.ACTIVE
    assert life_of(_row(), day - 30 * DAY).state is LifeState.EXPIRING  # default: 30 days
    assert life_of(_row(), day).state is LifeState.EXPIRING  # the expiry day: still valid
    app.config["SERVICE_EXPIRING_DAYS"] = 10
    assert life_of(_row(), day - 11 * DAY).state is LifeState.ACTIVE
    assert life_of(_row(), day - 10 * DAY).state is LifeState.EXPIRING
    assert life_of(_row(), day - 11 * DAY, soon=11).state is LifeState.EXPIRING
    del app.config["SERVICE_EXPIRING_DAYS"]  # not configured: 30 days
    assert life_of(_row(), day - 30 * DAY).state is LifeState.EXPIRING


def test_a_renewal_order_is_refused_before_the_bank_once_its_day_is_past(
    fake, dummy_customer, products
):
    """Put in the cart in time, paid too late: Firma Digitale has no grace window, so the day
    after its expiry both payment paths refuse before asking the bank (the day of the payment
    decides, not the day of the order)."""
    from webapp.errors import DomainError
    from webapp.payments import charges
    from webapp.payments import hosted as payments_hosted

    firma = service_of(dummy_customer, products["FIRMA-R"])
    order = renewal_order(dummy_customer, firma, 1, after(-10))
    card = make_card(dummy_customer)
    late = after(1)
    with pytest.raises(DomainError, match="cessato dopo il 20/01/2027"):
        payments_hosted.start_hosted_payment(order, return_url="/r", notify_url=None, now=late)
    with pytest.raises(DomainError, match="cessato dopo il 20/01/2027"):
        charges.begin_saved_card_payment(order, dummy_customer.id, card.id, "a", rome_date(late))
    _db.session.rollback()
    page = payments_hosted.start_hosted_payment(
        order, return_url="/r", notify_url=None, now=after(-1)
    )
    assert page.amount_cents == order.total_cents  # in time, the bank's page opens


def test_the_grace_window_from_the_day_after_the_expiry_to_its_last_day(app):
    day = rome_date(EXPIRES)
    life = life_of(_row(grace=15), day + DAY)
    assert (life.state, life.renewable, life.grace_ends) == (
        LifeState.EXPIRED,
        True,
        day + 15 * DAY,
    )
    assert life_of(_row(grace=15), day + 15 * DAY).state is LifeState.EXPIRED
    ceased = life_of(_row(grace=15), day + 16 * DAY)
    assert (ceased.state, ceased.renewable) == (LifeState.CEASED, False)
    assert "cessato dopo il 04/02/2027" in ceased.reason  # the window's last day
    for no_window in (0, None):
        life = life_of(_row(grace=no_window), day + DAY)
        assert (life.state, life.grace_ends) == (LifeState.CEASED, None)
        assert "cessato dopo il 20/01/2027" in life.reason  # the expiry day


def test_renewal_opens_the_products_days_before_the_expiry(app):
    day = rome_date(EXPIRES)
    early = life_of(_row(before=60), day - 61 * DAY)
    assert (early.renewable, early.renew_from) == (False, day - 60 * DAY)
    assert "nei 60 giorni prima della scadenza: dal 21/11/2026" in early.reason
    opened = life_of(_row(before=60), day - 60 * DAY)
    assert (opened.renewable, opened.reason, opened.renew_from) == (True, None, None)
    assert life_of(_row(before=None), day - 400 * DAY).renewable  # no limit


def test_a_cancelled_ceased_or_not_renewable_service_is_not_renewed(app):
    day = rome_date(EXPIRES)
    cancelled = life_of(_row(status=ServiceStatus.CANCELLED), day)
    assert (cancelled.state, cancelled.renewable, cancelled.label) == (
        LifeState.CANCELLED,
        False,
        "Annullato",
    )
    assert "annullato" in cancelled.reason
    ceased = life_of(_row(grace=90, status=ServiceStatus.CEASED), day - DAY)
    assert (ceased.state, ceased.renewable) == (LifeState.CEASED, False)
    bought_again = life_of(_row(by_hand=False), day)
    assert (bought_again.state, bought_again.renewable) == (LifeState.EXPIRING, False)
    assert "si acquista di nuovo" in bought_again.reason and bought_again.renew_from is None


# --- paid while the automatic charge was in flight (mutation round 3) ---------------------------


def test_paid_by_hand_while_the_automatic_charge_is_in_flight_is_undone_and_refunded(
    fake, dummy_customer, products
):
    """The payment reached the bank anyway: the extension is undone (the charge in flight will
    extend the period if it succeeds), the line's money given back at once, on the timeline."""
    from webapp.payments.models import RefundKind

    card = make_card(dummy_customer)
    pec = service_of(dummy_customer, products["PEC-STD"], auto_renew=True, card=card)
    order = renewal_order(dummy_customer, pec, 2, after(-16))
    other = make_service(dummy_customer, products["SPID-PF"], expires_at=add_years(EXPIRES, 2))
    fake.mode = "timeout_after_charge"  # the automatic charge's outcome is still to be asked
    run_renewals(after(-15))
    fake.mode = "ok"
    payment = pay(_db.session.get(Order, order.id), after(-15))
    _db.session.commit()
    service = fresh(pec)
    assert (service.status, service.expires_at) == (ServiceStatus.ACTIVE, EXPIRES)
    [refund] = _db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)).all()
    assert (refund.kind, refund.amount_cents) == (RefundKind.DUPLICATE, payment.amount_cents)
    line = _db.session.get(Order, order.id).lines[0]
    assert refund.idempotency_key == f"renewal-line-{line.id}"  # once, whoever settles it
    assert refund.created_at == after(-15)
    [event] = _db.session.scalars(
        select(ServiceEvent).where(ServiceEvent.service_id == pec.id, ServiceEvent.kind == RENEWAL)
    ).all()
    assert event.detail.startswith(f"Rinnovo manuale (ordine {order.number}) non applicato")
    assert event.detail.endswith("periodo già rinnovato, rimborsato")
    assert event.at == after(-15)
    automatic = _db.session.scalar(select(Renewal).where(Renewal.service_id == pec.id))
    assert automatic.manual is False and automatic.status is RenewalStatus.PENDING
    assert _db.session.get(Order, automatic.order_id).status is OrderStatus.PENDING_PAYMENT
    assert fresh(other).expires_at == add_years(EXPIRES, 2)  # only this service is put back


def test_an_expired_service_paid_by_hand_while_a_pass_holds_its_period_stays_expired(
    fake, dummy_customer, products
):
    """A pass holds the period's row (its claim is live): the payment is refunded and the
    service goes back to what it was, expired."""
    pec = service_of(dummy_customer, products["PEC-STD"])
    run_renewals(after(1))
    assert fresh(pec).status is ServiceStatus.EXPIRED
    order = renewal_order(dummy_customer, fresh(pec), 1, after(5))
    _db.session.add(
        Renewal(
            service_id=pec.id,
            period_expires_at=EXPIRES,
            status=RenewalStatus.ABANDONED,
            claimed_by="other:1",
            claimed_until=after(5) + timedelta(minutes=5),
        )
    )
    _db.session.commit()
    payment = pay(_db.session.get(Order, order.id), after(5))
    _db.session.commit()
    service = fresh(pec)
    assert (service.status, service.expires_at) == (ServiceStatus.EXPIRED, EXPIRES)
    [refund] = _db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)).all()
    assert refund.amount_cents == payment.amount_cents


def test_other_services_and_periods_do_not_decide_a_renewal_by_hand(fake, dummy_customer, products):
    """Only this service's row for this period refuses or takes the payment: not the same
    expiry's row of another service (renewed, or being charged), nor last year's own row."""
    card = make_card(dummy_customer)
    renewed = service_of(dummy_customer, products["SPID-PF"])
    _db.session.add(
        Renewal(service_id=renewed.id, period_expires_at=EXPIRES, status=RenewalStatus.SUCCEEDED)
    )
    failing = service_of(dummy_customer, products["CONS-1"], auto_renew=True, card=card)
    pec = service_of(dummy_customer, products["PEC-STD"], auto_renew=True, card=card)
    last_year = EXPIRES.replace(year=EXPIRES.year - 1)
    _db.session.add(
        Renewal(service_id=pec.id, period_expires_at=last_year, status=RenewalStatus.SUCCEEDED)
    )
    _db.session.commit()
    fake.mode = "insufficient_funds"
    run_renewals(after(-15))  # `failing` and `pec` fail: open rows for EXPIRES
    fake.mode = "ok"
    assert manual.period_state(pec.id, EXPIRES) is None
    renew_by_hand(dummy_customer, fresh(pec), 1, after(-12))
    assert fresh(pec).expires_at == add_years(EXPIRES, 1)
    mine = _db.session.scalar(
        select(Renewal).where(Renewal.service_id == pec.id, Renewal.period_expires_at == EXPIRES)
    )
    assert (mine.status, mine.manual) == (RenewalStatus.SUCCEEDED, True)
    theirs = _db.session.scalar(select(Renewal).where(Renewal.service_id == failing.id))
    assert (theirs.status, theirs.manual) == (RenewalStatus.FAILED, False)
    assert _db.session.get(Order, theirs.order_id).status is OrderStatus.PENDING_PAYMENT


def test_a_renewal_by_hand_takes_the_years_asked_else_the_frequency_else_one(
    dummy_customer, products, now
):
    pec = service_of(dummy_customer, products["PEC-STD"])
    pec.frequency_years = 3
    _db.session.commit()
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    assert manual.add_to_cart(cart, pec, 2, after(-10)).years == 2
    assert manual.add_to_cart(cart, pec, 9, after(-10)).years == 3  # not on offer: its frequency
    pec.frequency_years = 7  # not on offer either (1-5): one year
    assert manual.add_to_cart(cart, pec, 9, after(-10)).years == 1
