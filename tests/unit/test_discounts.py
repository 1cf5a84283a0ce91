"""Codici sconto: refusals with their reasons, case and spaces, limits, order-only effect."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from tests.unit.helpers import (
    HX,
    add,
    checkout_token,
    confirm,
    freeze_views,
    login,
)
from webapp.errors import CheckoutError, DiscountRefused
from webapp.shop import cart as shop_cart
from webapp.shop import checkout, discounts, orders
from webapp.shop.models import DiscountCode, DiscountKind, PaymentMethod
from webapp.shop.order_models import DiscountRedemption, Order


@pytest.fixture(autouse=True)
def _views(app, monkeypatch, now):
    freeze_views(monkeypatch, now)


def make_cart(db, customer, *products, method=PaymentMethod.CARD):
    cart = shop_cart.get_or_create_cart(customer.id, None)
    for product in products:
        shop_cart.add_product(cart, product.id)
    cart.payment_method = method
    db.session.commit()
    return cart


def place_order(db, cart, customer, now):
    order = checkout.confirm_order(cart, customer.id, cart.checkout_token, True, now)
    db.session.commit()
    return order


def new_code(db, now, **fields):
    values = dict(
        code="TEST",
        kind=DiscountKind.PERCENT,
        percent=10,
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=1),
    )
    values.update(fields)
    code = DiscountCode(**values)
    db.session.add(code)
    db.session.commit()
    return code


def refusal(cart, raw, customer, now) -> str:
    with pytest.raises(DiscountRefused) as info:
        discounts.apply_discount(cart, raw, customer.id, now)
    return info.value.message


def test_unknown_code(db, catalogue, dummy_customer, now):
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    assert (
        refusal(cart, "NONESISTE", dummy_customer, now)
        == "Il codice sconto «NONESISTE» non esiste."
    )


def test_empty_code(db, catalogue, dummy_customer, now):
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    assert refusal(cart, "   ", dummy_customer, now) == "Inserisci un codice sconto."
    assert refusal(cart, None, dummy_customer, now) == "Inserisci un codice sconto."  # no field


def test_expired_code(db, catalogue, dummy_customer, now):
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    message = refusal(cart, "ESTATE2025", dummy_customer, now)
    assert message.startswith("Il codice sconto ESTATE2025 è scaduto il ")
    assert "27/05/2026" in message  # FIXED_NOW minus half a year, an Italian date


def test_expired_exactly_at_valid_until(db, catalogue, dummy_customer, now):
    new_code(db, now, valid_until=now)
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    assert "è scaduto" in refusal(cart, "TEST", dummy_customer, now)


def test_code_not_yet_valid(db, catalogue, dummy_customer, now):
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    message = refusal(cart, "NATALE", dummy_customer, now)
    assert message.startswith("Il codice sconto NATALE sarà valido dal ")


def test_code_valid_from_its_first_instant(db, catalogue, dummy_customer, now):
    new_code(db, now, valid_from=now)
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    assert discounts.apply_discount(cart, "TEST", dummy_customer.id, now).code == "TEST"


def test_code_not_applicable_to_these_products(db, catalogue, dummy_customer, now):
    cart = make_cart(db, dummy_customer, catalogue["products"]["FIRMA-R"])
    assert refusal(cart, "PEC5", dummy_customer, now) == (
        "Il codice sconto PEC5 non si applica ai prodotti nel carrello."
    )


def test_code_on_an_empty_cart_is_refused(db, catalogue, dummy_customer, now):
    cart = make_cart(db, dummy_customer)
    assert "non si applica" in refusal(cart, "BENVENUTO10", dummy_customer, now)


def test_usage_limit_reached(db, catalogue, dummy_customer, now):
    new_code(db, now, max_uses=3, uses=3)
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    assert refusal(cart, "TEST", dummy_customer, now) == (
        "Il codice sconto TEST ha raggiunto il numero massimo di utilizzi."
    )


def test_already_used_by_this_customer(db, catalogue, dummy_customer, create_customer, now):
    pec = catalogue["products"]["PEC-STD"]
    cart = make_cart(db, dummy_customer, pec)
    discounts.apply_discount(cart, "BENVENUTO10", dummy_customer.id, now)
    order = place_order(db, cart, dummy_customer, now)
    assert order.discount_code == "BENVENUTO10"

    shop_cart.add_product(cart, pec.id)
    db.session.commit()
    assert refusal(cart, "BENVENUTO10", dummy_customer, now) == (
        "Hai già utilizzato il codice sconto BENVENUTO10."
    )
    # Another customer may still use it.
    other = create_customer(email="luisa@example.it", name="Luisa Bianchi")
    other_cart = make_cart(db, other, pec)
    assert discounts.apply_discount(other_cart, "BENVENUTO10", other.id, now).code == "BENVENUTO10"


def test_a_cancelled_order_does_not_count_as_a_use(db, catalogue, dummy_customer, now):
    pec = catalogue["products"]["PEC-STD"]
    cart = make_cart(db, dummy_customer, pec)
    discounts.apply_discount(cart, "BENVENUTO10", dummy_customer.id, now)
    order = place_order(db, cart, dummy_customer, now)
    orders.cancel_order(order, now)
    shop_cart.add_product(cart, pec.id)
    db.session.commit()
    assert (
        discounts.apply_discount(cart, "BENVENUTO10", dummy_customer.id, now).code == "BENVENUTO10"
    )
    # ...and the slot it held is free again: the new order may use the code.
    again = place_order(db, cart, dummy_customer, now)
    assert again.discount_code == "BENVENUTO10"


def test_a_twin_confirm_cannot_redeem_a_once_per_customer_code_twice(
    db, catalogue, dummy_customer, now
):
    """Two orders confirmed at once both passed the check: the unique slot lets one in."""
    from sqlalchemy.exc import IntegrityError

    pec = catalogue["products"]["PEC-STD"]
    code = catalogue["codes"]["BENVENUTO10"]
    first_cart = make_cart(db, dummy_customer, pec)
    discounts.apply_discount(first_cart, "BENVENUTO10", dummy_customer.id, now)
    first = place_order(db, first_cart, dummy_customer, now)
    # The twin read no redemption (as if before the first committed) and takes the same slot.
    twin = Order(
        customer_id=dummy_customer.id,
        payment_method=PaymentMethod.CARD,
        subtotal_cents=1,
        net_cents=1,
        vat_cents=0,
        total_cents=1,
        created_at=now,
    )
    db.session.add(twin)
    db.session.flush()
    db.session.add(
        DiscountRedemption(
            discount_code_id=code.id, customer_id=dummy_customer.id, order_id=twin.id, slot=1
        )
    )
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    # On the rerun the slot is taken: the code is refused with its reason.
    cart = make_cart(db, dummy_customer, pec)
    cart.discount_code = code
    with pytest.raises(DiscountRefused, match="già utilizzato"):
        checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, now)
    assert first.discount_code == "BENVENUTO10"


@pytest.mark.parametrize("raw", ["benvenuto10", "  BenVenuto10  ", "\tBENVENUTO10\n"])
def test_code_is_case_insensitive_and_trimmed(db, catalogue, dummy_customer, now, raw):
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    code = discounts.apply_discount(cart, raw, dummy_customer.id, now)
    assert code.code == "BENVENUTO10"
    assert cart.discount_code is code


def test_code_stored_in_lower_case_is_found(db, catalogue, dummy_customer, now):
    new_code(db, now, code="Primavera")
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    assert discounts.apply_discount(cart, "PRIMAVERA", dummy_customer.id, now).code == "Primavera"


def test_a_refused_code_changes_nothing(db, catalogue, dummy_customer, now):
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    discounts.apply_discount(cart, "BENVENUTO10", dummy_customer.id, now)
    db.session.commit()
    token = cart.checkout_token
    for raw in ("NONESISTE", "ESTATE2025", "NATALE", "PEC5X", ""):
        refusal(cart, raw, dummy_customer, now)
    assert cart.discount_code.code == "BENVENUTO10"
    assert cart.checkout_token == token


def test_applying_a_code_invalidates_the_confirm_form(db, catalogue, dummy_customer, now):
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    token = cart.checkout_token
    discounts.apply_discount(cart, "BENVENUTO10", dummy_customer.id, now)
    assert cart.checkout_token != token


def test_discount_applies_to_the_order_only(db, catalogue, dummy_customer, now):
    products = catalogue["products"]
    cart = make_cart(db, dummy_customer, products["PEC-STD"], products["FIRMA-R"])
    discounts.apply_discount(cart, "PEC5", dummy_customer.id, now)
    order = place_order(db, cart, dummy_customer, now)

    pec_line, firma_line = order.lines
    assert (pec_line.list_cents, pec_line.discount_cents, pec_line.net_cents) == (500, 500, 0)
    assert (firma_line.list_cents, firma_line.discount_cents, firma_line.net_cents) == (
        3990,
        0,
        3990,
    )
    assert pec_line.yearly_price_cents == 500  # the list price stays on the line, for renewals
    assert (order.subtotal_cents, order.discount_cents, order.net_cents) == (4490, 500, 3990)
    assert order.vat_cents == 878  # 877,8
    assert order.total_cents == 4868
    db.session.expire_all()
    assert products["PEC-STD"].yearly_price_cents == 500
    assert cart.discount_code is None  # the next order starts without it
    redemptions = db.session.scalars(select(DiscountRedemption)).all()
    assert [(r.order_id, r.customer_id) for r in redemptions] == [(order.id, dummy_customer.id)]
    assert catalogue["codes"]["PEC5"].uses == 1


def test_a_percent_code_of_some_products_discounts_only_their_lines(
    db, catalogue, dummy_customer, now
):
    products = catalogue["products"]
    new_code(db, now, code="PEC10", products=[products["PEC-STD"]])  # 10%
    cart = make_cart(db, dummy_customer, products["PEC-STD"], products["FIRMA-R"])
    discounts.apply_discount(cart, "PEC10", dummy_customer.id, now)
    pec_line, firma_line = checkout.price_cart(cart).quote.lines
    assert (pec_line.discount_cents, firma_line.discount_cents) == (50, 0)


def test_removing_the_last_eligible_line_drops_the_code(db, catalogue, dummy_customer, now):
    products = catalogue["products"]
    cart = make_cart(db, dummy_customer, products["PEC-STD"], products["FIRMA-R"])
    discounts.apply_discount(cart, "PEC5", dummy_customer.id, now)
    shop_cart.remove_line(cart, cart.lines[0].id)
    assert cart.discount_code is None


def test_removing_another_line_keeps_the_code(db, catalogue, dummy_customer, now):
    products = catalogue["products"]
    cart = make_cart(db, dummy_customer, products["PEC-STD"], products["FIRMA-R"])
    code = discounts.apply_discount(cart, "PEC5", dummy_customer.id, now)
    shop_cart.remove_line(cart, cart.lines[1].id)
    db.session.commit()
    assert cart.discount_code_id == code.id
    assert checkout.price_cart(cart).quote.discount_cents == 500


def test_remove_discount(db, catalogue, dummy_customer, now):
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    discounts.apply_discount(cart, "BENVENUTO10", dummy_customer.id, now)
    token = cart.checkout_token
    discounts.remove_discount(cart)
    db.session.commit()
    assert cart.discount_code_id is None
    assert cart.checkout_token != token
    assert checkout.price_cart(cart).quote.discount_cents == 0


def test_uses_counter_never_exceeds_max_uses(db, catalogue, dummy_customer, create_customer, now):
    code = new_code(db, now, max_uses=1)
    pec = catalogue["products"]["PEC-STD"]
    other = create_customer(email="luisa@example.it", name="Luisa Bianchi")
    first = make_cart(db, dummy_customer, pec)
    second = make_cart(db, other, pec)
    discounts.apply_discount(first, "TEST", dummy_customer.id, now)
    discounts.apply_discount(second, "TEST", other.id, now)
    db.session.commit()

    place_order(db, first, dummy_customer, now)
    assert code.uses == 1
    with pytest.raises(DiscountRefused, match="numero massimo di utilizzi"):
        checkout.confirm_order(second, other.id, second.checkout_token, True, now)
    db.session.rollback()
    assert db.session.get(DiscountCode, code.id).uses == 1


def test_guarded_increment_holds_when_the_check_read_a_stale_count(
    db, catalogue, dummy_customer, now
):
    code = new_code(db, now, max_uses=1)
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    discounts.apply_discount(cart, "TEST", dummy_customer.id, now)
    db.session.commit()
    assert code.uses == 0
    # A concurrent order took the last use after this request read the code.
    with db.engine.begin() as other_connection:
        other_connection.execute(
            update(DiscountCode).where(DiscountCode.id == code.id).values(uses=1)
        )
    assert code.uses == 0  # what this request still believes
    with pytest.raises(CheckoutError, match="numero massimo di utilizzi"):
        checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, now)
    db.session.rollback()
    assert db.session.get(DiscountCode, code.id).uses == 1
    assert db.session.scalar(select(func.count(Order.id))) == 0


def test_redeem_refuses_a_use_beyond_the_customers_numbers_whatever_the_check_read(
    db, catalogue, dummy_customer, now
):
    """The check before read no use (a twin's, committed meanwhile): redeem's numbers refuse."""
    pec = catalogue["products"]["PEC-STD"]
    code = catalogue["codes"]["BENVENUTO10"]  # once per customer
    cart = make_cart(db, dummy_customer, pec)
    discounts.apply_discount(cart, "BENVENUTO10", dummy_customer.id, now)
    place_order(db, cart, dummy_customer, now)
    later = place_order(db, make_cart(db, dummy_customer, pec), dummy_customer, now)
    with pytest.raises(DiscountRefused, match="già utilizzato"):
        discounts.redeem(code, dummy_customer.id, later)
    db.session.rollback()
    slots = db.session.scalars(select(DiscountRedemption.slot)).all()
    assert slots == [1]


def test_confirm_rechecks_the_code(db, catalogue, dummy_customer, now):
    cart = make_cart(db, dummy_customer, catalogue["products"]["PEC-STD"])
    discounts.apply_discount(cart, "BENVENUTO10", dummy_customer.id, now)
    db.session.commit()
    later = now + timedelta(days=400)  # the code has expired meanwhile
    with pytest.raises(DiscountRefused, match="è scaduto"):
        checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, later)


def test_confirm_counts_the_uses_of_this_customer_before_a_limit_was_set(
    db, catalogue, dummy_customer, now
):
    """A limit per customer set after the customer used the code: the uses before it (no
    numbered slot) count at confirm, for this customer."""
    pec = catalogue["products"]["PEC-STD"]
    code = new_code(db, now)
    cart = make_cart(db, dummy_customer, pec)
    discounts.apply_discount(cart, "TEST", dummy_customer.id, now)
    place_order(db, cart, dummy_customer, now)
    shop_cart.add_product(cart, pec.id)
    discounts.apply_discount(cart, "TEST", dummy_customer.id, now)  # no limit yet
    code.max_uses_per_customer = 1
    db.session.commit()
    with pytest.raises(DiscountRefused, match="già utilizzato"):
        checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, now)


def test_each_code_and_customer_numbers_its_own_uses(
    db, catalogue, dummy_customer, create_customer, now
):
    """A limit per customer numbers the uses (the slot of uq_redemption_slot) per code and
    customer: another customer's uses, or this customer's of another code, take no number."""
    pec = catalogue["products"]["PEC-STD"]
    new_code(db, now, code="DUE", max_uses_per_customer=2)
    luisa = create_customer(email="luisa@example.it", name="Luisa Bianchi")

    def use(customer, raw):
        cart = make_cart(db, customer, pec)
        discounts.apply_discount(cart, raw, customer.id, now)
        return place_order(db, cart, customer, now)

    use(luisa, "DUE")
    use(dummy_customer, "BENVENUTO10")
    use(dummy_customer, "DUE")
    use(dummy_customer, "DUE")
    slots = db.session.execute(
        select(DiscountCode.code, DiscountRedemption.customer_id, DiscountRedemption.slot)
        .join(DiscountCode, DiscountCode.id == DiscountRedemption.discount_code_id)
        .order_by(DiscountRedemption.id)
    ).all()
    assert [tuple(row) for row in slots] == [
        ("DUE", luisa.id, 1),
        ("BENVENUTO10", dummy_customer.id, 1),
        ("DUE", dummy_customer.id, 1),
        ("DUE", dummy_customer.id, 2),
    ]


def test_public_codes_by_expiry_then_name_from_their_first_instant_to_their_last(
    db, catalogue, now
):
    day = timedelta(days=1)
    new_code(db, now, code="ZETA", valid_until=now + 2 * day)
    new_code(db, now, code="ALFA", valid_until=now + 2 * day)
    new_code(db, now, code="PRIMA", valid_from=now, valid_until=now + day)
    new_code(db, now, code="FINITO", valid_until=now)
    new_code(db, now, code="ULTIMO", valid_until=now + 3 * day, max_uses=2, uses=1)
    new_code(db, now, code="ESAURITO", valid_until=now + 3 * day, max_uses=2, uses=2)
    new_code(db, now, code="RISERVATO", public=False)
    mine = {"ZETA", "ALFA", "PRIMA", "FINITO", "ULTIMO", "ESAURITO", "RISERVATO"}
    listed = [code.code for code in discounts.public_discounts(now) if code.code in mine]
    assert listed == ["PRIMA", "ALFA", "ZETA", "ULTIMO"]


# --- the views ------------------------------------------------------------------------------


def test_apply_and_refuse_through_the_checkout(client, db, catalogue, dummy_customer):
    add(client, catalogue["products"]["PEC-STD"])
    login(client)
    r = client.post("/checkout/sconto", data={"code": " benvenuto10 "}, headers=HX)
    assert r.status_code == 200
    assert "Codice sconto <strong>BENVENUTO10</strong> applicato" in r.text
    assert 'data-total="discount">− € 0,50' in r.text

    r = client.post("/checkout/sconto/rimuovi", headers=HX)
    assert r.status_code == 200
    assert 'name="code"' in r.text
    assert 'data-total="discount"' not in r.text

    r = client.post("/checkout/sconto", data={"code": "ESTATE2025"}, headers=HX)
    assert r.status_code == 422
    assert "Il codice sconto ESTATE2025 è scaduto il" in r.text
    assert 'value="ESTATE2025"' in r.text  # the typed code stays in the field


def test_refused_code_through_the_view_keeps_the_applied_one(client, db, catalogue, dummy_customer):
    add(client, catalogue["products"]["PEC-STD"])
    login(client)
    client.post("/checkout/sconto", data={"code": "BENVENUTO10"}, headers=HX)
    token = checkout_token(client)
    r = client.post("/checkout/sconto", data={"code": "NATALE"}, headers=HX)
    assert r.status_code == 422
    db.session.expire_all()
    cart = shop_cart.get_cart(dummy_customer.id, None)
    assert cart.discount_code.code == "BENVENUTO10"
    assert cart.checkout_token == token


def test_order_through_the_views_carries_the_discount(client, db, catalogue, dummy_customer):
    add(client, catalogue["products"]["SPID-PF"])
    login(client)
    client.post("/checkout/metodo", data={"payment_method": "card"})
    client.post("/checkout/sconto", data={"code": "BENVENUTO10"})
    r = confirm(client, checkout_token(client))
    assert r.status_code == 303
    order = db.session.scalars(select(Order)).one()
    assert (order.subtotal_cents, order.discount_cents, order.net_cents) == (990, 99, 891)
    assert order.lines[0].discount_cents == 99
    assert order.total_cents == 891 + 196  # 196,02


def test_discount_page_lists_only_public_codes_valid_today(client, db, catalogue, now):
    new_code(db, now, code="PRIVATO", public=False)
    new_code(db, now, code="ESAURITO", max_uses=1, uses=1)
    page = client.get("/sconti")
    assert page.status_code == 200
    assert "BENVENUTO10" in page.text
    assert "PEC5" in page.text
    assert "PEC Standard, PEC Pro" in page.text
    for hidden in ("ESTATE2025", "NATALE", "PRIVATO", "ESAURITO"):
        assert hidden not in page.text


def test_discount_page_without_codes(client, db):
    page = client.get("/sconti")
    assert "Oggi non ci sono codici sconto validi." in page.text


def test_a_code_that_expired_before_confirm_is_refused_with_its_reason(
    client, db, catalogue, dummy_customer, monkeypatch, now
):
    add(client, catalogue["products"]["PEC-STD"])
    login(client)
    client.post("/checkout/metodo", data={"payment_method": "card"}, headers=HX)
    r = client.post("/checkout/sconto", data={"code": "BENVENUTO10"}, headers=HX)
    assert r.status_code == 200
    token = checkout_token(client)
    freeze_views(monkeypatch, now + timedelta(days=400))  # the code expired meanwhile
    r = confirm(client, token, htmx=True)
    assert r.status_code == 422  # not a 500
    assert "Il codice sconto BENVENUTO10 è scaduto il" in r.text
    assert db.session.scalar(select(func.count(Order.id))) == 0


def test_a_twin_confirm_refused_the_code_its_twin_just_used_lands_on_that_order(
    client, db, catalogue, dummy_customer, monkeypatch
):
    """The twin read "no order for this form" just before the other committed it, then saw
    the code used (by that very order): it is sent to that order, not shown a 500."""
    add(client, catalogue["products"]["PEC-STD"])
    login(client)
    client.post("/checkout/metodo", data={"payment_method": "card"}, headers=HX)
    client.post("/checkout/sconto", data={"code": "BENVENUTO10"}, headers=HX)
    token = checkout_token(client)
    first = confirm(client, token)
    assert first.status_code == 303

    def refused(*args, **kwargs):
        raise DiscountRefused("Hai già utilizzato il codice sconto BENVENUTO10.")

    monkeypatch.setattr(checkout, "confirm_order", refused)
    twin = confirm(client, token)
    assert twin.status_code == 303
    assert twin.headers["Location"] == first.headers["Location"]
    assert db.session.scalar(select(func.count(DiscountRedemption.id))) == 1
