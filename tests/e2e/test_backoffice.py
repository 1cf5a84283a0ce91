"""Issue 11: the operators' back office. An operator logs in with password + TOTP, records a
bank transfer, refunds a card payment; a customer withdraws from an order within 14 days."""

from __future__ import annotations

import uuid
from datetime import date

import pyotp
from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import (
    add_to_cart,
    bank_api,
    buy_by_card,
    confirm_order,
    one_mail_for_order,
    order_state,
    pay_first_card,
)

STAFF_PASSWORD = "password-operatore"


def make_operator(live, role: str = "operatore") -> tuple[str, str]:
    """A fresh staff account in the live shop; returns (e-mail, TOTP secret)."""
    from webapp.backoffice.auth import create_staff
    from webapp.extensions import db

    email = f"staff-{uuid.uuid4().hex[:8]}@pecshop.test"
    with live.app.app_context():
        staff = create_staff(email, "Olga Operatrice", role, STAFF_PASSWORD)
        staff.totp_confirmed = True  # enrolled (the one-time link has its own test)
        db.session.commit()
        return email, staff.totp_secret


def staff_login(browser: Browser, live) -> Page:
    """A separate browser (no customer cookie): password, then the code of the authenticator."""
    email, secret = make_operator(live)
    page = browser.new_context(base_url=live.shop_url, locale="it-IT").new_page()
    page.goto("/backoffice/")
    expect(page.get_by_role("heading", name="Accesso staff")).to_be_visible()
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Continua").click()
    expect(page.get_by_role("heading", name="Codice di verifica")).to_be_visible()
    expect(page.get_by_role("img", name="Codice QR per l'app di autenticazione")).to_have_count(0)
    page.get_by_label("Codice a 6 cifre").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Accedi").click()
    expect(page.get_by_role("heading", name="Cruscotto")).to_be_visible()
    return page


def open_order(staff: Page, number: str) -> None:
    """Cerca → the order number → its page."""
    staff.locator("#bo-nav").get_by_role("link", name="Cerca").click()
    staff.get_by_label("Numero, nome, e-mail").fill(number)
    staff.get_by_role("button", name="Cerca").click()
    staff.locator("#results-ordini").get_by_role("link", name=number).click()
    expect(staff.get_by_role("heading", name=f"Ordine n. {number}")).to_be_visible()


def test_operator_records_a_bank_transfer(page: Page, browser: Browser, live, new_customer, login):
    login(page, new_customer)
    page.goto("/")
    add_to_cart(page, "PEC-STD")
    page.goto("/checkout")
    page.get_by_label("Bonifico bancario").check()
    expect(page.locator("#checkout-items")).not_to_contain_text("Rinnovo automatico attivo")
    order_id = confirm_order(page)
    expect(page.get_by_role("heading", name="Pagamento con bonifico bancario")).to_be_visible()
    number = order_state(live, order_id).number

    staff = staff_login(browser, live)
    open_order(staff, number)
    form = staff.locator("#transfer-form")
    form.get_by_label("Importo (€)").fill("5,00")
    form.get_by_label("Data valuta").fill(date.today().isoformat())
    form.get_by_label("CRO/TRN").fill(f"CRO{uuid.uuid4().hex[:10].upper()}")
    form.get_by_role("button", name="Registra bonifico").click()
    expect(staff.locator("#order-file [role=alert]")).to_contain_text(
        "Importo del bonifico € 5,00 diverso dal totale dell'ordine € 6,10"
    )
    form = staff.locator("#transfer-form")
    form.get_by_label("Importo (€)").fill("6,10")
    form.get_by_label("Data valuta").fill(date.today().isoformat())
    form.get_by_label("CRO/TRN").fill(f"CRO{uuid.uuid4().hex[:10].upper()}")
    form.get_by_role("button", name="Registra bonifico").click()
    expect(staff.locator("#bo-order-status")).to_have_attribute("data-status", "paid")
    expect(staff.locator("#timeline")).to_contain_text("bonifico registrato")

    state = order_state(live, order_id)
    assert state.status == "paid"
    assert state.payments == [("bank_transfer", "succeeded")]
    assert [(s.sku, s.auto_renew) for s in state.services] == [("PEC-STD", False)]
    one_mail_for_order(live, new_customer.email, number)
    page.goto(f"/ordini/{order_id}")
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    expect(page.locator("#order-services")).to_contain_text("PEC Standard: attivo fino al")


def test_operator_refunds_a_card_payment(page: Page, browser: Browser, live, new_customer, login):
    login(page, new_customer)
    buy_by_card(page, "PEC-PRO")
    order_id = pay_first_card(page)
    number = order_state(live, order_id).number

    staff = staff_login(browser, live)
    open_order(staff, number)
    refund = staff.locator("form.refund-form").first
    refund.get_by_label("Importo da rimborsare (€)").fill("10,00")
    refund.get_by_label("Motivo del rimborso").fill("Reclamo del cliente")
    refund.get_by_role("button", name="Rimborsa").click()
    expect(staff.locator("#order-file [role=status]")).to_contain_text(
        "Rimborso di € 10,00 eseguito"
    )
    expect(staff.locator("#timeline")).to_contain_text("rimborso richiesto")

    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.payments.models import Payment

    with live.app.app_context():
        payment = db.session.scalar(select(Payment).where(Payment.order_id == order_id))
        assert payment.refunded_cents == 1000
        bank_ref = payment.gateway_ref
    response = bank_api(live, "GET", f"/api/payments/{bank_ref}")
    assert response.status_code == 200, response.text
    assert response.json().get("refunded_cents") == 1000, response.json()


def test_customer_withdraws_within_14_days(page: Page, live, new_customer, login):
    login(page, new_customer)
    buy_by_card(page, "PEC-STD")
    order_id = pay_first_card(page)
    page.goto("/area-clienti/ordini")
    page.locator(f"#order-{order_id}").get_by_role("link", name="Recesso").click()
    expect(page.locator("#withdrawal")).to_contain_text("Puoi recedere da questo ordine entro il")
    page.get_by_role("button", name="Esercita il diritto di recesso").click()
    expect(page.locator("#flash")).to_contain_text("Recesso registrato")

    state = order_state(live, order_id)
    assert [(s.sku, s.auto_renew) for s in state.services] == [("PEC-STD", False)]
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.payments.models import Payment, Refund
    from webapp.renewals.models import Service

    with live.app.app_context():
        payment = db.session.scalar(select(Payment).where(Payment.order_id == order_id))
        refunds = db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)).all()
        assert [(r.kind.value, r.amount_cents) for r in refunds] == [
            ("withdrawal", payment.amount_cents)
        ]
        services = db.session.scalars(
            select(Service).where(Service.customer_id == new_customer.id)
        ).all()
        assert [s.status.value for s in services] == ["cancelled"]
    page.goto(f"/area-clienti/ordini/{order_id}/recesso")
    expect(page.locator("#withdrawal-refused")).to_contain_text("già stato rimborsato")
