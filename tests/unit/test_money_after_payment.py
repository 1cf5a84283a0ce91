"""Issue 20: money after the first payment. One buyer per order, the announced price is the
charged price, a refund undoes what it paid, one state shown everywhere, strict amounts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.unit.invoicing_helpers import confirmed_order, give_billing
from tests.unit.money_world import card_order, pay_by_card
from tests.unit.renewal_fakes import FakeGateway
from webapp.extensions import db
from webapp.invoicing.models import Invoice
from webapp.invoicing.services import invoice_of_order
from webapp.payments.withdrawal import withdraw, withdrawal_refusal
from webapp.shop.models import CustomerType


@pytest.fixture(autouse=True)
def fake_bank(app) -> FakeGateway:
    gateway = FakeGateway()
    app.extensions["gateway"] = gateway
    return gateway


# --- 1. the recesso is for orders invoiced to a private person ---------------------------------


def test_a_person_billed_as_a_business_cannot_withdraw(db, dummy_customer, catalogue, now):
    assert len(dummy_customer.tax_code) == 16  # registered with a personal codice fiscale
    give_billing(dummy_customer, "business_code")
    order = card_order(dummy_customer, catalogue["products"], now)
    pay_by_card(order, now)
    assert order.buyer_type is CustomerType.BUSINESS
    assert "consumatori" in withdrawal_refusal(order, dummy_customer, now + timedelta(days=1))
    with pytest.raises(Exception, match="consumatori"):
        withdraw(order, dummy_customer, now + timedelta(days=1))


def test_a_public_administration_cannot_withdraw(db, dummy_customer, catalogue, now):
    give_billing(dummy_customer, "public")
    order = card_order(dummy_customer, catalogue["products"], now)
    pay_by_card(order, now)
    assert "consumatori" in withdrawal_refusal(order, dummy_customer, now)


def test_a_p_iva_registration_billed_as_a_person_can_withdraw(db, dummy_customer, catalogue, now):
    dummy_customer.tax_code = "00743110157"  # registered with a partita IVA
    give_billing(dummy_customer, "private")
    order = card_order(dummy_customer, catalogue["products"], now)
    pay_by_card(order, now)
    assert withdrawal_refusal(order, dummy_customer, now + timedelta(days=1)) is None


def test_the_buyer_at_confirm_decides_not_a_later_edit(db, dummy_customer, catalogue, now):
    give_billing(dummy_customer, "private")
    order = card_order(dummy_customer, catalogue["products"], now)
    give_billing(dummy_customer, "business_code")  # changed after confirm: later orders only
    pay_by_card(order, now)
    assert withdrawal_refusal(order, dummy_customer, now) is None


# --- 2. one buyer per order: the invoice is made out to the buyer copied at confirm ---------------


def test_a_pa_order_paid_after_switching_to_private_is_invoiced_to_the_pa(
    db, dummy_customer, catalogue, now
):
    give_billing(dummy_customer, "public")
    order = confirmed_order(dummy_customer, catalogue["products"], now, skus=("PEC-PRO",))
    assert order.split_payment
    give_billing(dummy_customer, "private")
    payment = pay_by_card(order, now)
    invoice = invoice_of_order(order.id)
    from webapp.outbox.models import OutboxEmail

    mail = db.session.scalar(select(OutboxEmail).where(OutboxEmail.dedupe_key.like("order-paid-%")))
    assert "Intestatario della fattura: Comune di Esempio" in mail.body_text
    assert "scissione dei pagamenti" in mail.body_text
    assert invoice.customer["customer_type"] == "public"
    assert invoice.customer["company_name"] == "Comune di Esempio"
    assert invoice.split_payment and b"<EsigibilitaIVA>S</EsigibilitaIVA>" in invoice.xml
    assert invoice.paid_cents == payment.amount_cents == order.net_cents
    # A later order is for the new buyer.
    later = confirmed_order(dummy_customer, catalogue["products"], now, skus=("PEC-PRO",))
    assert later.buyer_type is CustomerType.PRIVATE and not later.split_payment
    assert later.total_cents == later.net_cents + later.vat_cents


def test_a_private_order_paid_after_switching_to_pa_is_charged_vat_and_invoiced_to_the_person(
    db, dummy_customer, catalogue, now
):
    give_billing(dummy_customer, "private")
    order = confirmed_order(dummy_customer, catalogue["products"], now, skus=("PEC-PRO",))
    give_billing(dummy_customer, "public")
    pay_by_card(order, now)
    invoice = db.session.scalar(select(Invoice).where(Invoice.order_id == order.id))
    assert invoice.customer["customer_type"] == "private" and not invoice.split_payment
    assert invoice.paid_cents == invoice.total_cents == order.total_cents


# --- 3. a refund undoes exactly the period it paid ----------------------------------------------


def _renewed_service(dummy_customer, catalogue, now, fake_bank):
    from tests.unit.money_world import renew_once, service_of_order
    from webapp.clock import add_years
    from webapp.extensions import db

    give_billing(dummy_customer, "private")
    order = card_order(dummy_customer, catalogue["products"], now)
    first = pay_by_card(order, now)
    service = service_of_order(order)
    start = service.started_at
    renewal_payment = renew_once(service, fake_bank)
    db.session.refresh(service)
    assert service.expires_at == add_years(start, 2)
    return service, start, first, renewal_payment


def test_refunding_the_purchase_keeps_the_renewed_period(
    db, dummy_customer, catalogue, now, fake_bank
):
    from tests.unit.money_world import refund_in_full
    from webapp.clock import add_years

    service, start, first, renewal_payment = _renewed_service(
        dummy_customer, catalogue, now, fake_bank
    )
    refund_in_full(first, now + timedelta(days=350))
    db.session.refresh(service)
    assert service.status.value == "active" and service.auto_renew
    assert service.expires_at == add_years(start, 1)  # one year paid: the renewal's
    assert renewal_payment.refunded_cents == 0


def test_refunding_a_renewal_rolls_the_expiry_back_not_the_service(
    db, dummy_customer, catalogue, now, fake_bank
):
    from tests.unit.money_world import refund_in_full
    from webapp.clock import add_years

    service, start, _first, renewal_payment = _renewed_service(
        dummy_customer, catalogue, now, fake_bank
    )
    refund_in_full(renewal_payment, now + timedelta(days=352))
    db.session.refresh(service)
    assert service.status.value == "active"  # the first year is paid
    assert service.auto_renew  # as the customer had it
    assert service.expires_at == add_years(start, 1)


def test_a_withdrawal_cancels_what_nothing_else_pays(db, dummy_customer, catalogue, now):
    from tests.unit.money_world import service_of_order
    from webapp.payments.refunds import execute_refund

    give_billing(dummy_customer, "private")
    order = card_order(dummy_customer, catalogue["products"], now)
    pay_by_card(order, now)
    refund = withdraw(order, dummy_customer, now + timedelta(days=2))
    db.session.commit()
    execute_refund(refund, now + timedelta(days=2))
    db.session.commit()
    service = service_of_order(order)
    assert service.status.value == "cancelled" and not service.auto_renew
    assert service.expires_at == service.started_at  # nothing paid any more


# --- 4. the announced price is the charged price ------------------------------------------------

EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)  # reminder 21/12, window 5/1


def _at(days_before: int) -> datetime:
    return EXPIRES - timedelta(days=days_before)


def _mails(text: str) -> list:
    from webapp.outbox.models import OutboxEmail

    db.session.expire_all()
    return list(
        db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.body_text.contains(text)).order_by(OutboxEmail.id)
        )
    )


@pytest.fixture
def renewing(dummy_customer, catalogue):
    from tests.unit.renewal_fakes import make_card, make_service

    card = make_card(dummy_customer)
    pec = catalogue["products"]["PEC-STD"]  # € 5,00 a year
    return make_service(dummy_customer, pec, expires_at=EXPIRES, card=card)


def _price_from(product, cents: int, day) -> None:
    from webapp.shop.models import ProductPrice

    db.session.add(
        ProductPrice(product_id=product.id, yearly_price_cents=cents, effective_from=day)
    )
    db.session.commit()


def test_the_reminder_announces_the_price_of_the_renewal_day(renewing, fake_bank):
    from webapp.renewals.engine import run_renewals

    # A change effective before the renewal day (5/1) but after the reminder (21/12).
    _price_from(renewing.product, 600, date(2027, 1, 1))
    assert run_renewals(_at(30)).reminders == 1
    assert _mails("addebiteremo € 7,32")  # 6,00 + IVA, not today's 6,10
    assert not _mails("addebiteremo € 6,10")
    assert run_renewals(_at(15)).charged == 1
    assert fake_bank.calls[-1]["amount_cents"] == 732
    assert len(_mails("addebiteremo")) == 1  # nothing new to announce


def test_a_frequency_changed_after_the_reminder_is_announced_before_the_charge(
    client, renewing, fake_bank
):
    from tests.unit.helpers import login
    from webapp.renewals.engine import run_renewals

    assert run_renewals(_at(30)).reminders == 1
    login(client)
    response = client.post(
        f"/area-clienti/servizi/{renewing.id}/frequenza", data={"frequency_years": "2"}
    )
    assert response.status_code == 200, response.text
    [notice] = _mails("addebiteremo € 12,20")
    assert "2 anni" in notice.body_text
    assert run_renewals(_at(15)).charged == 1
    assert fake_bank.calls[-1]["amount_cents"] == 1220


def test_a_price_change_after_the_reminder_is_announced_before_any_charge(renewing, fake_bank):
    from webapp.renewals.engine import run_renewals

    assert run_renewals(_at(30)).reminders == 1
    assert _mails("addebiteremo € 6,10")
    _price_from(renewing.product, 700, date(2027, 1, 1))  # scheduled after the reminder
    report = run_renewals(_at(15))  # the window opens: the new amount is announced first
    assert report.charged == 0 and fake_bank.calls == []
    assert _mails("addebiteremo € 8,54")
    assert run_renewals(_at(14)).charged == 1
    assert fake_bank.calls[-1]["amount_cents"] == 854


def test_a_price_change_after_the_reminder_is_announced_at_the_next_daily_pass(renewing, fake_bank):
    """Before the window opens: the day after the change, the pass sends the new amount, even
    when the customer has nothing else to be reminded of that day."""
    from webapp.renewals.engine import run_renewals

    assert run_renewals(_at(30)).reminders == 1
    _price_from(renewing.product, 700, date(2027, 1, 1))
    report = run_renewals(_at(29))
    assert report.reminders == 0 and fake_bank.calls == []
    [notice] = _mails("addebiteremo € 8,54")
    assert "05/01/2027" in notice.subject
    assert run_renewals(_at(28)) and len(_mails("addebiteremo € 8,54")) == 1  # told once


def test_the_customer_area_quotes_the_renewal_day_price(client, renewing, fake_bank, monkeypatch):
    import webapp.account.area as area
    from tests.unit.helpers import login

    _price_from(renewing.product, 600, date(2027, 1, 1))
    monkeypatch.setattr(area, "now_utc", lambda: _at(30))
    login(client)
    page = client.get("/area-clienti/")
    assert page.status_code == 200
    assert "€ 7,32" in page.text and "€ 6,10" not in page.text


# --- 8. one state after a refund or a withdrawal, shown the same everywhere ----------------------


def _withdrawn(client, dummy_customer, catalogue, now, monkeypatch):
    import webapp.account.withdrawal as views
    from tests.unit.helpers import login

    give_billing(dummy_customer, "private")
    order = card_order(dummy_customer, catalogue["products"], now)
    pay_by_card(order, now)
    later = now + timedelta(days=2)
    monkeypatch.setattr(views, "now_utc", lambda: later)
    login(client)
    assert client.post(f"/area-clienti/ordini/{order.id}/recesso").status_code == 303
    return order


def test_after_a_withdrawal_every_page_says_so(client, dummy_customer, catalogue, now, monkeypatch):
    from tests.unit.backoffice_world import make_staff, staff_session

    order = _withdrawn(client, dummy_customer, catalogue, now, monkeypatch)
    label = "Annullato: recesso del 27/11/2026"
    page = client.get(f"/ordini/{order.id}").text
    assert label in page and 'data-state="withdrawn"' in page
    assert "Attivo, ogni" not in page and "attivo fino al" not in page
    assert "annullato il 27/11/2026" in page
    orders = client.get("/area-clienti/ordini").text
    assert label in orders and "/recesso" not in orders
    services = client.get("/area-clienti/").text
    assert "Annullato" in services and "Scaduto" not in services
    staff = client.application.test_client()  # a customer session gets 404 there
    staff_session(staff, make_staff())
    office = staff.get(f"/backoffice/ordini/{order.id}").text
    assert label in office and "Recesso possibile" not in office


def test_a_partial_refund_says_so_and_keeps_the_recesso_out(client, dummy_customer, catalogue, now):
    from tests.unit.helpers import login
    from webapp.payments.models import RefundKind
    from webapp.payments.refunds import execute_refund, refund_payment

    give_billing(dummy_customer, "private")
    order = card_order(dummy_customer, catalogue["products"], now)
    payment = pay_by_card(order, now)
    refund = refund_payment(payment, 100, kind=RefundKind.OPERATOR, reason="x", now=now)
    db.session.commit()
    execute_refund(refund, now)
    db.session.commit()
    login(client)
    orders = client.get("/area-clienti/ordini").text
    assert "Rimborsato in parte (€ 1,00)" in orders
    assert "Rimborsato in parte (€ 1,00)" in client.get(f"/ordini/{order.id}").text


def test_businesses_are_not_offered_the_recesso(client, dummy_customer, catalogue, now):
    from tests.unit.helpers import add, choose_method, login

    give_billing(dummy_customer, "business_code")
    order = card_order(dummy_customer, catalogue["products"], now)
    pay_by_card(order, now)
    login(client)
    assert "/recesso" not in client.get("/area-clienti/ordini").text
    add(client, catalogue["products"]["PEC-STD"])
    choose_method(client)
    assert "perdo il diritto di recesso" not in client.get("/checkout").text


# --- 5. amounts typed by people: one strict parser ---------------------------------------------


@pytest.mark.parametrize(
    ("typed", "cents"),
    [
        ("12,20", 1220),
        ("12.20", 1220),
        ("€ 12", 1200),
        ("1.234,56", 123456),
        ("1.000", 100000),
        ("0,5", 50),
        ("0,01", 1),
        (" 7 ", 700),
    ],
)
def test_typed_amounts_are_read_the_italian_way(typed, cents):
    from webapp.money import parse_amount_cents

    assert parse_amount_cents(typed) == cents


@pytest.mark.parametrize(
    "typed",
    ["0.001", "0.500", "0,001", "1,234.56", "1.23.4", "-5", "12,2x", "", "1e3", "12.345,678"],
)
def test_ambiguous_or_wrong_amounts_are_refused(typed):
    from webapp.money import AmountInvalid, parse_amount_cents

    with pytest.raises(AmountInvalid):
        parse_amount_cents(typed)


def test_a_refund_of_0_001_is_refused_not_one_euro(client, dummy_customer, catalogue, now):
    from tests.unit.backoffice_world import make_staff, staff_session

    give_billing(dummy_customer, "private")
    order = card_order(dummy_customer, catalogue["products"], now)
    payment = pay_by_card(order, now)
    staff_session(client, make_staff())
    url = f"/backoffice/pagamenti/{payment.id}/rimborso"
    for typed in ("0.001", "0.500"):
        response = client.post(url, data={"amount": typed, "reason": "Reclamo"})
        assert response.status_code == 422 and "non valido" in response.text
    db.session.refresh(payment)
    assert payment.refunded_cents == 0


# --- 6. credit notes that complete a refund match the invoice to the cent ------------------------


@pytest.mark.parametrize(
    ("kind", "skus", "parts"),
    [
        ("private", ("PEC-STD",), (203, 203, 204)),  # € 6,10 in three refunds
        ("private", ("PEC-PRO",), (1, 1, None)),
        ("private", ("PEC-STD",), (1,) * 12 + (None,)),
        ("public", ("PEC-PRO",), (333, 333, None)),
        ("private", ("CONS-1", "PEC-STD"), (999, 7, 13, None)),
    ],
)
def test_refunds_adding_up_to_the_payment_credit_exactly_the_invoice(
    dummy_customer, catalogue, now, kind, skus, parts
):
    from tests.unit.invoicing_helpers import pay, refund

    give_billing(dummy_customer, kind)
    order = confirmed_order(dummy_customer, catalogue["products"], now, skus=skus)
    payment = pay(order, now)
    for part in parts:
        refund(payment, part or payment.amount_cents - payment.refunded_cents, now)
    invoice = invoice_of_order(order.id)
    notes = db.session.scalars(select(Invoice).where(Invoice.related_invoice_id == invoice.id))
    notes = list(notes)
    assert len(notes) == len(parts)
    assert sum(n.paid_cents for n in notes) == invoice.paid_cents == payment.amount_cents
    assert sum(n.net_cents for n in notes) == invoice.net_cents
    assert sum(n.vat_cents for n in notes) == invoice.vat_cents
    assert all(n.net_cents >= 0 and n.vat_cents >= 0 for n in notes)


# --- 7. the checkout token binds the quoted total ---------------------------------------------


def _confirm_form(page: str) -> dict:
    import re

    token = re.search(r'name="checkout_token" value="([^"]+)"', page).group(1)
    total = re.search(r'name="quoted_total" value="(\d+)"', page).group(1)
    return {"checkout_token": token, "quoted_total": total, "terms": "1"}


@pytest.mark.parametrize("htmx", [False, True])
def test_a_code_edited_before_confirm_answers_422_with_the_new_total(
    client, dummy_customer, catalogue, now, monkeypatch, htmx
):
    import html

    from tests.unit.helpers import HX, add, freeze_views, login, orders_of
    from webapp.shop.models import DiscountCode

    freeze_views(monkeypatch, now)
    add(client, catalogue["products"]["PEC-PRO"])
    login(client)
    client.post("/checkout/metodo", data={"payment_method": "card"})
    assert client.post("/checkout/sconto", data={"code": "BENVENUTO10"}).status_code == 200
    shown = _confirm_form(client.get("/checkout").text)
    code = db.session.scalar(select(DiscountCode).where(DiscountCode.code == "BENVENUTO10"))
    code.percent = 5  # edited in the back office meanwhile
    db.session.commit()

    r = client.post("/checkout/conferma", data=shown, headers=HX if htmx else {})
    assert r.status_code == 422
    again = _confirm_form(r.text)
    assert again["checkout_token"] != shown["checkout_token"]
    assert again["quoted_total"] != shown["quoted_total"]
    new_total = int(again["quoted_total"])
    assert "Il totale è cambiato" in html.unescape(r.text)
    assert orders_of(dummy_customer.id) == []

    assert client.post("/checkout/conferma", data=again).status_code == 303
    [order] = orders_of(dummy_customer.id)
    assert order.total_cents == new_total


def test_an_unchanged_total_confirms_as_before(client, dummy_customer, catalogue):
    from tests.unit.helpers import add, choose_method, login, orders_of

    add(client, catalogue["products"]["PEC-STD"])
    login(client)
    choose_method(client)
    shown = _confirm_form(client.get("/checkout").text)
    assert client.post("/checkout/conferma", data=shown).status_code == 303
    [order] = orders_of(dummy_customer.id)
    assert order.total_cents == int(shown["quoted_total"])


@pytest.mark.parametrize("quoted", ["⁵", "٥٠٠", "1" * 13, "-5", "5.00"])
def test_a_quoted_total_that_only_looks_like_a_number_is_refused_not_a_500(
    client, dummy_customer, catalogue, quoted
):
    """ "⁵".isdigit() is True and int("⁵") raises (the URL-map fuzz found it): refused, 422."""
    from tests.unit.helpers import add, choose_method, login, orders_of

    add(client, catalogue["products"]["PEC-STD"])
    login(client)
    choose_method(client)
    shown = _confirm_form(client.get("/checkout").text)
    r = client.post("/checkout/conferma", data={**shown, "quoted_total": quoted})
    assert r.status_code == 422
    assert orders_of(dummy_customer.id) == []
