"""Issue 26: what a person reads: receipts without bank codes, a duration where nothing renews,
e-mails laid out for phones, the checkout's card named for what it is."""

from __future__ import annotations

from pathlib import Path

from tests.unit.backoffice_world import paid_by_card
from tests.unit.helpers import add, choose_method, login

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "email"


def test_a_receipt_shows_no_raw_bank_reference(client, db, catalogue, dummy_customer, now):
    order, payment, _card = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    login(client)
    page = client.get(f"/area-clienti/ordini/{order.id}").text
    assert 'id="receipt"' in page
    assert payment.gateway_ref and payment.gateway_ref not in page
    assert "riferimento" not in page
    assert "Pagamento con carta Visa •••• 4242." in page  # the card, named


def test_the_checkout_says_durata_where_nothing_renews(client, db, catalogue, dummy_customer):
    for sku in ("PEC-STD", "FIRMA-R", "MARCHE-50"):
        add(client, catalogue["products"][sku])
    login(client)
    choose_method(client, "card")
    page = client.get("/checkout").text
    rows = {sku: page[page.index(f"checkout-line-{line}") :] for sku, line in _lines(page)}
    assert 'data-label="Frequenza di rinnovo"' in rows["PEC Standard"].split("</tr>")[0]
    assert 'data-label="Durata"' in rows["Firma Digitale Remota"].split("</tr>")[0]
    marche = rows["Marche temporali (50)"].split("</tr>")[0]
    assert "1 confezione" in marche and "1 anno" not in marche
    assert "ogni anno sulla carta con cui paghi l'ordine" in page


def _lines(page: str) -> list[tuple[str, str]]:
    """(product name, line id) of the checkout's rows."""
    found = []
    for chunk in page.split('id="checkout-line-')[1:]:
        line = chunk.split('"', 1)[0]
        name = chunk.split("<td>", 1)[1].strip().split("<", 1)[0].strip()
        found.append((name, line))
    return found


def test_every_html_email_has_the_phone_viewport():
    layout = (TEMPLATES / "_layout.html").read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in layout
    for template in TEMPLATES.glob("*.html"):
        if template.name != "_layout.html":
            assert '{% extends "email/_layout.html" %}' in template.read_text(), template.name


def test_how_often_is_said_with_ngettext(app):
    from webapp.i18n import every_years_label

    with app.test_request_context():
        assert every_years_label(1) == "ogni anno"  # not "ogni 1 anno"
        assert every_years_label(3) == "ogni 3 anni"
