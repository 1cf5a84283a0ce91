"""Steps a customer takes in the browser, and read-only looks at the shop's and bank's data."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import requests
from playwright.sync_api import Page, expect

from webapp.signing import sign_request

if TYPE_CHECKING:
    from tests.e2e.conftest import Live

ORDER_URL = re.compile(r"/ordini/(\d+)$")
PORTAL_URL = re.compile(r"/portale-pagamenti/ordini/\d+$")
BANK_CARD_URL = re.compile(r"/pay/(pay_[^/?#]+)$")
WAIT_S = 10.0


# --- shop steps ------------------------------------------------------------------------------


def add_to_cart(page: Page, *skus: str) -> None:
    """On the open catalogue, click "Aggiungi al carrello" on each product (htmx, no reload)."""
    for sku in skus:
        card = page.locator(f"#product-{sku.lower()}")
        card.get_by_role("button", name="Aggiungi al carrello").click()
        expect(card.get_by_role("status")).to_contain_text("Aggiunto al carrello")


def choose_card_method(page: Page) -> None:
    """Checkout step 1: "Carta di credito"; waits for the per-item auto-renewal notes."""
    page.get_by_label("Carta di credito").check()
    expect(page.locator("#checkout-items")).to_contain_text("Rinnovo automatico")


def set_years(page: Page, product_name: str, years: int) -> None:
    """Checkout step 2: the "Frequenza di rinnovo" of one product; waits for the new amounts."""
    row = checkout_row(page, product_name)
    row.get_by_role("combobox").select_option(str(years))
    unit = "anno" if years == 1 else "anni"
    expect(row.locator("[data-renewal=on]")).to_contain_text(f"ogni {years} {unit}")


def checkout_row(page: Page, product_name: str):
    """The checkout line of a product, found by its "Frequenza di rinnovo" label or its name."""
    rows = page.locator("#checkout-items tbody tr")
    select = page.get_by_label(f"Frequenza di rinnovo per {product_name}", exact=True)
    if select.count():
        return rows.filter(has=select)
    return rows.filter(has_text=product_name)


def confirm_order(page: Page) -> int:
    """Accept the terms and click "Conferma e completa l'ordine"; returns the order id."""
    page.get_by_label("condizioni generali di contratto").check()
    page.get_by_role("button", name="Conferma e completa l'ordine").click()
    expect(page).to_have_url(ORDER_URL)
    return order_id_of(page)


def order_id_of(page: Page) -> int:
    found = ORDER_URL.search(page.url)
    assert found, page.url
    return int(found.group(1))


def buy_by_card(page: Page, *skus: str, years: dict[str, int] | None = None) -> int:
    """Catalogue → checkout by card → confirmed order; returns its id (customer logged in)."""
    page.goto("/")
    add_to_cart(page, *skus)
    page.goto("/checkout")
    choose_card_method(page)
    for name, count in (years or {}).items():
        set_years(page, name, count)
    return confirm_order(page)


def click_pay_now(page: Page) -> None:
    page.get_by_role("button", name="Paga ora su server sicuro").click()


# --- bank steps ------------------------------------------------------------------------------


def bank_payment_id(page: Page) -> str:
    found = BANK_CARD_URL.search(page.url)
    assert found, page.url
    return found.group(1)


def enter_card(page: Page, number: str, holder: str = "Mario Rossi", cvv: str = "123") -> str:
    """On the bank's card page: fill the form, Procedi, then Invio dati; returns the payment id."""
    expect(page).to_have_url(BANK_CARD_URL)
    expect(page.get_by_role("heading", name="Inserisci i dati della carta")).to_be_visible()
    payment_id = bank_payment_id(page)
    page.get_by_label("Intestatario della carta").fill(holder)
    page.get_by_label("Numero carta").fill(number)
    page.get_by_label("Mese di scadenza").select_option("12")
    page.get_by_label("Anno di scadenza").select_option(str(time.gmtime().tm_year + 3))
    page.get_by_label("CVV").fill(cvv)
    page.get_by_role("button", name="Procedi").click()
    expect(page.get_by_role("heading", name="Riepilogo dei dati inseriti")).to_be_visible()
    expect(page.locator("#card-summary")).to_contain_text(f"•••• •••• •••• {number[-4:]}")
    page.get_by_role("button", name="Invio dati").click()
    return payment_id


def enter_otp(page: Page, code: str | None = None) -> None:
    """On the OTP page: type the code shown on the simulated phone (or the given one)."""
    expect(page.get_by_role("heading", name="Autenticazione 3-D Secure")).to_be_visible()
    if code is None:
        code = page.locator("#otp-code").inner_text()
        assert re.fullmatch(r"\d{6}", code), code
    page.get_by_label("Codice OTP").fill(code)
    page.get_by_role("button", name="Conferma").click()


def decide_in_app(page: Page, live: Live, payment_id: str, approve: bool = True) -> None:
    """Open the bank app on a second page, Approva/Rifiuta; the waiting page then moves on."""
    expect(page.get_by_role("heading", name="Apri l'app della tua banca")).to_be_visible()
    phone = page.context.new_page()
    phone.goto(f"{live.bank_url}/app/{payment_id}")
    phone.get_by_role("button", name="Approva" if approve else "Rifiuta").click()
    outcome = "Hai approvato" if approve else "Hai rifiutato"
    expect(phone.locator("#app-outcome")).to_contain_text(outcome)
    phone.close()


def return_to_shop(page: Page, heading: str = "Pagamento autorizzato") -> str:
    """On the bank's result page: check the outcome, click "torna al negozio"; returns its URL."""
    expect(page.locator("#payment-result h1")).to_have_text(heading)
    link = page.get_by_role("link", name="torna al negozio")
    href = link.get_attribute("href")
    assert href
    link.click()
    expect(page).to_have_url(ORDER_URL)
    return href


def pay_first_card(page: Page, number: str = "4242424242424242") -> int:
    """From an order page: Paga ora → bank → a frictionless or OTP card → back; returns the id."""
    order_id = order_id_of(page)
    click_pay_now(page)
    enter_card(page, number)
    if number == "4111111111111111":
        enter_otp(page)
    return_to_shop(page)
    expect(page.locator("#order-status")).to_have_attribute("data-status", "paid")
    return order_id


# --- looking at the data ---------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceRow:
    sku: str
    auto_renew: bool
    frequency_years: int
    card_last4: str | None


@dataclass(frozen=True)
class OrderState:
    number: str
    status: str
    total_cents: int
    payments: list[tuple[str, str]]  # (channel, status)
    services: list[ServiceRow]


def order_state(live: Live, order_id: int) -> OrderState:
    """The order as the shop's database has it now."""
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.payments.models import Payment
    from webapp.renewals.services import services_of_order
    from webapp.shop.models import Order

    with live.app.app_context():
        order = db.session.get(Order, order_id)
        payments = db.session.scalars(
            select(Payment).where(Payment.order_id == order_id).order_by(Payment.id)
        ).all()
        services = [
            ServiceRow(
                s.product.sku,
                s.auto_renew,
                s.frequency_years,
                s.saved_card.last4 if s.saved_card else None,
            )
            for s in sorted(services_of_order(order), key=lambda s: s.id)
        ]
        return OrderState(
            order.number,
            order.status.value,
            order.total_cents,
            [(p.channel.value, p.status.value) for p in payments],
            services,
        )


def saved_cards(live: Live, customer_id: int) -> list[tuple[int, str, str]]:
    """The customer's saved cards: (id, brand, last4), newest first."""
    from webapp.extensions import db
    from webapp.payments.services import list_cards

    with live.app.app_context():
        result = [(c.id, c.brand, c.last4) for c in list_cards(customer_id)]
        db.session.remove()
        return result


def bank_api(live: Live, method: str, path: str, body: dict[str, Any] | None = None):
    """A signed call to the bank's API, as the shop's gateway client makes it."""
    raw = b"" if body is None else json.dumps(body).encode()
    headers = sign_request(
        live.app.config["BANK_SHARED_SECRET"],
        live.app.config["BANK_MERCHANT_ID"],
        method,
        path,
        raw,
        int(time.time()),
    )
    if body is not None:
        headers["Content-Type"] = "application/json"
    return requests.request(method, live.bank_url + path, data=raw, headers=headers, timeout=10)


def bank_stats(live: Live) -> dict[str, int]:
    response = bank_api(live, "GET", "/api/stats")
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT_S, what: str = "") -> Any:
    """Poll a condition outside the browser (mail, background delivery) until true or timeout."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        pause.wait(0.05)


def bank_notified(live: Live, bank_payment_id: str) -> None:
    """Wait until the bank has delivered its notification of this payment to the shop."""
    from sqlalchemy import select

    from webapp.bank.extensions import db as bank_db
    from webapp.bank.models import Notification

    def delivered() -> bool:
        with live.bank_app.app_context():
            rows = bank_db.session.scalars(
                select(Notification).where(Notification.payment_id == bank_payment_id)
            ).all()
            return bool(rows) and all(n.delivered_at is not None for n in rows)

    wait_until(delivered, what=f"bank notification of {bank_payment_id}")


def mails_for_order(live: Live, email: str, number: str) -> list[EmailMessage]:
    return [m for m in live.sink.to(email) if number in str(m["Subject"])]


def one_mail_for_order(live: Live, email: str, number: str) -> EmailMessage:
    """Wait for the order's confirmation e-mail and check it is the only one."""
    wait_until(lambda: mails_for_order(live, email, number), what=f"e-mail for order {number}")
    mails = mails_for_order(live, email, number)
    assert len(mails) == 1, [m["Subject"] for m in mails]
    return mails[0]


def add_card_in_area(page: Page, number: str) -> None:
    """Customer area → Carte di pagamento → "Aggiungi una carta": a zero-amount verification."""
    page.goto("/area-clienti/carte")
    page.get_by_role("button", name="Aggiungi una carta").click()
    enter_card(page, number)
    if number == "4111111111111111":
        enter_otp(page)
    expect(page.locator("#payment-result h1")).to_have_text("Carta verificata")
    expect(page.locator("#payment-summary")).to_contain_text("€ 0,00")
    page.get_by_role("link", name="torna al negozio").click()
    expect(page.locator("#flash")).to_contain_text(f"•••• {number[-4:]} aggiunta.")
    expect(page.locator(f"#card-list [data-last4='{number[-4:]}']")).to_be_visible()


def open_portal(page: Page) -> None:
    """From an order page: "Paga ora su server sicuro" lands on the payment portal."""
    click_pay_now(page)
    expect(page).to_have_url(PORTAL_URL)
    expect(page.get_by_role("heading", name="Pagamento ordine n.")).to_be_visible()


def choose_on_portal(page: Page, label: str) -> None:
    """Select a card ("Visa •••• 4242") or "Nuova carta di pagamento"; waits for the re-render."""
    option = page.locator("#card-picker label.card-option", has_text=label)
    option.get_by_role("radio").check()
    expect(page.locator("#card-picker label.card-option.selected")).to_contain_text(label)
