"""Steps a customer takes in the browser, and read-only looks at the shop's and bank's data."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from playwright.sync_api import Page, expect

if TYPE_CHECKING:
    from tests.e2e.conftest import Customer, Live

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
    every = "ogni anno" if years == 1 else f"ogni {years} anni"
    expect(row.locator("[data-renewal=on]")).to_contain_text(every)


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


# --- looking at the data: only through the sandbox APIs ------------------------------------


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
    raw: dict[str, Any]


def order_state(live: Live, order_id: int) -> OrderState:
    """The order as the back office sees it now (the shop's sandbox)."""
    order = live.sandbox.order(order_id)
    return OrderState(
        order["number"],
        order["status"],
        order["total_cents"],
        [(p["channel"], p["status"]) for p in order["payments"]],
        [
            ServiceRow(s["sku"], s["auto_renew"], s["frequency_years"], s["card_last4"])
            for s in order["services"]
        ],
        order,
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


def service_info(row: dict[str, Any]) -> ServiceInfo:
    return ServiceInfo(
        row["id"],
        row["sku"],
        row["status"],
        datetime.fromisoformat(row["expires_at"]),
        row["auto_renew"],
        row["frequency_years"],
        row["card_last4"],
    )


def customer_services(live: Live, customer: Customer) -> dict[str, ServiceInfo]:
    """The customer's services by product SKU."""
    return {
        row["sku"]: service_info(row) for row in live.sandbox.customer(customer.email)["services"]
    }


def order_ids(live: Live, customer: Customer, kind: str | None = None) -> list[int]:
    """The customer's orders (of a kind: purchase, renewal), oldest first."""
    orders = live.sandbox.customer(customer.email)["orders"]
    return sorted(o["id"] for o in orders if kind in (None, o["kind"]))


def renewal_orders(live: Live, customer: Customer) -> dict[int, OrderState]:
    """The customer's renewal orders by id (oldest first), with their payments."""
    return {i: order_state(live, i) for i in order_ids(live, customer, "renewal")}


def saved_cards(live: Live, customer: Customer) -> list[tuple[int, str, str]]:
    """The customer's saved cards: (id, brand, last4), newest first."""
    cards = live.sandbox.customer(customer.email)["cards"]
    return [(c["id"], c["brand"], c["last4"]) for c in cards]


@dataclass(frozen=True)
class AtTheBank:
    """An order's movements as the bank recorded them."""

    payments: list[dict[str, Any]]  # hosted payments, any state
    charges: list[dict[str, Any]]  # saved-card and renewal charges
    refunds: list[dict[str, Any]]

    def charged(self) -> list[int]:
        """The amounts of the charges that succeeded."""
        return [c["amount_cents"] for c in self.charges if c["status"] == "succeeded"]

    def authorised(self) -> list[int]:
        return [p["amount_cents"] for p in self.payments if p["status"] == "authorised"]


def at_the_bank(live: Live, order_id: int) -> AtTheBank:
    """The order's payments, charges and refunds at the bank (by the shop's reference)."""
    ref = live.sandbox.order(order_id)["bank_ref"]
    found = live.sandbox.movements(order_ref=ref)
    return AtTheBank(found["payments"], found["charges"], found["refunds"])


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

    def delivered() -> bool:
        found = live.sandbox.movements(payment=bank_payment_id)
        [payment] = [p for p in found["payments"] if p["id"] == bank_payment_id]
        notes = payment["notifications"]
        return bool(notes) and all(n["delivered_at"] for n in notes)

    wait_until(delivered, what=f"bank notification of {bank_payment_id}")


@dataclass(frozen=True)
class Mail:
    """An e-mail as the sandbox shows it (from the shop's outbox)."""

    id: int
    subject: str
    text: str
    links: list[str]


def mails_to(live: Live, customer: Customer) -> list[Mail]:
    """The e-mails to the customer since the registration, oldest first."""
    return [
        Mail(m["id"], m["subject"], m["text"], m["links"])
        for m in live.sandbox.emails(customer.email)
        if m["id"] > customer.mail_floor
    ]


def mails_for_order(live: Live, customer: Customer, number: str) -> list[Mail]:
    return [m for m in mails_to(live, customer) if number in m.subject]


def one_mail_for_order(live: Live, customer: Customer, number: str) -> Mail:
    """Wait for the order's confirmation e-mail and check it is the only one."""
    wait_until(lambda: mails_for_order(live, customer, number), what=f"e-mail for {number}")
    mails = mails_for_order(live, customer, number)
    assert len(mails) == 1, [m.subject for m in mails]
    return mails[0]


def verify_card(page: Page, number: str) -> str:
    """On "Carte di pagamento": "Aggiungi una carta", the bank's zero-amount check, back;
    returns the bank's payment id of the check."""
    page.get_by_role("button", name="Aggiungi una carta").click()
    payment_id = enter_card(page, number)
    if number == "4111111111111111":
        enter_otp(page)
    expect(page.locator("#payment-result h1")).to_have_text("Carta verificata")
    expect(page.locator("#payment-summary")).to_contain_text("€ 0,00")
    page.get_by_role("link", name="torna al negozio").click()
    expect(page.locator("#flash")).to_contain_text(f"•••• {number[-4:]} aggiunta.")
    return payment_id


def add_card_in_area(page: Page, number: str) -> str:
    """Customer area → Carte di pagamento → "Aggiungi una carta": a zero-amount verification;
    returns the bank's payment id of the check."""
    page.goto("/area-clienti/carte")
    payment_id = verify_card(page, number)
    expect(page.locator(f"#card-list [data-last4='{number[-4:]}']")).to_be_visible()
    return payment_id


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


def mails_about(live: Live, customer: Customer, subject: str) -> list[Mail]:
    """The e-mails to the customer whose subject contains `subject`."""
    return [m for m in mails_to(live, customer) if subject in m.subject]


def one_mail_about(live: Live, customer: Customer, subject: str) -> Mail:
    """Wait for an e-mail with this subject and check it is the only one."""
    wait_until(lambda: mails_about(live, customer, subject), what=f"e-mail «{subject}»")
    mails = mails_about(live, customer, subject)
    assert len(mails) == 1, [m.subject for m in mails]
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


# --- the test clock ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockPass:
    """A renewal pass of the sandbox's test clock: when, what it counted, the CLI's line."""

    as_of: datetime
    report: dict[str, int]
    text: str
    moved: dict[str, ServiceInfo]  # the customer's services after the move, before the pass


def _clock_pass(found: dict[str, Any], moved: list[dict[str, Any]]) -> ClockPass:
    result = ClockPass(
        datetime.fromisoformat(found["as_of"]),
        found["report"],
        found["text"],
        {row["sku"]: service_info(row) for row in moved},
    )
    assert result.report["errors"] == 0, result.text
    return result


def renewal_pass(live: Live, as_of: str | None = None) -> ClockPass:
    """A pass of the whole shop as of `as_of` (default now), as the scheduler runs it."""
    return _clock_pass(live.sandbox.renewal_pass(as_of), [])


def days_pass_for(live: Live, customer: Customer, days: int) -> ClockPass:
    """`days` go by for this customer alone (their services' dates move), then a pass now."""
    found = live.sandbox.move(customer.email, days)
    return _clock_pass(found["pass"], found["moved"])


def days_until(expiry: datetime, days_before: int) -> int:
    """How many days must go by for `expiry` to be `days_before` days away (Italian days)."""
    from webapp.clock import now_utc, rome_date

    return (rome_date(expiry) - rome_date(now_utc())).days - days_before
