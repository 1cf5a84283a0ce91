"""What the back office's order, customer, product and discount-code pages show: an order's
invoices and credit notes linked, a code's uses by order number, its validity in words, the
product's base price, the customer's billing data, cards and invoices."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.unit.backoffice_world import make_staff, paid_by_card, staff_session
from tests.unit.renewal_fakes import FakeGateway


@pytest.fixture(autouse=True)
def fake_bank(app) -> FakeGateway:
    gateway = FakeGateway()
    app.extensions["gateway"] = gateway
    return gateway


@pytest.fixture
def admin(client, db):
    staff = make_staff()
    staff_session(client, staff)
    return staff


def _documents(db, order_id):
    from webapp.invoicing.models import Invoice

    return list(db.session.scalars(select(Invoice).where(Invoice.order_id == order_id)))


def test_the_order_page_links_its_invoice_and_credit_note(
    client, db, admin, catalogue, dummy_customer, now
):
    order, payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-PRO"], now)
    amount = f"{payment.amount_cents / 100:.2f}".replace(".", ",")
    refund = client.post(
        f"/backoffice/pagamenti/{payment.id}/rimborso", data={"amount": amount, "reason": "Reclamo"}
    )
    assert refund.status_code == 200, refund.text
    invoice, credit_note = _documents(db, order.id)
    page = client.get(f"/backoffice/ordini/{order.id}").text
    for document in (invoice, credit_note):
        name = f"{document.kind.label} {document.number_label}"
        assert f'href="/backoffice/fatture/{document.id}">{name}' in page
    assert client.get(f"/backoffice/fatture/{credit_note.id}").status_code == 200


def test_a_codes_uses_show_order_numbers_and_customers(
    client, db, admin, catalogue, dummy_customer, now
):
    from webapp.shop.order_models import DiscountRedemption

    code = catalogue["codes"]["BENVENUTO10"]
    order, _, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    db.session.add(
        DiscountRedemption(
            discount_code_id=code.id, customer_id=dummy_customer.id, order_id=order.id
        )
    )
    db.session.commit()
    page = client.get(f"/backoffice/sconti/{code.id}").text
    assert f'href="/backoffice/ordini/{order.id}">{order.number}</a>' in page
    assert f">{dummy_customer.name}</a>" in page


def test_a_codes_validity_says_expired_or_from_when(client, db, admin, catalogue):
    from webapp.clock import ROME, now_utc

    expired, future = list(catalogue["codes"].values())[:2]
    today = now_utc()
    expired.valid_from, expired.valid_until = today - timedelta(days=30), today - timedelta(days=1)
    future.valid_from, future.valid_until = today + timedelta(days=90), today + timedelta(days=120)
    db.session.commit()
    page = client.get("/backoffice/sconti").text
    assert "non valido" not in page
    assert f'<a href="/backoffice/sconti/{expired.id}">' in page
    rows = {row.split('">', 1)[0]: row for row in page.split('<a href="/backoffice/sconti/')[1:]}
    assert '<td class="nowrap" data-validity>scaduto</td>' in rows[str(expired.id)]
    starts = (today + timedelta(days=90)).astimezone(ROME)
    assert f"data-validity>dal {starts:%d/%m/%Y}</td>" in rows[str(future.id)]


def test_code_validity_words(catalogue):
    from webapp.backoffice.catalogue import code_validity
    from webapp.clock import now_utc

    code = catalogue["codes"]["BENVENUTO10"]
    now = now_utc()
    code.valid_from, code.valid_until = now - timedelta(days=1), now + timedelta(days=1)
    assert code_validity(code, now) == "valido"
    code.max_uses, code.uses = 3, 3
    assert code_validity(code, now) == "esaurito"
    assert code_validity(code, now + timedelta(days=2)) == "scaduto"
    assert code_validity(code, now - timedelta(days=2)).startswith("dal ")


def test_the_product_page_lists_its_base_price(client, admin, catalogue):
    from webapp.money import format_eur

    product = catalogue["products"]["PEC-PRO"]
    page = client.get(f"/backoffice/catalogo/{product.id}").text
    row = page.split('<tr id="base-price">', 1)[1].split("</tr>", 1)[0]
    assert "Prezzo di base" in row and format_eur(product.yearly_price_cents) in row


def test_the_customer_page_shows_billing_cards_and_invoices(
    client, db, admin, catalogue, dummy_customer, now
):
    order, _, card = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now, "1881")
    (invoice,) = _documents(db, order.id)
    page = client.get(f"/backoffice/clienti/{dummy_customer.id}").text
    billing = page.split('id="customer-billing"', 1)[1].split("</section>", 1)[0]
    assert "RSSMRA85T10A562S" in billing and "Privato" in billing
    cards = page.split('id="customer-cards"', 1)[1].split("</section>", 1)[0]
    assert "•••• 1881" in cards and card.expiry_label in cards
    documents = page.split('id="customer-documents"', 1)[1].split("</section>", 1)[0]
    assert f'href="/backoffice/fatture/{invoice.id}"' in documents


def test_a_customer_without_billing_data_or_cards_reads_so(client, admin, create_customer):
    customer = create_customer("anna@example.it", "Anna Bianchi", billing=False)
    page = client.get(f"/backoffice/clienti/{customer.id}").text
    assert "non ha ancora inserito i dati di fatturazione" in page
    assert "Nessuna carta salvata." in page and "Nessuna fattura emessa." in page
