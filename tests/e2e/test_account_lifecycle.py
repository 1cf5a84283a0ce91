"""Issue 21 in the browser: a forgotten password, a confirmed address, a new address, a closed
account. The e-mails are read through the sandbox API (`live.sandbox`), as QA does."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from tests.e2e.helpers import (
    add_to_cart,
    choose_card_method,
    confirm_order,
    fill_private_billing,
    pay_first_card,
    wait_until,
)

RESET_LINK = re.compile(r"https?://\S+/password/nuova/[A-Za-z0-9_-]+")
CONFIRM_LINK = re.compile(r"https?://\S+/conferma-email/[A-Za-z0-9_-]+")


def _mails(live, email: str) -> list[tuple[str, str]]:
    """(subject, text) of the e-mails to `email`, oldest first."""
    return [(m["subject"], m["text"]) for m in live.sandbox.emails(email)]


def wait_for_link(live, email: str, pattern: re.Pattern) -> str:
    """The newest link matching `pattern` e-mailed to `email` (waits for it)."""

    def newest() -> str | None:
        for _subject, text in reversed(_mails(live, email)):
            found = pattern.search(text)
            if found:
                return found.group(0)
        return None

    return wait_until(newest, what=f"a link e-mailed to {email}")


def one_mail_about(live, email: str, subject: str) -> None:
    """Wait for the one e-mail to `email` with this subject."""
    wait_until(lambda: [s for s, _ in _mails(live, email) if subject in s], what=subject)
    assert [s for s, _ in _mails(live, email) if subject in s] == [subject]


def fresh_email() -> str:
    return f"cliente-{uuid.uuid4().hex[:10]}@example.it"


def logged_in_as(page: Page, name: str) -> None:
    expect(page.get_by_role("button", name=f"Esci ({name})")).to_be_visible()


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/accedi")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Accedi").click()


def test_forgot_password_to_a_new_password_and_back_in(page: Page, live, new_customer):
    page.goto("/accedi")
    page.get_by_role("link", name="Password dimenticata?").click()
    # A boosted navigation: fill the new page's field, not the login page's before the swap.
    expect(page.get_by_role("heading", name="Password dimenticata?")).to_be_visible()
    page.get_by_label("E-mail").fill(new_customer.email)
    page.get_by_role("button", name="Invia il link").click()
    expect(page.get_by_role("status")).to_contain_text("Il link vale 60 minuti")

    link = wait_for_link(live, new_customer.email, RESET_LINK)
    page.goto(link)
    expect(page).to_have_url(re.compile(r"/password/nuova$"))  # the token left the URL
    page.get_by_label("Nuova password").fill("una-nuova-password")
    page.get_by_label("Ripeti la password").fill("una-nuova-password")
    page.get_by_role("button", name="Salva la nuova password").click()
    expect(page.locator("#flash")).to_contain_text("Password cambiata")

    log_in(page, new_customer.email, "una-nuova-password")
    logged_in_as(page, new_customer.name)
    one_mail_about(live, new_customer.email, "La tua password è stata cambiata")

    page.goto(link)  # the link works once
    expect(page.get_by_role("heading", name="Link già usato o scaduto")).to_be_visible()
    expect(page.get_by_role("link", name="Chiedi un nuovo link")).to_be_visible()


def test_register_confirm_by_the_emailed_link_and_pay(page: Page, live):
    email = fresh_email()
    page.goto("/registrati")
    expect(page.get_by_text("Almeno 8 caratteri")).to_be_visible()  # before any error
    page.get_by_label("Nome e cognome o ragione sociale").fill("Giulia Bianchi")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Codice fiscale o partita IVA").fill("RSSMRA85T10A562S")
    page.get_by_label("Password", exact=True).fill("password123")
    page.get_by_label("Ripeti la password").fill("password123")
    page.get_by_role("button", name="Registrati").click()
    logged_in_as(page, "Giulia Bianchi")

    add_to_cart(page, "PEC-STD")
    page.goto("/checkout")
    choose_card_method(page)
    fill_private_billing(page)
    notice = page.locator("#email-unconfirmed")
    expect(notice).to_contain_text("Conferma il tuo indirizzo e-mail")
    page.get_by_label("condizioni generali di contratto").check()
    page.get_by_role("button", name="Conferma e completa l'ordine").click()
    expect(page.locator("#checkout-confirm")).to_contain_text(
        "Conferma il tuo indirizzo e-mail prima di confermare l'ordine"
    )
    page.locator("#checkout-confirm").get_by_role("button", name="Invia di nuovo").click()
    expect(page.locator("#flash")).to_contain_text("link")

    link = wait_for_link(live, email, CONFIRM_LINK)
    page.goto(link)
    expect(page.get_by_role("heading", name="Indirizzo confermato")).to_be_visible()
    page.goto(link)  # a second click confirms nothing more
    expect(page.get_by_role("heading", name="Indirizzo già confermato")).to_be_visible()

    page.goto("/checkout")
    expect(page.locator("#email-unconfirmed")).to_have_count(0)
    confirm_order(page)
    pay_first_card(page)


def test_change_email_confirmed_by_link(page: Page, live, login, new_customer):
    login(page, new_customer)
    page.goto("/area-clienti/profilo/")
    new_email = fresh_email()
    section = page.locator("#profile-email")
    section.get_by_label("Nuovo indirizzo e-mail").fill(new_email)
    section.get_by_label("Password attuale").fill(new_customer.password)
    section.get_by_role("button", name="Cambia indirizzo e-mail").click()
    expect(page.locator("#flash")).to_contain_text(new_email)
    expect(page.locator("#profile-email")).to_contain_text(new_customer.email)  # not yet
    one_mail_about(live, new_customer.email, "Richiesta di cambio dell'indirizzo e-mail")

    page.goto(wait_for_link(live, new_email, CONFIRM_LINK))
    expect(page.get_by_role("heading", name="Indirizzo cambiato")).to_be_visible()
    one_mail_about(live, new_customer.email, "Il tuo indirizzo e-mail è stato cambiato")

    page.get_by_role("button", name=f"Esci ({new_customer.name})").click()
    # Logged out before the login page is asked for (it sends a logged-in customer away).
    expect(page.get_by_role("link", name="Accedi")).to_be_visible()
    log_in(page, new_email, new_customer.password)
    logged_in_as(page, new_customer.name)


def test_close_the_account(page: Page, live, login, new_customer):
    login(page, new_customer)
    page.goto("/")
    add_to_cart(page, "PEC-STD")
    page.goto("/checkout")
    choose_card_method(page)
    confirm_order(page)
    pay_first_card(page)  # a saved card and a service renewing with it

    page.goto("/area-clienti/profilo/")
    with page.expect_download() as download:
        page.get_by_role("link", name="Scarica i miei dati").click()
    assert download.value.suggested_filename.startswith("pecshop-dati-")

    section = page.locator("#profile-close")
    section.get_by_label("Password").fill(new_customer.password)
    section.get_by_role("button", name="Chiudi il mio account").click()
    expect(page.locator("#flash")).to_contain_text("Il tuo account è stato chiuso")
    expect(page.get_by_role("link", name="Accedi")).to_be_visible()
    one_mail_about(live, new_customer.email, "Il tuo account PEC Shop è stato chiuso")

    log_in(page, new_customer.email, new_customer.password)
    expect(page.get_by_role("alert")).to_contain_text("E-mail o password non corretti.")

    page.goto("/registrati")  # the address is free again
    page.get_by_label("Nome e cognome o ragione sociale").fill(new_customer.name)
    page.get_by_label("E-mail").fill(new_customer.email)
    page.get_by_label("Codice fiscale o partita IVA").fill("RSSMRA85T10A562S")
    page.get_by_label("Password", exact=True).fill("password456")
    page.get_by_label("Ripeti la password").fill("password456")
    page.get_by_role("button", name="Registrati").click()
    logged_in_as(page, new_customer.name)
    expect(page.get_by_role("status")).to_contain_text("Il tuo account è stato creato")
