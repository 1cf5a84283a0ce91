"""Issue 2: from the catalogue to a confirmed order, with every checkout step the seed lists."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    ORDER_URL,
    add_to_cart,
    checkout_row,
    fill_private_billing,
    order_id_of,
    order_ids,
    order_state,
)

# Demo prices (webapp/demo.py), per year net of VAT: PEC Standard 5,00; PEC promo 2,50;
# Firma Digitale Remota 39,90; SPID 9,90. IVA 22% on the net total, rounded half up.


def totals(page: Page, scope: str):
    return {
        key: page.locator(f"{scope} [data-total={key}]")
        for key in ("subtotal", "discount", "net", "vat", "total")
    }


def expect_totals(page: Page, scope: str, subtotal: str, vat: str, total: str) -> None:
    found = totals(page, scope)
    expect(found["subtotal"]).to_have_text(subtotal)
    expect(found["vat"]).to_have_text(vat)
    expect(found["total"]).to_have_text(total)


def test_cart_to_confirmed_order(page: Page, live, new_customer) -> None:
    page.goto("/")
    badge = page.locator("#cart-badge")
    expect(badge).to_have_text("0")
    # A marker on the window survives only if the page is never reloaded.
    page.evaluate("window.__sameDocument = true")

    for count, sku in enumerate(["PEC-STD", "PEC-PROMO", "FIRMA-R", "SPID-PF"], start=1):
        add_to_cart(page, sku)
        expect(badge).to_have_text(str(count))
    assert page.evaluate("window.__sameDocument") is True

    page.locator("header").get_by_role("link", name="Carrello").click()
    cart_rows = page.locator("#cart tbody tr")
    expect(cart_rows).to_have_count(4)
    expect_totals(page, "#cart", "€ 57,30", "€ 12,61", "€ 69,91")

    page.evaluate("window.__sameDocument = true")
    cart_rows.filter(has_text="SPID Persona Fisica").get_by_role("button", name="Rimuovi").click()
    expect(cart_rows).to_have_count(3)
    expect(page.locator("#cart")).not_to_contain_text("SPID")
    expect_totals(page, "#cart", "€ 47,40", "€ 10,43", "€ 57,83")
    expect(badge).to_have_text("3")
    assert page.evaluate("window.__sameDocument") is True

    # Checkout needs an account: log in, and the anonymous cart comes along.
    page.get_by_role("link", name="Procedi all'ordine").click()
    expect(page.get_by_role("heading", name="Accedi")).to_be_visible()
    page.get_by_label("E-mail").fill(new_customer.email)
    page.get_by_label("Password").fill(new_customer.password)
    page.get_by_role("button", name="Accedi").click()
    expect(page.get_by_role("heading", name="Completa l'ordine")).to_be_visible()
    expect(page.locator("#checkout-items tbody tr")).to_have_count(3)
    expect(badge).to_have_text("3")
    expect_totals(page, "#checkout-totals", "€ 47,40", "€ 10,43", "€ 57,83")

    # 1. Carta di credito: auto-renewal notes per item.
    page.evaluate("window.__sameDocument = true")
    page.get_by_label("Carta di credito").check()
    pec = checkout_row(page, "PEC Standard")
    promo = checkout_row(page, "PEC Standard in promozione")
    firma = checkout_row(page, "Firma Digitale Remota")
    expect(pec.locator("[data-renewal=on]")).to_have_text(
        "Rinnovo automatico attivato: ogni anno sulla carta con cui paghi l'ordine"
    )
    expect(promo.locator("[data-renewal=on]")).to_be_visible()
    expect(firma.locator("[data-renewal=unavailable]")).to_contain_text("non è disponibile")
    expect(firma.locator("[data-renewal=on]")).to_have_count(0)
    expect(firma.get_by_role("combobox")).to_have_count(0)

    # 2. Frequenza di rinnovo: PEC for 3 years; the promo offers only 1 or 2.
    pec.get_by_role("combobox").select_option("3")
    expect(pec.locator("[data-renewal=on]")).to_contain_text("ogni 3 anni")
    expect(pec.locator("[data-line-amount]")).to_have_text("€ 15,00")
    expect_totals(page, "#checkout-totals", "€ 57,40", "€ 12,63", "€ 70,03")
    # Each "Frequenza di rinnovo" option shows what those years cost (net price x years).
    expect(promo.get_by_role("option")).to_have_text(
        ["1 anno · € 2,50 + IVA", "2 anni · € 5,00 + IVA"]
    )
    expect(pec.get_by_role("option")).to_have_count(5)

    # 3. Codice sconto: unknown, expired, then a valid one.
    code = page.get_by_label("Hai un codice sconto?")
    discount = page.locator("#checkout-discount")
    code.fill("NONESISTE")
    page.get_by_role("button", name="Applica").click()
    expect(discount.get_by_role("alert")).to_have_text("Il codice sconto «NONESISTE» non esiste.")
    expect_totals(page, "#checkout-totals", "€ 57,40", "€ 12,63", "€ 70,03")
    expect(totals(page, "#checkout-totals")["discount"]).to_have_count(0)

    code.fill("ESTATE2025")
    page.get_by_role("button", name="Applica").click()
    expect(discount.get_by_role("alert")).to_contain_text(
        "Il codice sconto ESTATE2025 è scaduto il"
    )
    expect_totals(page, "#checkout-totals", "€ 57,40", "€ 12,63", "€ 70,03")

    code.fill("BENVENUTO10")
    page.get_by_role("button", name="Applica").click()
    expect(discount).to_contain_text("Codice sconto BENVENUTO10 applicato")
    found = totals(page, "#checkout-totals")
    expect(found["discount"]).to_have_text("− € 5,74")
    expect(found["net"]).to_have_text("€ 51,66")
    expect_totals(page, "#checkout-totals", "€ 57,40", "€ 11,37", "€ 63,03")
    assert page.evaluate("window.__sameDocument") is True

    # 4. Without the terms nothing is created (a customer registered through the page, as
    # against a deployment, gives the billing data first).
    if page.get_by_role("button", name="Salva i dati di fatturazione").count():
        fill_private_billing(page)
    confirm = page.get_by_role("button", name="Conferma e completa l'ordine")
    confirm.click()
    expect(page.locator("#checkout-confirm").get_by_role("alert")).to_have_text(
        "Per confermare l'ordine devi accettare le condizioni generali di contratto."
    )
    assert order_ids(live, new_customer) == []

    # 5. With the terms: the order, with the amounts the server computed.
    page.get_by_label("condizioni generali di contratto").check()
    confirm.click()
    expect(page).to_have_url(ORDER_URL)
    expect(page.locator("#order-total")).to_have_text("€ 63,03")
    expect(page.locator("#order-status")).to_have_text("In attesa di pagamento")
    expect(page.get_by_role("button", name="Paga ora su server sicuro")).to_be_visible()
    expect(badge).to_have_text("0")

    state = order_state(live, order_id_of(page))
    assert (state.status, state.total_cents, state.payments) == ("pending_payment", 6303, [])
    assert order_ids(live, new_customer) == [order_id_of(page)]
    _assert_order_lines(state.raw)


def _assert_order_lines(order: dict) -> None:
    """The order as the back office sees it: the code, the amounts, the lines."""
    lines = {line["product"]: (line["years"], line["auto_renew"]) for line in order["lines"]}
    assert order["discount_code"] == "BENVENUTO10"
    amounts = (order["subtotal_cents"], order["discount_cents"], order["vat_cents"])
    assert amounts == (5740, 574, 1137)
    assert lines == {
        "PEC Standard": (3, True),
        "PEC Standard in promozione": (1, True),
        "Firma Digitale Remota": (1, False),
    }
