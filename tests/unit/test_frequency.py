"""Frequenza di rinnovo: 1-5 years, 1-2 for a promotion, 1 when auto-renewal is not available."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.unit.helpers import (
    HX,
    add,
    checkout_token,
    choose_method,
    confirm,
    customer_cart,
    login,
)
from webapp.errors import CheckoutError, InvalidChoice, NotFound
from webapp.shop import cart as shop_cart
from webapp.shop import checkout
from webapp.shop.models import PaymentMethod
from webapp.shop.order_models import Order


@pytest.mark.parametrize(
    ("sku", "years"),
    [
        ("PEC-STD", [1, 2, 3, 4, 5]),
        ("SPID-PF", [1, 2, 3, 4, 5]),
        ("CONS-1", [1, 2, 3, 4, 5]),
        ("FPA-100", [1, 2, 3, 4, 5]),
        ("PEC-PROMO", [1, 2]),
        ("FIRMA-R", [1]),
        ("MARCHE-50", [1]),
    ],
)
def test_allowed_years(catalogue, sku, years):
    assert catalogue["products"][sku].allowed_years == years


def _cart_with(client, catalogue, sku):
    add(client, catalogue["products"][sku])
    login(client)
    choose_method(client)


def test_choose_years(client, db, catalogue, dummy_customer):
    _cart_with(client, catalogue, "PEC-STD")
    line = customer_cart(dummy_customer.id).lines[0]
    r = client.post(f"/checkout/righe/{line.id}/anni", data={"years": "3"}, headers=HX)
    assert r.status_code == 200
    assert customer_cart(dummy_customer.id).lines[0].years == 3
    assert "€ 15,00" in r.text  # 3 x € 5,00
    assert "Rinnovo automatico attivato: ogni 3 anni sulla carta" in r.text
    assert '<option value="3" selected>' in r.text
    assert 'data-total="total">€ 18,30' in r.text


def test_promo_allows_two_years(client, db, catalogue, dummy_customer):
    _cart_with(client, catalogue, "PEC-PROMO")
    line = customer_cart(dummy_customer.id).lines[0]
    r = client.post(f"/checkout/righe/{line.id}/anni", data={"years": "2"}, headers=HX)
    assert r.status_code == 200
    assert customer_cart(dummy_customer.id).lines[0].years == 2
    assert '<option value="3"' not in r.text  # the promo offers only 1 or 2 years


@pytest.mark.parametrize(
    ("sku", "posted"),
    [
        ("PEC-STD", "0"),
        ("PEC-STD", "6"),
        ("PEC-STD", "-1"),
        ("PEC-STD", "2.5"),
        ("PEC-PROMO", "3"),
        ("PEC-STD", "abc"),
        ("PEC-STD", ""),
        ("FIRMA-R", "2"),
        ("MARCHE-50", "5"),
    ],
)
def test_invalid_years_are_refused(client, db, catalogue, dummy_customer, sku, posted):
    _cart_with(client, catalogue, sku)
    line = customer_cart(dummy_customer.id).lines[0]
    token = checkout_token(client)
    r = client.post(f"/checkout/righe/{line.id}/anni", data={"years": posted}, headers=HX)
    assert r.status_code == 422
    assert "Frequenza di rinnovo non valida per" in r.text
    assert 'id="checkout-items"' in r.text
    cart = customer_cart(dummy_customer.id)
    assert cart.lines[0].years == 1
    assert cart.checkout_token == token


def test_missing_years_field_is_refused(client, db, catalogue, dummy_customer):
    _cart_with(client, catalogue, "PEC-STD")
    line = customer_cart(dummy_customer.id).lines[0]
    r = client.post(f"/checkout/righe/{line.id}/anni", data={}, headers=HX)
    assert r.status_code == 422
    assert customer_cart(dummy_customer.id).lines[0].years == 1


def test_message_names_the_allowed_range(db, catalogue, dummy_customer):
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    line = shop_cart.add_product(cart, catalogue["products"]["PEC-PROMO"].id)
    with pytest.raises(InvalidChoice) as info:
        shop_cart.set_years(cart, line.id, 3)
    assert info.value.message == (
        "Frequenza di rinnovo non valida per PEC Standard in promozione: scegli da 1 a 2 anni."
    )


def test_years_of_a_line_not_in_this_cart(client, db, catalogue, dummy_customer, create_customer):
    other = create_customer(email="luisa@example.it", name="Luisa Bianchi")
    other_cart = shop_cart.get_or_create_cart(other.id, None)
    other_line = shop_cart.add_product(other_cart, catalogue["products"]["PEC-STD"].id)
    db.session.commit()
    _cart_with(client, catalogue, "PEC-STD")
    r = client.post(f"/checkout/righe/{other_line.id}/anni", data={"years": "4"}, headers=HX)
    assert r.status_code == 422
    db.session.expire_all()
    assert other_line.years == 1
    with pytest.raises(NotFound):
        shop_cart.set_years(customer_cart(dummy_customer.id), other_line.id, 4)


def test_the_order_buys_the_chosen_years(client, db, catalogue, dummy_customer):
    _cart_with(client, catalogue, "SPID-PF")
    line = customer_cart(dummy_customer.id).lines[0]
    client.post(f"/checkout/righe/{line.id}/anni", data={"years": "4"}, headers=HX)
    assert confirm(client, checkout_token(client)).status_code == 303
    order = db.session.scalars(select(Order)).one()
    assert order.lines[0].years == 4
    assert order.lines[0].list_cents == 4 * 990
    assert order.lines[0].auto_renew is True


def test_confirm_refuses_years_no_longer_allowed(db, catalogue, dummy_customer, now):
    product = catalogue["products"]["PEC-STD"]
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    line = shop_cart.add_product(cart, product.id)
    shop_cart.set_years(cart, line.id, 5)
    shop_cart.set_payment_method(cart, PaymentMethod.CARD)
    product.promotional = True  # became a promotion meanwhile: 1-2 years only
    db.session.flush()
    with pytest.raises(CheckoutError, match="Frequenza di rinnovo non valida"):
        checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, now)
