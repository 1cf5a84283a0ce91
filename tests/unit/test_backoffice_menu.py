"""The back office's header: one menu, each entry named as the page it opens (its <h1>), and the
page being shown (or the list a detail page belongs to) marked with aria-current="page"."""

from __future__ import annotations

import re

import pytest

from tests.unit.backoffice_world import make_staff, paid_by_card, staff_session

H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.S)
NAV = re.compile(r'<nav id="bo-nav".*?</nav>', re.S)
CURRENT = re.compile(r'<a href="([^"]+)" aria-current="page">([^<]+)</a>')


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


def _nav(body: str) -> str:
    match = NAV.search(body)
    assert match, "the back office's page has its menu"
    return match.group(0)


@pytest.fixture
def admin(client, db):
    staff = make_staff()
    staff_session(client, staff)
    return staff


def test_each_menu_entry_is_named_as_its_page_and_marked_there(app, client, admin):
    from flask import url_for

    from webapp.backoffice.menu import MENU

    for entry in MENU:
        with app.test_request_context():
            url = url_for(entry.endpoint)
        body = client.get(url).get_data(as_text=True)
        title = _text(H1.search(body).group(1))
        assert title == str(entry.label), f"{url}: menu {entry.label!r}, page {title!r}"
        assert CURRENT.findall(_nav(body)) == [(url, str(entry.label))]


def test_a_detail_page_marks_the_list_it_belongs_to(
    client, db, admin, catalogue, dummy_customer, now
):
    order, _payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-PRO"], now)
    db.session.commit()
    order_page = client.get(f"/backoffice/ordini/{order.id}").get_data(as_text=True)
    assert [label for _, label in CURRENT.findall(_nav(order_page))] == ["Cerca"]
    product = catalogue["products"]["PEC-PRO"]
    product_page = client.get(f"/backoffice/catalogo/{product.id}").get_data(as_text=True)
    assert [label for _, label in CURRENT.findall(_nav(product_page))] == ["Catalogo"]


def test_operators_see_no_admin_entry(client, db):
    staff_session(client, make_staff("op@pecshop.test", "operatore"))
    nav = _nav(client.get("/backoffice/").get_data(as_text=True))
    assert ">Cruscotto<" in nav and ">Catalogo<" not in nav and ">Staff<" not in nav
