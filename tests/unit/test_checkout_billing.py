"""Issue 26: the checkout's billing step asks what the chosen type needs, pre-filled from the
registration; "Conferma" saves billing data filled in but not saved; errors clear when fixed."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests.unit.helpers import HX, add, checkout_token, choose_method, login
from webapp.shop.models import BillingProfile, CustomerType
from webapp.shop.order_models import Order

BILLING = {
    "customer_type": "private",
    "first_name": "Mario",
    "last_name": "Rossi",
    "tax_code": "RSSMRA85T10A562S",
    "address": "Via Garibaldi 10",
    "postal_code": "20121",
    "city": "Milano",
    "province": "MI",
    "country": "IT",
}


@pytest.fixture
def newcomer(create_customer):
    """A customer as registration leaves them: no billing data yet."""
    return create_customer(billing=False)


def ready(client, catalogue) -> None:
    add(client, catalogue["products"]["PEC-STD"])
    login(client)
    choose_method(client, "card")


def value_of(page: str, name: str) -> str | None:
    found = re.search(rf'name="{name}"[^>]*value="([^"]*)"', page) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', page
    )
    return found.group(1) if found else None


def checked_type(page: str) -> str:
    [kind] = re.findall(r'<input checked[^>]*name="customer_type"[^>]*value="(\w+)"', page)
    return kind


def profiles(db, customer) -> int:
    query = select(func.count(BillingProfile.id)).where(BillingProfile.customer_id == customer.id)
    return db.session.scalar(query)


def orders(db) -> int:
    return db.session.scalar(select(func.count(Order.id)))  # the newcomer's: nobody else buys


def test_a_person_finds_name_and_codice_fiscale_already_there(client, db, catalogue, newcomer):
    ready(client, catalogue)
    page = client.get("/checkout").text
    assert checked_type(page) == "private"
    assert value_of(page, "first_name") == "Mario" and value_of(page, "last_name") == "Rossi"
    assert value_of(page, "tax_code") == "RSSMRA85T10A562S"
    # Only the chosen type's fields are shown: the others are marked for their types.
    assert '<fieldset data-for="business public">' in page
    assert '<fieldset data-for="private">' in page


def test_a_partita_iva_registrant_gets_azienda(client, db, catalogue, create_customer):
    customer = create_customer(billing=False, name="Studio Bianchi")
    customer.tax_code = "00743110157"
    db.session.commit()
    ready(client, catalogue)
    page = client.get("/checkout").text
    assert checked_type(page) == CustomerType.BUSINESS.value
    assert value_of(page, "company_name") == "Studio Bianchi"
    assert value_of(page, "vat_number") == "00743110157"


def test_confirm_saves_the_billing_filled_in_and_places_the_order(client, db, catalogue, newcomer):
    ready(client, catalogue)
    data = {"checkout_token": checkout_token(client), "terms": "1", **BILLING}
    response = client.post("/checkout/conferma", data=data, headers=HX)
    assert response.status_code == 200 and response.headers["HX-Redirect"].startswith("/ordini/")
    assert profiles(db, newcomer) == 1 and orders(db) == 1
    [order] = db.session.scalars(select(Order))
    assert order.buyer["city"] == "Milano"  # the order's buyer is the data just saved


def test_confirm_with_wrong_billing_says_which_field_and_places_nothing(
    client, db, catalogue, newcomer
):
    ready(client, catalogue)
    data = {"checkout_token": checkout_token(client), "terms": "1", **BILLING}
    data["postal_code"] = ""
    response = client.post("/checkout/conferma", data=data, headers=HX)
    assert response.status_code == 422
    assert "Inserisci il CAP." in response.text  # under the field, in the billing fragment
    assert 'id="checkout-billing" hx-swap-oob="true"' in response.text
    assert 'value="Via Garibaldi 10"' in response.text  # what was typed stays
    assert profiles(db, newcomer) == 0 and orders(db) == 0


def test_saving_the_billing_clears_the_confirm_error(client, db, catalogue, newcomer):
    ready(client, catalogue)
    refused = client.post(
        "/checkout/conferma",
        data={"checkout_token": checkout_token(client), "terms": "1"},
        headers=HX,
    )
    assert refused.status_code == 422 and "Inserisci i dati di fatturazione" in refused.text
    saved = client.post("/checkout/fatturazione", data=BILLING, headers=HX)
    assert saved.status_code == 200
    assert '<div id="confirm-error" hx-swap-oob="true"></div>' in saved.text


@pytest.mark.parametrize(
    "junk",
    [
        {"customer_type": "nessuno"},
        {"customer_type": "public", "sdi_code": "x" * 5000},
        {"customer_type": "business", "vat_number": "\x00\x01", "country": "??"},
        {"customer_type": "private", "tax_code": "' OR 1=1 --", "postal_code": "2O121"},
    ],
)
def test_no_input_makes_the_confirm_fail_badly(client, db, catalogue, newcomer, junk):
    ready(client, catalogue)
    data = {"checkout_token": checkout_token(client), "terms": "1", **BILLING, **junk}
    response = client.post("/checkout/conferma", data=data, headers=HX)
    assert response.status_code in (400, 422)  # refused (NUL bytes: 400), never a 500
    assert orders(db) == 0 and profiles(db, newcomer) == 0
