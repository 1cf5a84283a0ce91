"""Issue 26: every page a customer or an operator can reach fits a 390 px phone (nothing past the
right edge) and keeps its words whole (no "P/a/g/a/t/o", no "07/12/202|6"), on a phone and at
1280 px: the measures of tests/e2e/layout.py; at 1280 px the back office's header is one row with
the current page marked."""

from __future__ import annotations

import pyotp
from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import add_to_cart, confirm_order
from tests.e2e.layout import layout_problems
from tests.e2e.pages import visit_every_page

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# The back office's pages that need no id; the order, customer, service and invoice pages are
# reached by following links from these.
OPERATOR_PAGES = (
    ("/backoffice/", "cruscotto"),
    ("/backoffice/pagamenti/anomalie", "pagamenti-anomali"),
    ("/backoffice/solleciti", "solleciti"),
    ("/backoffice/email", "email"),
    ("/backoffice/servizi/in-periodo-di-grazia", "periodo-di-grazia"),
    ("/backoffice/fatture", "fatture-export"),
    ("/backoffice/fatture/elenco", "fatture-elenco"),
    ("/backoffice/fatture/da-correggere", "fatture-da-correggere"),
    ("/backoffice/catalogo", "catalogo"),
    ("/backoffice/catalogo/nuovo", "catalogo-nuovo"),
    ("/backoffice/sconti", "sconti"),
    ("/backoffice/sconti/nuovo", "sconti-nuovo"),
    ("/backoffice/staff", "staff"),
    ("/backoffice/registro", "registro"),
)


def _context_page(browser: Browser, base_url: str, viewport: dict, mobile: bool) -> Page:
    context = browser.new_context(
        base_url=base_url, locale="it-IT", viewport=viewport, is_mobile=mobile
    )
    context.set_default_timeout(10_000)
    return context.new_page()


def _staff_page(browser: Browser, live, viewport: dict, mobile: bool) -> Page:
    """An administrator (who reaches every page) logged in with password and TOTP."""
    staff = live.sandbox.staff("amministratore")
    page = _context_page(browser, live.shop_url, viewport, mobile)
    page.goto("/backoffice/")
    page.get_by_label("E-mail").fill(staff["email"])
    page.get_by_label("Password").fill(staff["password"])
    page.get_by_role("button", name="Continua").click()
    page.get_by_label("Codice a 6 cifre").fill(pyotp.TOTP(staff["totp_secret"]).now())
    page.get_by_role("button", name="Accedi").click()
    expect(page.get_by_role("heading", name="Cruscotto")).to_be_visible()
    return page


# The middle of each piece of the back office's header (the brand, each menu entry, "Esci").
HEADER_MIDDLES = """() => [...document.querySelectorAll('.site-header > .brand, #bo-nav > *')]
  .map(e => { const r = e.getBoundingClientRect(); return Math.round(r.top + r.height / 2); })"""


def _header_problems(page: Page, name: str) -> list[str]:
    """At 1280 px the back office's header is one row, with the page's entry marked."""
    middles = page.evaluate(HEADER_MIDDLES)
    problems = [] if max(middles) - min(middles) <= 4 else [f"{name}: header on several rows"]
    if page.locator('#bo-nav [aria-current="page"]').count() != 1:
        problems.append(f"{name}: no menu entry (or more than one) marks the current page")
    return problems


def _operator_walk(
    page: Page, customer_name: str, problems: list[str], desktop: bool = False
) -> None:
    """Every back-office page: the fixed ones, a search, and an order, customer and product."""
    for path, name in OPERATOR_PAGES:
        page.goto(path)
        problems += layout_problems(page, name)
        if desktop:
            problems += _header_problems(page, name)
    page.goto(f"/backoffice/cerca?q={customer_name.split()[-1]}")
    problems += layout_problems(page, "cerca")
    page.locator("#results-ordini a").first.click()
    expect(page.get_by_role("heading", name="Ordine n.")).to_be_visible()
    problems += layout_problems(page, "ordine")
    page.goto("/backoffice/catalogo")
    page.locator("main table a").first.click()
    problems += layout_problems(page, "prodotto")


def _customer_extras(page: Page, problems: list[str]) -> None:
    """The customer-area pages visit_every_page does not reach: invoices, billing, transfer."""
    for path, name in (
        ("/area-clienti/fatture", "area-fatture"),
        ("/area-clienti/fatturazione", "area-fatturazione"),
    ):
        page.goto(path)
        problems += layout_problems(page, name)
    page.goto("/area-clienti/fatture")
    copies = page.get_by_role("link", name="Copia di cortesia")
    expect(copies.first).to_be_visible()  # the paid orders of the walk have their invoices
    copies.first.click()
    expect(page.locator("#courtesy-copy")).to_be_visible()  # the copy, not the list it left
    problems += layout_problems(page, "area-fattura-copia")
    page.goto("/")
    add_to_cart(page, "PEC-STD")
    page.goto("/checkout")
    page.get_by_label("Bonifico bancario").check()
    confirm_order(page)
    expect(page.get_by_role("heading", name="Pagamento con bonifico bancario")).to_be_visible()
    problems += layout_problems(page, "ordine-bonifico")


def test_every_customer_page_fits_390px_with_whole_words(
    browser: Browser, live, new_customer, login
) -> None:
    page = _context_page(browser, live.shop_url, PHONE, True)
    problems: list[str] = []

    def check(current: Page, name: str) -> None:
        if current.viewport_size != PHONE:
            current.set_viewport_size(PHONE)
        problems.extend(layout_problems(current, name))

    visit_every_page(page, live.bank_url, login, new_customer, check)
    _customer_extras(page, problems)
    page.context.close()
    assert not problems, "\n".join(problems)


def test_every_operator_page_fits_390px_with_whole_words(browser: Browser, live) -> None:
    page = _context_page(browser, live.shop_url, PHONE, True)
    page.goto("/backoffice/accesso")
    problems = layout_problems(page, "accesso")
    page.context.close()
    page = _staff_page(browser, live, PHONE, True)
    _operator_walk(page, "Rossi", problems)
    page.context.close()
    assert not problems, "\n".join(problems)


def test_at_1280px_no_word_is_split(browser: Browser, live, new_customer, login) -> None:
    """The desktop had the same bug ("Prodot|to", "07/12/202|6" in the orders table)."""
    page = _context_page(browser, live.shop_url, DESKTOP, False)
    problems: list[str] = []

    def check(current: Page, name: str) -> None:
        problems.extend(layout_problems(current, name))

    visit_every_page(page, live.bank_url, login, new_customer, check)
    _customer_extras(page, problems)
    page.context.close()
    page = _staff_page(browser, live, DESKTOP, False)
    _operator_walk(page, "Rossi", problems, desktop=True)
    page.context.close()
    assert not problems, "\n".join(problems)
