"""Issue 28 in the pages: "Rinnova" in I miei servizi, the renewal page, the cart and the
checkout showing the new expiry, the order page's period, and the back office's service page
(state and timeline) and list of services in their grace window."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.unit.backoffice_world import make_staff, staff_session
from tests.unit.invoicing_helpers import pay
from tests.unit.renewal_fakes import make_service
from webapp.clock import add_years, format_day, now_utc
from webapp.extensions import db
from webapp.renewals.engine import run_renewals
from webapp.shop.models import CartLine
from webapp.shop.order_models import Order


@pytest.fixture
def pec_service(dummy_customer, catalogue):
    expires = (now_utc() + timedelta(days=20)).replace(microsecond=0)
    return make_service(
        dummy_customer, catalogue["products"]["PEC-STD"], expires_at=expires, auto_renew=False
    )


def test_rinnova_puts_a_renewal_line_in_the_cart_and_checkout_shows_the_new_expiry(
    client, auth, fake, dummy_customer, pec_service
):
    auth.login()
    page = client.get("/area-clienti/").get_data(as_text=True)
    s = pec_service
    assert f'id="service-{s.id}-status">In scadenza<' in page  # 20 days left
    assert f'id="service-{s.id}-renew" href="/area-clienti/servizi/{s.id}/rinnova"' in page

    renew = client.get(f"/area-clienti/servizi/{s.id}/rinnova").get_data(as_text=True)
    two_years = format_day(add_years(s.expires_at, 2))
    assert f"2 anni · € 10,00 + IVA · nuova scadenza {two_years}" in renew
    assert "stesso servizio" in renew

    answer = client.post(f"/area-clienti/servizi/{s.id}/rinnova", data={"years": "2"})
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/checkout")
    again = client.post(f"/area-clienti/servizi/{s.id}/rinnova", data={"years": "3"})
    assert again.status_code == 303
    [line] = db.session.scalars(select(CartLine).where(CartLine.service_id == s.id)).all()
    assert (line.years, line.renews_from) == (3, s.expires_at)  # one line, updated

    cart = client.get("/carrello").get_data(as_text=True)
    three_years = format_day(add_years(s.expires_at, 3))
    expected = f"scadenza attuale {format_day(s.expires_at)}, nuova scadenza {three_years}"
    assert expected in cart
    checkout = client.get("/checkout").get_data(as_text=True)
    assert f'id="renewal-expiry-{line.id}"' in checkout and expected in checkout
    assert "€ 15,00" in checkout  # 3 years x € 5,00, the price in force


def test_order_page_shows_the_renewed_period(client, auth, fake, dummy_customer, pec_service):
    from webapp.renewals import manual
    from webapp.shop import cart as shop_cart
    from webapp.shop import checkout as shop_checkout
    from webapp.shop.models import PaymentMethod

    now = now_utc()
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    manual.add_to_cart(cart, pec_service, 1, now)
    shop_cart.set_payment_method(cart, PaymentMethod.CARD)
    order = shop_checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, now)
    db.session.commit()
    auth.login()
    page = client.get(f"/ordini/{order.id}").get_data(as_text=True)
    new = format_day(add_years(pec_service.expires_at, 1))
    old = format_day(pec_service.expires_at)
    assert f"Rinnovo: dalla scadenza del {old} alla nuova scadenza del {new}" in page
    pay(db.session.get(Order, order.id), now)
    db.session.commit()
    receipt = client.get(f"/area-clienti/ordini/{order.id}").get_data(as_text=True)
    assert f"alla nuova scadenza del {new}" in receipt


def test_a_service_of_another_customer_is_not_found(client, auth, fake, create_customer, catalogue):
    other = create_customer(email="altro@example.it")
    service = make_service(
        other, catalogue["products"]["PEC-STD"], expires_at=now_utc() + timedelta(days=9)
    )
    auth.login(email="altro@example.it")
    client.post("/esci")
    create_customer()
    auth.login()
    assert client.get(f"/area-clienti/servizi/{service.id}/rinnova").status_code == 404
    assert client.post(f"/area-clienti/servizi/{service.id}/rinnova").status_code == 404


def test_bad_years_fall_back_to_the_services_frequency(client, auth, fake, pec_service):
    auth.login()
    answer = client.post(f"/area-clienti/servizi/{pec_service.id}/rinnova", data={"years": "x9"})
    assert answer.status_code == 303
    line = db.session.scalar(select(CartLine).where(CartLine.service_id == pec_service.id))
    assert line.years == 1


def test_back_office_service_page_and_grace_list(client, fake, dummy_customer, catalogue):
    expired_at = (now_utc() - timedelta(days=10)).replace(microsecond=0)
    pec = make_service(
        dummy_customer, catalogue["products"]["PEC-STD"], expires_at=expired_at, auto_renew=False
    )
    run_renewals(now_utc())  # expires it: "Scaduto", renewable for 90 days
    staff_session(client, make_staff())
    page = client.get(f"/backoffice/servizi/{pec.id}").get_data(as_text=True)
    assert "<strong>Scaduto</strong>" in page
    assert "rinnovabile fino al" in page
    assert re.search(r'data-kind="state">.*?Scaduto', page)
    assert re.search(r'data-kind="email">.*?Servizio scaduto: PEC Standard', page)
    customer = client.get(f"/backoffice/clienti/{dummy_customer.id}").get_data(as_text=True)
    assert 'data-status="expired">Scaduto<' in customer
    assert f'href="/backoffice/servizi/{pec.id}"' in customer
    grace = client.get("/backoffice/servizi/in-periodo-di-grazia").get_data(as_text=True)
    assert f'id="grace-{pec.id}"' in grace and "Mario Rossi" in grace


def test_the_life_after_expiry_is_edited_in_the_back_office(client, fake, catalogue):
    pec = catalogue["products"]["PEC-STD"]
    assert (pec.renewable_by_hand, pec.renew_before_days, pec.grace_days) == (True, None, 90)
    assert catalogue["products"]["FIRMA-R"].renew_before_days == 90
    assert not catalogue["products"]["MARCHE-50"].renewable_by_hand
    staff_session(client, make_staff())
    form = {"name": pec.name, "active": "1", "life": "1", "grace_days": "45"}
    form |= {"renewable_by_hand": "1", "renew_before_days": "60"}
    answer = client.post(f"/backoffice/catalogo/{pec.id}", data=form)
    assert answer.status_code == 303
    db.session.expire_all()
    assert (pec.renew_before_days, pec.grace_days) == (60, 45)
    page = client.get(f"/backoffice/catalogo/{pec.id}").get_data(as_text=True)
    assert 'name="grace_days" inputmode="numeric" value="45"' in page
    bad = client.post(f"/backoffice/catalogo/{pec.id}", data=form | {"grace_days": "-3"})
    assert bad.status_code == 422
    db.session.expire_all()
    assert pec.grace_days == 45
