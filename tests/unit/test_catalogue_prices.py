"""The catalogue's scheduled prices and the customer's order list, as the shop reads them."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from tests.unit.invoicing_helpers import confirmed_order
from webapp.extensions import db
from webapp.shop import catalogue as shop_catalogue
from webapp.shop import orders
from webapp.shop.models import PaymentMethod, Product, ProductPrice


def _change(product, cents: int, day: date) -> None:
    db.session.add(
        ProductPrice(product_id=product.id, yearly_price_cents=cents, effective_from=day)
    )
    db.session.flush()


def test_a_products_scheduled_prices_in_date_order(catalogue):
    pec, spid = catalogue["products"]["PEC-STD"], catalogue["products"]["SPID-PF"]
    _change(pec, 700, date(2027, 3, 1))
    _change(pec, 600, date(2027, 1, 1))
    _change(spid, 999, date(2027, 2, 1))
    db.session.commit()
    changes = shop_catalogue.price_changes(pec)
    assert changes == [(date(2027, 1, 1), 600), (date(2027, 3, 1), 700)]
    assert shop_catalogue.price_on(pec, date(2027, 2, 15)) == 600
    assert shop_catalogue.price_changes(catalogue["products"]["FIRMA-R"]) == []  # none


def test_a_price_added_in_the_transaction_counts_once_forgotten(catalogue):
    """The changes are read once per transaction: a change added in it is seen after
    forget_prices (what the back office calls after adding one)."""
    pec = catalogue["products"]["PEC-STD"]
    day = date(2027, 1, 10)
    assert shop_catalogue.price_on(pec, day) == pec.yearly_price_cents  # read and kept
    _change(pec, 800, day - timedelta(days=1))
    assert shop_catalogue.price_on(pec, day) == pec.yearly_price_cents  # the kept read
    shop_catalogue.forget_prices()
    assert shop_catalogue.price_on(pec, day) == 800


def test_the_customers_orders_newest_first(catalogue, dummy_customer, now):
    products = catalogue["products"]
    first = confirmed_order(dummy_customer, products, now, ("PEC-STD",), 1, PaymentMethod.CARD)
    second = confirmed_order(dummy_customer, products, now, ("SPID-PF",), 1, PaymentMethod.CARD)
    assert [o.id for o in orders.list_orders(dummy_customer.id)] == [second.id, first.id]


def _priced_on(day: date) -> dict[str, tuple[int, bool]]:
    """price_on_day_sql and price_changes_after_day_sql in a statement of their own, run on
    the database at `day`: {sku: (yearly price, change scheduled after the day)}."""
    product = Product.__table__
    statement = select(
        product.c.sku,
        shop_catalogue.price_on_day_sql().label("price"),
        shop_catalogue.price_changes_after_day_sql().label("ahead"),
    )
    rows = db.session.execute(statement, {"day": day})
    return {sku: (price, bool(ahead)) for sku, price, ahead in rows}


def test_the_sql_price_of_a_day_is_the_latest_change_in_force(catalogue):
    """The SQL twins of price_on, as "I miei servizi" and the cart page read them."""
    pec, spid = catalogue["products"]["PEC-STD"], catalogue["products"]["SPID-PF"]
    _change(pec, 700, date(2027, 3, 1))
    _change(pec, 600, date(2027, 1, 1))
    _change(spid, 999, date(2027, 2, 1))
    db.session.commit()
    own = pec.yearly_price_cents
    expected = {
        date(2026, 12, 31): (own, True),  # before any change: the product's own price
        date(2027, 1, 1): (600, True),  # in force from its first day
        date(2027, 2, 28): (600, True),  # one change left ahead
        date(2027, 3, 1): (700, False),  # the later change, none after it
        date(2027, 9, 1): (700, False),
    }
    for day, pec_price in expected.items():
        priced = _priced_on(day)
        assert priced["PEC-STD"] == pec_price, day
        assert priced["SPID-PF"] == (
            (999, False) if day >= date(2027, 2, 1) else (spid.yearly_price_cents, True)
        )
        assert priced["FIRMA-R"] == (catalogue["products"]["FIRMA-R"].yearly_price_cents, False)
    assert shop_catalogue.price_on(pec, date(2027, 2, 28)) == 600  # the Python twin agrees


def test_the_catalogue_of_a_single_active_product_or_none(catalogue):
    pec = catalogue["products"]["PEC-STD"]
    for product in catalogue["products"].values():
        product.active = product is pec
    db.session.commit()
    assert shop_catalogue.list_products() == [pec]
    pec.active = False
    db.session.commit()
    assert shop_catalogue.list_products() == []
