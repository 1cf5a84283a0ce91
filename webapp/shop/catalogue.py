"""The catalogue: the products on sale and their list prices on a day (scheduled price changes).

Services flush; the caller commits. The price changes are read once per transaction
(`_price_changes`, forgotten at commit and rollback); the SQL twins (price_on_day_sql,
price_changes_after_day_sql) price in one statement what price_on prices in Python."""

from __future__ import annotations

from datetime import date

from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import Date, bindparam, event, func, select

from webapp.extensions import db
from webapp.shop.models import Product, ProductPrice

_PRICE_CACHE = "price_changes"


def _price_changes() -> dict[int, list[tuple[date, int]]]:
    """Every scheduled price change by product, read once per transaction (a short table)."""
    cache = db.session.info.get(_PRICE_CACHE)
    if cache is None:
        cache = {}
        rows = db.session.execute(
            select(
                ProductPrice.product_id,
                ProductPrice.effective_from,
                ProductPrice.yearly_price_cents,
            ).order_by(ProductPrice.effective_from)
        )
        for product_id, day, cents in rows:
            cache.setdefault(product_id, []).append((day, cents))
        db.session.info[_PRICE_CACHE] = cache
    return cache


def forget_prices() -> None:
    """Drop the cached price changes (after adding one in this transaction)."""
    db.session.info.pop(_PRICE_CACHE, None)


@event.listens_for(FlaskSession, "after_commit")
@event.listens_for(FlaskSession, "after_rollback")
def _forget_prices_at_transaction_end(session) -> None:
    session.info.pop(_PRICE_CACHE, None)


def price_on(product: Product, day: date) -> int:
    """The yearly price (cents, net of VAT) valid on `day`: the latest change in force that day,
    else the product's own price. One query per transaction, whatever the number of calls."""
    return list_price_on(product.id, product.yearly_price_cents, day)


def list_price_on(product_id: int, own_price_cents: int, day: date) -> int:
    """price_on from plain values (the renewal engine's batches read rows, not objects)."""
    price = own_price_cents
    for effective_from, cents in _price_changes().get(product_id, []):
        if effective_from > day:
            break
        price = cents
    return price


def price_on_day_sql():
    """price_on in SQL, for a statement that reads `product`, at the day bound as :day: the
    latest scheduled change in force that day, else the product's own price."""
    product, price = Product.__table__, ProductPrice.__table__
    scheduled = (
        select(price.c.yearly_price_cents)
        .where(
            price.c.product_id == product.c.id,
            price.c.effective_from <= bindparam("day", type_=Date),
        )
        .order_by(price.c.effective_from.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(scheduled, product.c.yearly_price_cents)


def price_changes_after_day_sql():
    """For a statement that reads `product`: is a price change scheduled after :day?"""
    product, price = Product.__table__, ProductPrice.__table__
    return (
        select(func.count(price.c.id))
        .where(
            price.c.product_id == product.c.id,
            price.c.effective_from > bindparam("day", type_=Date),
        )
        .scalar_subquery()
    ) > 0


def price_changes(product: Product) -> list[tuple[date, int]]:
    return list(_price_changes().get(product.id, []))


def list_products() -> list[Product]:
    """Active products, grouped by service in catalogue order."""
    products = db.session.scalars(select(Product).where(Product.active)).all()
    order = list(type(products[0].kind)) if products else []
    return sorted(products, key=lambda p: (order.index(p.kind), p.yearly_price_cents, p.id))
