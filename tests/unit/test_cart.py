"""The cart: add and remove (page and htmx), totals, the anonymous cart across login."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests.unit.helpers import HX, add, customer_cart, login
from webapp.shop import cart as shop_cart
from webapp.shop.models import Cart, CartLine


def badge(text: str) -> list[str]:
    """Every cart badge in the markup, as its opening tag plus count."""
    return re.findall(r'<span id="cart-badge"[^>]*>\d+</span>', text)


def test_add_without_htmx_redirects_to_the_cart(client, catalogue):
    pec = catalogue["products"]["PEC-STD"]
    r = client.post(f"/carrello/aggiungi/{pec.id}")
    assert r.status_code == 303
    assert r.headers["Location"] == "/carrello"
    page = client.get("/carrello")
    assert "PEC Standard aggiunto al carrello." in page.text
    assert "<html" in page.text
    assert badge(page.text) == [
        '<span id="cart-badge" class="badge" aria-label="Prodotti nel carrello">1</span>'
    ]


def test_add_with_htmx_returns_the_fragment_and_the_badge(client, catalogue):
    pec = catalogue["products"]["PEC-STD"]
    r = client.post(f"/carrello/aggiungi/{pec.id}", headers=HX)
    assert r.status_code == 200
    assert "<html" not in r.text
    assert f'<div id="add-{pec.id}"' in r.text
    assert "Aggiunto al carrello" in r.text
    [oob] = badge(r.text)
    assert 'hx-swap-oob="true"' in oob and oob.endswith(">1</span>")
    r = client.post(f"/carrello/aggiungi/{pec.id}", headers=HX)
    assert badge(r.text)[0].endswith(">2</span>")


def test_each_add_is_its_own_line(client, db, catalogue):
    pec = catalogue["products"]["PEC-STD"]
    add(client, pec)
    add(client, pec)
    assert db.session.scalar(select(func.count(CartLine.id))) == 2


def test_add_unknown_or_inactive_product_is_404(client, db, catalogue):
    assert client.post("/carrello/aggiungi/9999").status_code == 404
    spid = catalogue["products"]["SPID-PF"]
    spid.active = False
    db.session.commit()
    assert client.post(f"/carrello/aggiungi/{spid.id}").status_code == 404
    assert db.session.scalar(select(func.count(CartLine.id))) == 0


def test_cart_totals(client, catalogue):
    products = catalogue["products"]
    add(client, products["PEC-STD"])
    add(client, products["SPID-PF"])
    page = client.get("/carrello")
    assert page.status_code == 200
    # 5,00 + 9,90 = 14,90 net; IVA 22% 3,278 → 3,28; total 18,18
    assert 'data-total="subtotal">€ 14,90' in page.text
    assert 'data-total="vat">€ 3,28' in page.text
    assert 'data-total="total">€ 18,18' in page.text
    assert 'data-total="discount"' not in page.text
    assert "IVA 22%" in page.text


def test_empty_cart(client):
    page = client.get("/carrello")
    assert page.status_code == 200
    assert "Il carrello è vuoto." in page.text
    assert badge(page.text)[0].endswith(">0</span>")


def _cart_line_ids(text: str) -> list[int]:
    return [int(x) for x in re.findall(r'id="cart-line-(\d+)"', text)]


def test_remove_with_htmx(client, catalogue):
    products = catalogue["products"]
    add(client, products["PEC-STD"])
    add(client, products["FIRMA-R"])
    first, second = _cart_line_ids(client.get("/carrello").text)
    r = client.post(f"/carrello/righe/{first}/rimuovi", headers=HX)
    assert r.status_code == 200
    assert "<html" not in r.text
    assert r.text.startswith('<section id="cart">')
    assert _cart_line_ids(r.text) == [second]
    [oob] = badge(r.text)
    assert 'hx-swap-oob="true"' in oob and oob.endswith(">1</span>")
    assert 'data-total="subtotal">€ 39,90' in r.text
    assert "HX-Request" in r.headers["Vary"]


def test_remove_without_htmx_shows_the_page_with_one_badge(client, catalogue):
    add(client, catalogue["products"]["PEC-STD"])
    [line_id] = _cart_line_ids(client.get("/carrello").text)
    r = client.post(f"/carrello/righe/{line_id}/rimuovi")
    assert r.status_code == 200
    assert "<html" in r.text
    assert "Il carrello è vuoto." in r.text
    assert badge(r.text) == [
        '<span id="cart-badge" class="badge" aria-label="Prodotti nel carrello">0</span>'
    ]


def test_remove_of_a_missing_line_is_harmless(client, catalogue):
    add(client, catalogue["products"]["PEC-STD"])
    [line_id] = _cart_line_ids(client.get("/carrello").text)
    assert client.post(f"/carrello/righe/{line_id}/rimuovi", headers=HX).status_code == 200
    r = client.post(f"/carrello/righe/{line_id}/rimuovi", headers=HX)  # double click
    assert r.status_code == 200
    assert "Il carrello è vuoto." in r.text
    r = client.post("/carrello/righe/424242/rimuovi", headers=HX)
    assert r.status_code == 200


def test_remove_without_any_cart(client, catalogue):
    r = client.post("/carrello/righe/1/rimuovi", headers=HX)
    assert r.status_code == 200
    assert "Il carrello è vuoto." in r.text


def test_cannot_remove_another_visitors_line(app, client, db, catalogue):
    add(client, catalogue["products"]["PEC-STD"])
    [line_id] = _cart_line_ids(client.get("/carrello").text)
    stranger = app.test_client()
    add(stranger, catalogue["products"]["FIRMA-R"])
    r = stranger.post(f"/carrello/righe/{line_id}/rimuovi", headers=HX)
    assert r.status_code == 200
    db.session.expire_all()
    assert db.session.get(CartLine, line_id) is not None
    assert _cart_line_ids(client.get("/carrello").text) == [line_id]


def test_anonymous_cart_survives_login(client, db, catalogue, dummy_customer):
    add(client, catalogue["products"]["PEC-STD"])
    add(client, catalogue["products"]["FIRMA-R"])
    login(client)
    cart = customer_cart(dummy_customer.id)
    assert [line.product.sku for line in cart.lines] == ["PEC-STD", "FIRMA-R"]
    assert cart.anon_token is None
    assert db.session.scalar(select(func.count(Cart.id))) == 1  # the visitor's cart is gone
    page = client.get("/carrello")
    assert "PEC Standard" in page.text and "Firma Digitale Remota" in page.text


def test_anonymous_cart_merges_into_the_customers_cart(client, db, catalogue, dummy_customer):
    products = catalogue["products"]
    login(client)
    add(client, products["SPID-PF"])
    client.post("/esci")
    add(client, products["PEC-STD"])
    # Logged out: only the visitor's cart.
    assert len(_cart_line_ids(client.get("/carrello").text)) == 1
    login(client)
    cart = customer_cart(dummy_customer.id)
    assert sorted(line.product.sku for line in cart.lines) == ["PEC-STD", "SPID-PF"]
    assert db.session.scalar(select(func.count(Cart.id))) == 1


def test_login_without_a_visitor_cart_keeps_the_customers_cart(
    client, db, catalogue, dummy_customer
):
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    shop_cart.add_product(cart, catalogue["products"]["CONS-1"].id)
    db.session.commit()
    login(client)
    assert [line.product.sku for line in customer_cart(dummy_customer.id).lines] == ["CONS-1"]


def test_claim_changes_the_checkout_token(db, catalogue, dummy_customer):
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    token = cart.checkout_token
    anon = shop_cart.get_or_create_cart(None, None)
    shop_cart.add_product(anon, catalogue["products"]["PEC-STD"].id)
    shop_cart.claim_anonymous_cart(anon.anon_token, dummy_customer.id)
    assert cart.checkout_token != token
    assert len(cart.lines) == 1


def test_claim_moves_the_visitors_lines_with_their_years_up_to_the_cap(
    db, catalogue, dummy_customer
):
    products = catalogue["products"]
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    shop_cart.add_product(cart, products["PEC-STD"].id)
    anon = shop_cart.get_or_create_cart(None, None)
    spid = shop_cart.add_product(anon, products["SPID-PF"].id)
    shop_cart.set_years(anon, spid.id, 3)
    shop_cart.add_product(anon, products["CONS-1"].id)  # beyond the cap of 2: dropped
    db.session.commit()
    shop_cart.claim_anonymous_cart(anon.anon_token, dummy_customer.id, max_lines=2)
    db.session.commit()
    lines = customer_cart(dummy_customer.id).lines
    assert [(line.product.sku, line.years) for line in lines] == [("PEC-STD", 1), ("SPID-PF", 3)]
    assert db.session.scalar(select(func.count(Cart.id))) == 1


def test_a_full_cart_refuses_one_more_line(db, catalogue, dummy_customer):
    products = catalogue["products"]
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    first = shop_cart.add_product(cart, products["PEC-STD"].id, max_lines=2)
    assert first.years == 1  # the shortest duration
    shop_cart.add_product(cart, products["SPID-PF"].id, max_lines=2)
    with pytest.raises(shop_cart.CartFull):
        shop_cart.add_product(cart, products["CONS-1"].id, max_lines=2)
    db.session.commit()
    lines = customer_cart(dummy_customer.id).lines
    assert [(line.product.sku, line.years) for line in lines] == [("PEC-STD", 1), ("SPID-PF", 1)]


def test_badge_counts_the_customers_cart(client, catalogue, dummy_customer):
    login(client)
    add(client, catalogue["products"]["PEC-STD"])
    add(client, catalogue["products"]["PEC-PRO"])
    assert badge(client.get("/").text)[0].endswith(">2</span>")


# --- the catalogue --------------------------------------------------------------------------


def _product_card(page: str, sku: str) -> str:
    return re.search(
        rf'<article class="product" id="product-{sku.lower()}">.*?</article>', page, flags=re.S
    ).group(0)


def test_catalogue_shows_all_six_services_and_the_promo(client, catalogue):
    page = client.get("/").text
    labels = re.findall(r'<p class="kind">([^<]+?)(?: <span|</p>)', page)
    assert labels == [
        "PEC",
        "PEC",
        "PEC",
        "SPID",
        "Conservazione",
        "Fatturazione PA",
        "Firma Digitale",
        "Marca Temporale",
    ]
    for sku, product in catalogue["products"].items():
        card = _product_card(page, sku)
        assert product.name in card
        assert f'action="/carrello/aggiungi/{product.id}"' in card
    promo = _product_card(page, "PEC-PROMO")
    assert '<span class="promo">In promozione</span>' in promo
    assert "€ 2,50 <small>/ anno + IVA</small>" in promo
    assert "Rinnovo automatico disponibile" in _product_card(page, "SPID-PF")
    for sku in ("FIRMA-R", "MARCHE-50"):
        assert "Il rinnovo automatico non è disponibile" in _product_card(page, sku)


def test_catalogue_hides_inactive_products(client, db, catalogue):
    catalogue["products"]["CONS-1"].active = False
    db.session.commit()
    page = client.get("/").text
    assert 'id="product-cons-1"' not in page
    assert 'id="product-pec-std"' in page
