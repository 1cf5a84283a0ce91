"""The fragment cache (webapp.htmx.render_cached) never serves what changed: for each cached
fragment (the cart, the card picker, a service's row), a change of what it shows (the price, the
cards, the choice, the session's token, the language) is rendered, and /metrics counts what was
served again (the bench reports the hit rate from it).

Each test first asks for the fragment twice: the first answer gives the session its CSRF token,
the second is the one kept. Then it changes one thing and asks again.
"""

# ruff: noqa: F811 (the fixtures shared with test_fragment_paths)

from __future__ import annotations

import re
from datetime import date

import pytest
from flask import g
from prometheus_client import REGISTRY

from tests.unit.helpers import HX, login
from tests.unit.renewal_fakes import make_card
from tests.unit.test_fragment_paths import frozen, shopper  # noqa: F401
from webapp.extensions import db
from webapp.shop.models import ProductPrice

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _cart(client, _shopper):
    return client.get("/carrello", headers=HX)


def _picker(client, shopper, choice=None):
    form = {"choice": str(choice or shopper["card"]), "attempt": "tentativo-1"}
    url = f"/portale-pagamenti/ordini/{shopper['order']}/scelta"
    return client.post(url, data=form, headers=HX)


def _row(client, shopper, years="2"):
    url = f"/area-clienti/servizi/{shopper['service']}/frequenza"
    return client.post(url, data={"frequency_years": years}, headers=HX)


FRAGMENTS = {
    "shop/_cart.html": _cart,
    "payments/_card_picker.html": _picker,
    "area/_service.html": _row,
}


def counted(fragment: str, result: str) -> float:
    labels = {"fragment": fragment, "result": result}
    return REGISTRY.get_sample_value("pecshop_fragment_cache_total", labels) or 0.0


def kept(client, shopper, fragment: str) -> str:
    """Ask twice; the second answer comes from the cache (counted as a hit)."""
    ask = FRAGMENTS[fragment]
    first = ask(client, shopper)
    assert first.status_code == 200, first.text[:300]
    hits = counted(fragment, "hit")
    again = ask(client, shopper)
    assert again.text == first.text
    assert counted(fragment, "hit") == hits + 1, "the second answer was not served again"
    return again.text


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_a_fragment_asked_again_is_a_hit_and_anything_new_a_miss(client, shopper, fragment):
    misses = counted(fragment, "miss")
    kept(client, shopper, fragment)
    assert counted(fragment, "miss") >= misses + 1
    response = client.get("/metrics")
    assert f'pecshop_fragment_cache_total{{fragment="{fragment}",result="hit"}}' in response.text


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_another_session_of_the_same_customer_gets_its_own_token(app, client, shopper, fragment):
    """The markup holds forms signed for the session: another session never gets them."""
    mine = TOKEN.findall(kept(client, shopper, fragment))
    g.pop("csrf_token", None)  # the test's app context outlives requests: so would g's token
    other = app.test_client()
    login(other)  # the same customer: the same cart, order and service
    theirs = FRAGMENTS[fragment](other, shopper)
    assert theirs.status_code == 200
    tokens = TOKEN.findall(theirs.text)
    assert tokens and not set(tokens) & set(mine)


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_another_language_is_rendered_not_served_again(client, shopper, fragment, monkeypatch):
    import webapp.htmx

    kept(client, shopper, fragment)
    misses = counted(fragment, "miss")
    monkeypatch.setattr(webapp.htmx, "get_locale", lambda: "en")
    assert FRAGMENTS[fragment](client, shopper).status_code == 200
    assert counted(fragment, "miss") == misses + 1


def _new_price(product_id: int, cents: int) -> None:
    db.session.add(
        ProductPrice(
            product_id=product_id, yearly_price_cents=cents, effective_from=date(2020, 1, 1)
        )
    )
    db.session.commit()


def test_the_cart_shows_a_new_price(client, shopper, catalogue):
    before = kept(client, shopper, "shop/_cart.html")
    assert "€ 5,00" in before  # PEC Standard, 5,00 a year
    _new_price(catalogue["products"]["PEC-STD"].id, 700)
    after = _cart(client, shopper).text
    assert "€ 7,00" in after and "€ 5,00" not in after


def test_a_service_row_shows_a_new_price(client, shopper, catalogue):
    before = kept(client, shopper, "area/_service.html")
    assert "€ 12,20" in before  # PEC Standard, 2 years: 10,00 + VAT
    _new_price(catalogue["products"]["PEC-STD"].id, 700)
    after = _row(client, shopper).text
    assert "€ 17,08" in after and "€ 12,20" not in after  # 14,00 + VAT


def test_the_picker_and_the_row_show_a_new_card_and_a_removed_one(client, shopper, dummy_customer):
    for fragment, ask in (("payments/_card_picker.html", _picker), ("area/_service.html", _row)):
        before = kept(client, shopper, fragment)
        assert "5555" not in before
        new = make_card(dummy_customer, last4="5555")
        assert "•••• 5555" in ask(client, shopper).text, fragment
        new.removed_at = new.created_at
        db.session.commit()
        assert "5555" not in ask(client, shopper).text, fragment
        db.session.delete(new)
        db.session.commit()


def test_the_picker_shows_another_choice_and_the_row_another_frequency(
    client, shopper, dummy_customer
):
    kept(client, shopper, "payments/_card_picker.html")
    chosen = _picker(client, shopper, choice="new").text
    assert re.search(r'value="new"\s+checked', chosen)
    kept(client, shopper, "area/_service.html")
    other = _row(client, shopper, years="3").text
    assert '<option value="3" selected>' in other and "ogni 3 anni" in other


def test_a_fragment_varies_on_each_htmx_header_the_cookie_and_the_encoding_once(client, shopper):
    kept(client, shopper, "shop/_cart.html")
    vary = [v.strip() for v in _cart(client, shopper).headers["Vary"].split(",")]
    assert sorted(vary) == ["Accept-Encoding", "Cookie", "HX-Boosted", "HX-Request"]
