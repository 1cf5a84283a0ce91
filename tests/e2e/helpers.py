"""Steps a customer takes in the browser, and read-only looks at the shop's and bank's data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from playwright.sync_api import Page, expect

from webapp.signing import sign_request

if TYPE_CHECKING:
    from tests.e2e.conftest import Live

ORDER_URL = re.compile(r"/ordini/(\d+)$")
PORTAL_URL = re.compile(r"/portale-pagamenti/ordini/\d+$")
BANK_CARD_URL = re.compile(r"/pay/(pay_[^/?#]+)$")
WAIT_S = 10.0
PROJECT_DIR = Path(__file__).resolve().parents[2]


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
    htmx_idle(page)


def htmx_idle(page: Page) -> None:
    """Wait until htmx has swapped and settled (and so listens to the new controls)."""
    page.wait_for_function(
        "() => window.htmx !== undefined"
        " && !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )


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


def fill_private_billing(page: Page) -> None:
    """A first checkout asks for the billing data: a private person in Milan."""
    billing = page.locator("#checkout-billing")
    billing.get_by_label("Nome", exact=True).fill("Mario")
    billing.get_by_label("Cognome").fill("Rossi")
    billing.get_by_label("Codice fiscale").fill("RSSMRA85T10A562S")
    billing.get_by_label("Indirizzo (via e numero civico)").fill("Via Garibaldi 10")
    billing.get_by_label("CAP").fill("20121")
    billing.get_by_label("Comune", exact=True).fill("Milano")
    billing.get_by_label("Provincia (sigla)").fill("MI")
    billing.get_by_role("button", name="Salva i dati di fatturazione").click()
    expect(billing.get_by_role("button", name="Salva i dati di fatturazione")).to_have_count(0)
    htmx_idle(page)


def confirm_order(page: Page) -> int:
    """Accept the terms and click "Conferma e completa l'ordine"; returns the order id.

    A customer without billing data (one registered through the page, as against a deployment)
    gives them first, as the checkout asks."""
    if page.get_by_role("button", name="Salva i dati di fatturazione").count():
        fill_private_billing(page)
    page.get_by_label("condizioni generali di contratto").check()
    page.get_by_role("button", name="Conferma e completa l'ordine").click()
    expect(page).to_have_url(ORDER_URL)
    return order_id_of(page)


def order_id_of(page: Page) -> int:
    found = ORDER_URL.search(page.url)
    assert found, page.url
    return int(found.group(1))


def apply_discount(page: Page, code: str) -> None:
    """Checkout step 3: type a discount code and "Applica"; waits until it is applied."""
    page.get_by_label("Hai un codice sconto?").fill(code)
    page.get_by_role("button", name="Applica").click()
    expect(page.locator("#checkout-discount")).to_contain_text(f"Codice sconto {code} applicato")


def buy_by_card(
    page: Page, *skus: str, years: dict[str, int] | None = None, discount: str | None = None
) -> int:
    """Catalogue → checkout by card → confirmed order; returns its id (customer logged in)."""
    page.goto("/")
    add_to_cart(page, *skus)
    page.goto("/checkout")
    choose_card_method(page)
    for name, count in (years or {}).items():
        set_years(page, name, count)
    if discount:
        apply_discount(page, discount)
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


def require_local(live: Live, what: str) -> None:
    """Against a deployment (--base-url) the tests cannot look inside it: skip, saying why."""
    if live.remote:
        pytest.skip(f"against a deployment ({live.shop_url}) the test cannot {what}")


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
    require_local(live, "read the shop's database")
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


@dataclass(frozen=True)
class ServiceInfo:
    id: int
    sku: str
    status: str
    expires_at: datetime
    auto_renew: bool
    frequency_years: int
    card_last4: str | None


def customer_services(live: Live, customer_id: int) -> dict[str, ServiceInfo]:
    """The customer's services by product SKU, as the shop's database has them now."""
    require_local(live, "read the shop's database")
    from webapp.renewals.services import list_services

    with live.app.app_context():
        return {
            s.product.sku: ServiceInfo(
                s.id,
                s.product.sku,
                s.status.value,
                s.expires_at,
                s.auto_renew,
                s.frequency_years,
                s.saved_card.last4 if s.saved_card else None,
            )
            for s in list_services(customer_id)
        }


def renewal_orders(live: Live, customer_id: int) -> dict[int, OrderState]:
    """The customer's renewal orders by id (oldest first), with their payments."""
    require_local(live, "read the shop's database")
    from sqlalchemy import select

    from webapp.extensions import db
    from webapp.shop.models import Order, OrderKind

    with live.app.app_context():
        ids = db.session.scalars(
            select(Order.id)
            .where(Order.customer_id == customer_id, Order.kind == OrderKind.RENEWAL)
            .order_by(Order.id)
        ).all()
    return {order_id: order_state(live, order_id) for order_id in ids}


def saved_cards(live: Live, customer_id: int) -> list[tuple[int, str, str]]:
    """The customer's saved cards: (id, brand, last4), newest first."""
    require_local(live, "read the shop's database")
    from webapp.extensions import db
    from webapp.payments.services import list_cards

    with live.app.app_context():
        result = [(c.id, c.brand, c.last4) for c in list_cards(customer_id)]
        db.session.remove()
        return result


def bank_api(live: Live, method: str, path: str, body: dict[str, Any] | None = None):
    """A signed call to the bank's API, as the shop's gateway client makes it."""
    require_local(live, "sign calls to the bank's API")
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
    require_local(live, "read the bank's database")
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


def verify_card(page: Page, number: str) -> None:
    """On "Carte di pagamento": "Aggiungi una carta", the bank's zero-amount check, back."""
    page.get_by_role("button", name="Aggiungi una carta").click()
    enter_card(page, number)
    if number == "4111111111111111":
        enter_otp(page)
    expect(page.locator("#payment-result h1")).to_have_text("Carta verificata")
    expect(page.locator("#payment-summary")).to_contain_text("€ 0,00")
    page.get_by_role("link", name="torna al negozio").click()
    expect(page.locator("#flash")).to_contain_text(f"•••• {number[-4:]} aggiunta.")


def add_card_in_area(page: Page, number: str) -> None:
    """Customer area → Carte di pagamento → "Aggiungi una carta": a zero-amount verification."""
    page.goto("/area-clienti/carte")
    verify_card(page, number)
    expect(page.locator(f"#card-list [data-last4='{number[-4:]}']")).to_be_visible()


def open_my_services(page: Page) -> None:
    """Header "Area clienti" → "I miei servizi"."""
    page.get_by_role("link", name="Area clienti").click()
    htmx_idle(page)  # a boosted navigation: wait until the new page listens
    page.locator("#area-nav").get_by_role("link", name="I miei servizi").click()
    expect(page.get_by_role("heading", name="I miei servizi")).to_be_visible()
    htmx_idle(page)


def service_row(page: Page, product_name: str):
    """The row of a service in "I miei servizi", by its product name."""
    heading = page.get_by_role("heading", name=product_name, exact=True)
    return page.locator("#services article.service").filter(has=heading)


def mark_document(page: Page) -> None:
    """Put a marker on window: it survives htmx swaps and is gone after any navigation."""
    page.evaluate("window.__sameDocument = true")


def same_document(page: Page) -> bool:
    return page.evaluate("window.__sameDocument") is True


def day(value: datetime | date) -> str:
    """A date as the shop shows it: the day in Italy, dd/mm/yyyy."""
    from webapp.clock import rome_date

    return (rome_date(value) if isinstance(value, datetime) else value).strftime("%d/%m/%Y")


def mails_about(live: Live, email: str, subject: str) -> list[EmailMessage]:
    """The e-mails to an address whose subject contains `subject`."""
    return [m for m in live.sink.to(email) if subject in str(m["Subject"])]


def one_mail_about(live: Live, email: str, subject: str) -> EmailMessage:
    """Wait for an e-mail with this subject and check it is the only one."""
    wait_until(lambda: mails_about(live, email, subject), what=f"e-mail «{subject}»")
    mails = mails_about(live, email, subject)
    assert len(mails) == 1, [m["Subject"] for m in mails]
    return mails[0]


def open_portal(page: Page) -> None:
    """From an order page: "Paga ora su server sicuro" lands on the payment portal."""
    click_pay_now(page)
    expect(page).to_have_url(PORTAL_URL)
    expect(page.get_by_role("heading", name="Pagamento ordine n.")).to_be_visible()


def choose_on_portal(page: Page, label: str) -> None:
    """Select a card ("Visa •••• 4242") or "Nuova carta di pagamento"; waits for the re-render."""
    # The picker re-renders through htmx: a change made before htmx has started is not heard.
    page.wait_for_load_state("load")
    page.wait_for_function("() => window.htmx !== undefined")
    option = page.locator("#card-picker label.card-option", has_text=label)
    option.get_by_role("radio").check()
    expect(page.locator("#card-picker label.card-option.selected")).to_contain_text(label)


# --- the renewal pass, as an operator runs it ----------------------------------------------------


def run_renewal_pass(live: Live, as_of: date) -> str:
    """`flask renewals run --as-of` in its own process, on the live shop's database and bank."""
    require_local(live, "drive the renewal clock")
    config = live.app.config
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
        "BANK_API_URL": live.bank_url,
        "BANK_MERCHANT_ID": config["BANK_MERCHANT_ID"],
        "BANK_SHARED_SECRET": config["BANK_SHARED_SECRET"],
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(live.sink.port),
        "MAIL_SUPPRESS_SEND": "0",
        "SHOP_BASE_URL": live.shop_url,
    }
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "renewals", "run"]
    result = subprocess.run(
        [*command, "--as-of", as_of.isoformat()],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Passata rinnovi al {as_of:%d/%m/%Y} 12:00" in result.stdout, result.stdout
    assert report_count(result.stdout, "errori") == 0, result.stdout + result.stderr
    return result.stdout


def report_count(output: str, label: str) -> int:
    """One counter of the pass's report line, e.g. "addebitati"."""
    found = re.search(rf"{label} (\d+)", output)
    assert found, output
    return int(found.group(1))
