"""The cart as the cart page and its htmx fragment show it: one SELECT, plain rows, a quote.

The cart, its lines, their products and each product's list price on the day (the scheduled
price in force, else the product's own) come in one statement; the fragment renders from these
rows. Checkout and every change to the cart still work on the ORM cart (shop.cart, shop.checkout).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import bindparam, select

from webapp.extensions import db
from webapp.shop.catalogue import price_on_day_sql
from webapp.shop.discounts import terms_of
from webapp.shop.models import Cart, CartLine, DiscountCode, Product, ServiceKind
from webapp.shop.pricing import PriceLine, Quote, QuoteLine, quote

_cart, _line, _product = Cart.__table__, CartLine.__table__, Product.__table__


@dataclass(frozen=True)
class ProductRow:
    id: int
    name: str
    kind: ServiceKind


@dataclass(frozen=True)
class LineRow:
    """A cart line with its product, as the templates read a CartLine."""

    id: int
    years: int
    product: ProductRow
    renews_from: datetime | None = None  # a renewal line: the expiry it renews from

    renews_to = CartLine.renews_to

    @property
    def product_id(self) -> int:
        return self.product.id


@dataclass(frozen=True)
class CartRows:
    """Lines paired with their priced amounts, like services.CartView."""

    rows: tuple[tuple[LineRow, QuoteLine], ...]  # hashable: the fragment is cached by it
    quote: Quote

    @property
    def empty(self) -> bool:
        return not self.rows


def _statement(owner):
    return (
        select(
            _cart.c.discount_code_id,
            _line.c.id,
            _line.c.years,
            _line.c.renews_from,
            _product.c.id.label("product_id"),
            _product.c.name,
            _product.c.kind,
            price_on_day_sql().label("price"),
        )
        .select_from(
            _cart.outerjoin(_line, _line.c.cart_id == _cart.c.id).outerjoin(
                _product, _product.c.id == _line.c.product_id
            )
        )
        .where(owner)
        .order_by(_line.c.id)
    )


# Built once: a request only binds the owner and the day (and SQLAlchemy's cache key is cheap).
_BY_CUSTOMER = _statement(_cart.c.customer_id == bindparam("owner"))
_BY_TOKEN = _statement(_cart.c.anon_token == bindparam("owner"))


def cart_rows(customer_id: int | None, anon_token: str | None, day: date) -> CartRows:
    """The customer's (or the visitor's) cart priced with the list prices of `day`."""
    if customer_id is None and not anon_token:
        return CartRows((), quote([], None))
    statement = _BY_CUSTOMER if customer_id is not None else _BY_TOKEN
    owner = customer_id if customer_id is not None else anon_token
    rows = db.session.execute(statement, {"owner": owner, "day": day}).all()
    lines = [
        LineRow(r.id, r.years, ProductRow(r.product_id, r.name, r.kind), r.renews_from)
        for r in rows
        if r.id is not None
    ]
    prices = [PriceLine(r.product_id, r.price, r.years) for r in rows if r.id is not None]
    code_id = rows[0].discount_code_id if rows else None
    q = quote(prices, _terms(code_id))
    return CartRows(tuple(zip(lines, q.lines, strict=True)), q)


def _terms(code_id: int | None):
    """The discount's terms (a code on the cart is rare: one more read then)."""
    return terms_of(db.session.get(DiscountCode, code_id)) if code_id is not None else None
