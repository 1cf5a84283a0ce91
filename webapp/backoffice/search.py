"""The back office's search page: customers, orders, payments and services by what an operator
types (a name, an e-mail, an order number, a card's last four digits), a page at a time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select

from webapp.extensions import db
from webapp.i18n import lazy_gettext as _l
from webapp.payments.models import Payment, SavedCard
from webapp.renewals.models import Service
from webapp.shop.models import Customer, Product
from webapp.shop.order_models import Order

PAGE_SIZE = 20
MAX_PAGE = 100_000  # far beyond any list here; keeps OFFSET inside a 64-bit integer
KINDS = {
    "clienti": _l("Clienti"),
    "ordini": _l("Ordini"),
    "pagamenti": _l("Pagamenti"),
    "servizi": _l("Servizi"),
}
ORDER_NUMBER = re.compile(r"^(?:\d{4}-)?0*(\d{1,10})$")


@dataclass
class Page:
    kind: str
    items: list[Any]
    page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


def _number(q: str) -> int | None:
    """An order/payment/service number typed as 42, 000042 or 2026-000042."""
    found = ORDER_NUMBER.match(q)
    return int(found.group(1)) if found and int(found.group(1)) < 2**31 else None


def _customer_match(q: str):
    like = f"%{q.lower()}%"
    return or_(
        func.lower(Customer.name).like(like),
        func.lower(Customer.email).like(like),
        func.upper(Customer.tax_code) == q.upper(),
    )


def _is(column, value) -> ColumnElement[bool] | None:
    """`column == value`, or nothing to match when the query holds no such value."""
    return None if value is None else column == value


def _any(*conditions: ColumnElement[bool] | None) -> ColumnElement[bool]:
    return or_(*(cond for cond in conditions if cond is not None))


def _customers(q: str, number: int | None, last4: str | None) -> Select:
    return (
        select(Customer)
        .where(_any(_customer_match(q), _is(Customer.id, number)))
        .order_by(Customer.id.desc())
    )


def _orders(q: str, number: int | None, last4: str | None) -> Select:
    return (
        select(Order)
        .join(Customer, Customer.id == Order.customer_id)
        .where(_any(_customer_match(q), _is(Order.id, number)))
        .order_by(Order.id.desc())
    )


def _payments(q: str, number: int | None, last4: str | None) -> Select:
    """By customer, bank reference, CRO/TRN, payment or order number, the card's last digits."""
    return (
        select(Payment)
        .join(Order, Order.id == Payment.order_id)
        .join(Customer, Customer.id == Order.customer_id)
        .outerjoin(SavedCard, SavedCard.id == Payment.saved_card_id)
        .where(
            _any(
                _customer_match(q),
                Payment.gateway_ref == q,
                Payment.transfer_reference == q.upper().replace(" ", ""),
                _is(Payment.id, number),
                _is(Payment.order_id, number),
                _is(SavedCard.last4, last4),
            )
        )
        .order_by(Payment.id.desc())
    )


def _services(q: str, number: int | None, last4: str | None) -> Select:
    """By customer, product name, service number, the renewal card's last digits."""
    return (
        select(Service)
        .join(Customer, Customer.id == Service.customer_id)
        .join(Product, Product.id == Service.product_id)
        .outerjoin(SavedCard, SavedCard.id == Service.saved_card_id)
        .where(
            _any(
                _customer_match(q),
                func.lower(Product.name).like(f"%{q.lower()}%"),
                _is(Service.id, number),
                _is(SavedCard.last4, last4),
            )
        )
        .order_by(Service.id.desc())
    )


QUERIES = {"clienti": _customers, "ordini": _orders, "pagamenti": _payments, "servizi": _services}


def _query(kind: str, q: str) -> Select:
    last4 = q if re.fullmatch(r"\d{4}", q) else None
    return QUERIES[kind](q, _number(q), last4)


def search(q: str, kind: str, page: int = 1) -> list[Page]:
    """Customers, orders, payments and services matching `q` (one kind, or the first page of
    each); by number, name, e-mail, codice fiscale / P.IVA, last four digits of the card."""
    q = (q or "").strip()[:100]
    if len(q) < 2:
        return []
    kinds = [kind] if kind in KINDS else list(KINDS)
    page = max(1, page) if kind in KINDS else 1
    pages = []
    for k in kinds:
        stmt = _query(k, q)
        total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
        items = db.session.scalars(stmt.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
        pages.append(Page(k, list(items), page, total))
    return pages


def customers_by_id(ids) -> dict[int, Customer]:
    ids = set(ids)
    if not ids:
        return {}
    return {c.id: c for c in db.session.scalars(select(Customer).where(Customer.id.in_(ids)))}
