"""Front-end plumbing: boosted navigation, hashed static files, compression, legal pages."""

from __future__ import annotations

import gzip
import re

import pytest

from tests.unit.helpers import HX, add, checkout_token, choose_method, confirm, login, orders_of

BOOSTED = {"HX-Request": "true", "HX-Boosted": "true"}


@pytest.fixture(autouse=True)
def _views(app, monkeypatch, now):
    from tests.unit.helpers import freeze_views

    freeze_views(monkeypatch, now)


# --- boosted navigation: the whole page, and redirects the XHR can follow --------------------


def test_boosted_request_gets_the_whole_page(client, catalogue):
    add(client, catalogue["products"]["PEC-STD"])
    fragment = client.get("/carrello", headers=HX)
    assert "<html" not in fragment.text
    page = client.get("/carrello", headers=BOOSTED)
    assert page.text.lstrip().startswith("<!doctype html>")
    assert "<title>Carrello · PEC Shop</title>" in page.text
    assert "HX-Boosted" in page.headers["Vary"]


def test_boosted_form_post_is_redirected_with_a_303(client, catalogue):
    product = catalogue["products"]["PEC-STD"]
    r = client.post(f"/carrello/aggiungi/{product.id}", headers=BOOSTED)
    assert r.status_code == 303
    assert r.headers["Location"] == "/carrello"
    assert "HX-Redirect" not in r.headers


def test_boosted_post_to_the_bank_gets_hx_redirect(app):
    from webapp.htmx import redirect_to

    with app.test_request_context("/area-clienti/carte/aggiungi", headers=BOOSTED):
        external = redirect_to("http://bank.example/pay/pay_1")
        local = redirect_to("/area-clienti/carte")
    assert external.status_code == 200
    assert external.headers["HX-Redirect"] == "http://bank.example/pay/pay_1"
    assert local.status_code == 303


def test_boosted_error_page_is_a_whole_page(client):
    r = client.get("/ordini/999", headers=BOOSTED)
    assert r.status_code in (302, 303, 404)
    if r.status_code == 404:
        assert "<html" in r.text


def test_body_is_boosted_with_skip_link_first(client, catalogue):
    page = client.get("/").text
    assert re.search(r'<body hx-boost="true"', page)
    body = page.split("<body", 1)[1]
    first_link = re.search(r"<(a|button|input|select)\b[^>]*>", body).group(0)
    assert 'class="skip-link"' in first_link and 'href="#main"' in first_link
    assert "Vai al contenuto" in body
    assert 'id="announcer"' in body and 'aria-live="polite"' in body
    assert "<script>" not in page  # no inline script: CSP script-src 'self'


# --- static files: hashed URLs, cached for a year, compressed ---------------------------------


def test_static_urls_carry_a_content_hash_and_are_immutable(client, catalogue):
    page = client.get("/").text
    css = re.search(r'href="(/static/app\.css\?v=[0-9a-f]{12})"', page).group(1)
    js = re.search(r'src="(/static/app\.js\?v=[0-9a-f]{12})"', page).group(1)
    assert re.search(r'src="/static/vendor/htmx-2\.0\.11\.min\.js\?v=[0-9a-f]{12}"', page)
    for url in (css, js):
        r = client.get(url)
        assert r.status_code == 200
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        r.close()
    stale = client.get("/static/app.css?v=000000000000")
    assert "immutable" not in stale.headers.get("Cache-Control", "")
    stale.close()


@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_pages_and_static_are_compressed(client, catalogue, encoding):
    page = client.get("/", headers={"Accept-Encoding": encoding})
    assert page.headers["Content-Encoding"] == encoding
    asset = client.get("/static/vendor/htmx-2.0.11.min.js", headers={"Accept-Encoding": encoding})
    assert asset.headers.get("Content-Encoding") == encoding
    assert len(asset.data) < 25_000  # 52 KB of htmx, compressed
    if encoding == "gzip":
        assert b"<!doctype html>" in gzip.decompress(page.data)
    asset.close()


def test_favicon(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 301
    assert re.fullmatch(r"/static/favicon\.svg\?v=[0-9a-f]{12}", r.headers["Location"])
    icon = client.get(r.headers["Location"])
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    icon.close()


# --- legal footer and pages ------------------------------------------------------------------


@pytest.mark.parametrize("path,heading", [("/privacy", "privacy"), ("/cookie", "cookie")])
def test_legal_pages(client, app, path, heading):
    r = client.get(path)
    assert r.status_code == 200
    assert f"Informativa sulla {heading}" in r.text or f"Informativa sui {heading}" in r.text
    footer = r.text.split('<footer class="site-footer">', 1)[1]
    for key in ("SELLER_NAME", "SELLER_VAT_NUMBER", "SELLER_ADDRESS", "SELLER_REA"):
        assert app.config[key] in footer
    assert 'href="/privacy"' in footer and 'href="/cookie"' in footer


# --- prices in the frequency selector, portal note, receipt ------------------------------------


def test_frequency_options_show_their_price(client, catalogue, dummy_customer):
    products = catalogue["products"]
    add(client, products["PEC-STD"])
    login(client)
    choose_method(client, "card")
    page = client.get("/checkout").text
    yearly = products["PEC-STD"].yearly_price_cents
    from webapp.money import format_eur

    assert f"3 anni · {format_eur(3 * yearly)} + IVA" in page
    assert f"1 anno · {format_eur(yearly)} + IVA" in page


def test_frequency_options_quote_the_price_in_force(client, db, catalogue, dummy_customer, now):
    """A scheduled price in force is what the checkout's and the customer area's frequency
    menus quote (and what the cart and the renewal charge), not the product's base price."""
    from datetime import date, timedelta

    from tests.unit.renewal_fakes import make_card, make_service
    from webapp.shop.models import ProductPrice

    pec = catalogue["products"]["PEC-STD"]  # 5,00 a year before the change
    db.session.add(
        ProductPrice(product_id=pec.id, yearly_price_cents=700, effective_from=date(2020, 1, 1))
    )
    make_service(
        dummy_customer, pec, expires_at=now + timedelta(days=200), card=make_card(dummy_customer)
    )
    add(client, pec)
    login(client)
    choose_method(client, "card")
    for page in (client.get("/checkout").text, client.get("/area-clienti/").text):
        assert "1 anno · € 7,00 + IVA" in page and "3 anni · € 21,00 + IVA" in page
        assert "€ 5,00 + IVA" not in page and "€ 15,00 + IVA" not in page


def test_portal_note_only_for_orders_with_signatures(client, catalogue, dummy_customer):
    add(client, catalogue["products"]["FIRMA-R"])
    add(client, catalogue["products"]["PEC-STD"])
    login(client)
    choose_method(client, "card")
    confirm(client, checkout_token(client))
    [order] = orders_of(dummy_customer.id)
    page = client.get(f"/portale-pagamenti/ordini/{order.id}").text
    assert "Il rinnovo automatico non è disponibile per Firma Digitale." in page


def test_receipt_reads_subtotal_discount_taxable_vat_total(client, db, catalogue, dummy_customer):
    from webapp.clock import now_utc
    from webapp.shop.order_models import OrderStatus

    add(client, catalogue["products"]["PEC-STD"])
    login(client)
    choose_method(client, "card")
    client.post("/checkout/sconto", data={"code": "BENVENUTO10"}, headers=HX)
    confirm(client, checkout_token(client))
    [order] = orders_of(dummy_customer.id)
    assert order.discount_cents > 0
    order.status = OrderStatus.PAID
    order.paid_at = now_utc()
    db.session.commit()
    page = client.get(f"/area-clienti/ordini/{order.id}").text
    totals = page.split('<dl class="totals">', 1)[1].split("</dl>", 1)[0]
    labels = re.findall(r"<dt[^>]*>([^<(]+)", totals)
    assert [label.strip() for label in labels] == [
        "Subtotale",
        "Sconto",
        "Imponibile",
        "IVA 22%",
        "Totale pagato",
    ]
