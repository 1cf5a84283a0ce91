"""SQL statements per page for a small and a large customer: the counts must be equal.

Counts every statement sent to the database (SQLAlchemy `before_cursor_execute`) while the shop
serves the cart (page and htmx fragment), the checkout, an order and the customer area, for a
customer with 1 cart line and 1 service and one with 20 cart lines and 50 services. A page whose
count grows with the rows has an N+1 query. Not a test: figures only (tests/unit/
test_query_counts.py asserts the same property). Exits 1 when a count grows.
Usage: .venv/bin/python bench/queries.py [--database-url URL-of-an-empty-database]
       scripts/with-postgres.sh .venv/bin/python bench/queries.py   (on PostgreSQL)
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask, g, has_app_context
from sqlalchemy import event, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.extensions import db  # noqa: E402

PASSWORD = "password123"
SMALL = (1, 1)  # cart lines, services
LARGE = (20, 50)


@dataclass(frozen=True)
class Shopper:
    email: str
    order_id: int  # a paid order with one line per cart line (capped at the services)


def seed_shopper(email: str, lines: int, services: int, now: datetime) -> Shopper:
    """A customer with `lines` cart lines (a discount applied, card chosen) and `services` services.

    The first order has min(lines, services) lines, each further service its own order. Every
    auto-renewable service has a failed renewal (the page shows it) and renews with one of the
    customer's two cards, in turn a valid and an expired one. Needs the demo catalogue; commits.
    """
    from webapp.clock import now_utc
    from webapp.payments.models import SavedCard
    from webapp.renewals.models import Renewal, RenewalStatus, Service
    from webapp.shop.models import Cart, CartLine, Customer, DiscountCode, PaymentMethod, Product
    from webapp.shop.order_models import Order, OrderLine, OrderStatus

    products = db.session.scalars(select(Product).order_by(Product.id)).all()
    customer = Customer(email=email, name="Cliente Prova", tax_code="RSSMRA85T10A562S")
    customer.email_confirmed_at = now_utc()
    customer.set_password(PASSWORD)
    db.session.add(customer)
    db.session.flush()
    card = SavedCard(
        customer_id=customer.id,
        gateway_token=f"tok-{email}",
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=now.year + 3,
        holder=customer.name,
    )
    old = SavedCard(
        customer_id=customer.id,
        gateway_token=f"tok-old-{email}",
        brand="mastercard",
        last4="4444",
        exp_month=1,
        exp_year=now.year - 1,
        holder=customer.name,
    )
    pec5 = db.session.scalar(select(DiscountCode).where(DiscountCode.code == "PEC5"))
    cart = Cart(
        customer_id=customer.id,
        checkout_token=f"chk-{email}",
        payment_method=PaymentMethod.CARD,
        discount_code=pec5,
    )
    cycle = itertools.cycle(products)
    cart.lines = [CartLine(product=next(cycle), years=1) for _ in range(lines)]
    db.session.add_all([card, old, cart])

    cycle = itertools.cycle(products)
    sizes = [min(lines, services)] + [1] * (services - min(lines, services))
    expires = now + timedelta(days=10)
    cards = itertools.cycle([card, old])
    first_order = None
    for size in sizes:
        bought = [next(cycle) for _ in range(size)]
        total = sum(p.yearly_price_cents for p in bought)
        order = Order(
            customer_id=customer.id,
            status=OrderStatus.PAID,
            payment_method=PaymentMethod.CARD,
            subtotal_cents=total,
            net_cents=total,
            vat_cents=total * 22 // 100,
            total_cents=total + total * 22 // 100,
            created_at=now - timedelta(days=355),
            paid_at=now - timedelta(days=355),
        )
        order.lines = [
            OrderLine(
                product_id=p.id,
                product_name=p.name,
                kind=p.kind,
                years=1,
                yearly_price_cents=p.yearly_price_cents,
                list_cents=p.yearly_price_cents,
                net_cents=p.yearly_price_cents,
                auto_renew=p.auto_renewable,
            )
            for p in bought
        ]
        db.session.add(order)
        db.session.flush()
        first_order = first_order or order
        for line, product in zip(order.lines, bought, strict=True):
            service = Service(
                customer_id=customer.id,
                product_id=product.id,
                order_line_id=line.id,
                started_at=order.paid_at,
                expires_at=expires,
                auto_renew=product.auto_renewable,
                saved_card_id=next(cards).id if product.auto_renewable else None,
            )
            db.session.add(service)
            db.session.flush()
            if product.auto_renewable:
                db.session.add(
                    Renewal(
                        service_id=service.id,
                        period_expires_at=expires,
                        status=RenewalStatus.FAILED,
                        attempts=1,
                        last_attempt_at=now,
                        next_attempt_at=now + timedelta(days=5),
                        failure_code="card_declined",
                        failure_reason="La banca ha rifiutato l'addebito.",
                        created_at=now,
                    )
                )
    db.session.commit()
    return Shopper(email, first_order.id)


def _pages(shopper: Shopper) -> dict[str, tuple[str, dict[str, str]]]:
    hx = {"HX-Request": "true"}
    return {
        "cart page": ("/carrello", {}),
        "cart fragment (htmx)": ("/carrello", hx),
        "checkout": ("/checkout", {}),
        "order": (f"/ordini/{shopper.order_id}", {}),
        "area: I miei servizi": ("/area-clienti/", {}),
        "area: cards": ("/area-clienti/carte", {}),
        "area: orders": ("/area-clienti/ordini", {}),
    }


def _fresh_request_state() -> None:
    """Each measured request starts as a real one does: empty session, no cached user."""
    if has_app_context():  # the tests keep one app context pushed across requests
        db.session.remove()
        g.pop("_login_user", None)


def page_counts(app: Flask, shopper: Shopper) -> dict[str, int]:
    """Log the shopper in and count the SQL statements of each page (after a warm-up)."""
    with app.app_context():
        engine = db.engine
    client = app.test_client()
    _fresh_request_state()
    response = client.post("/accedi", data={"email": shopper.email, "password": PASSWORD})
    assert response.status_code == 303, response.text
    statements = 0

    def count(*_args) -> None:
        nonlocal statements
        statements += 1

    counts = {}
    for name, (url, headers) in _pages(shopper).items():
        _fresh_request_state()
        assert client.get(url, headers=headers).status_code == 200, url  # warm-up
        _fresh_request_state()
        statements = 0
        event.listen(engine, "before_cursor_execute", count)
        try:
            response = client.get(url, headers=headers)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 200, f"{url}: {response.status_code}"
        counts[name] = statements
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL"),
        help="an empty database (default: TEST_DATABASE_URL, else a temporary SQLite one)",
    )
    args = parser.parse_args()
    from webapp import create_app
    from webapp.clock import now_utc
    from webapp.config import TestConfig
    from webapp.demo import seed

    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/queries.db"
    app = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": url})
    now = now_utc()
    with app.app_context():
        db.create_all()
        seed(now)
        db.session.commit()
        small = seed_shopper("piccolo@example.it", *SMALL, now)
        large = seed_shopper("grande@example.it", *LARGE, now)
    few, many = page_counts(app, small), page_counts(app, large)
    head_few = f"{SMALL[0]} line/{SMALL[1]} service"
    head_many = f"{LARGE[0]} lines/{LARGE[1]} services"
    print(f"SQL statements per page ({app.config['SQLALCHEMY_DATABASE_URI'].split(':')[0]})")
    print(f"{'page':28} {head_few:>20} {head_many:>20}")
    grows = []
    for name in few:
        flag = "" if few[name] == many[name] else "  <-- GROWS with the rows (N+1)"
        if flag:
            grows.append(name)
        print(f"{name:28} {few[name]:>20} {many[name]:>20}{flag}")
    if grows:
        print(f"{len(grows)} pages with N+1 queries: {', '.join(grows)}")
        sys.exit(1)
    print("every page: a constant number of statements")


if __name__ == "__main__":
    main()
