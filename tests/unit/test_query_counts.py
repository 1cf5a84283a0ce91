"""No N+1 queries: each page sends as many SQL statements for 20 cart lines and 50 services as
for 1 line and 1 service (the counting is bench/queries.py's, which prints the figures)."""

from __future__ import annotations

from sqlalchemy import select

from bench.queries import LARGE, SMALL, page_counts, seed_shopper
from tests.unit.helpers import login
from webapp.renewals.services import list_services
from webapp.shop.models import Customer


def test_pages_send_the_same_number_of_queries_whatever_the_rows(app, catalogue, now):
    small = seed_shopper("piccolo@example.it", *SMALL, now)
    large = seed_shopper("grande@example.it", *LARGE, now)

    few, many = page_counts(app, small), page_counts(app, large)

    assert set(few) == {
        "cart page",
        "cart fragment (htmx)",
        "checkout",
        "order",
        "area: I miei servizi",
        "area: cards",
        "area: orders",
    }
    assert all(n > 0 for n in few.values()), few  # the counter sees the statements
    grown = {page: (few[page], many[page]) for page in few if many[page] != few[page]}
    assert grown == {}, "pages whose query count grows with the rows: (1 row, many rows)"


#: The README's "SQL statements per page" table: a page that sends more is a regression to look
#: at (the count is the same on SQLite and PostgreSQL).
CEILING = {
    "cart page": 5,
    "cart fragment (htmx)": 4,
    "checkout": 8,
    "order": 7,
    "area: I miei servizi": 4,
    "area: cards": 4,
    "area: orders": 5,
}


def test_pages_send_no_more_statements_than_the_readme_says(app, catalogue, now):
    counts = page_counts(app, seed_shopper("piccolo@example.it", *SMALL, now))
    over = {page: (n, CEILING[page]) for page, n in counts.items() if n > CEILING[page]}
    assert over == {}, "pages over their ceiling: (sent, ceiling)"


def test_the_large_customer_sees_all_its_rows(app, client, db, catalogue, now):
    """The eager loading changes no content: every line, service and failed renewal is shown."""
    shopper = seed_shopper("grande@example.it", *LARGE, now)
    customer = db.session.scalar(select(Customer).where(Customer.email == shopper.email))
    renewing = [s for s in list_services(customer.id) if s.renewable]
    login(client, shopper.email, "password123")

    cart = client.get("/carrello", headers={"HX-Request": "true"}).text
    assert cart.count('id="cart-line-') == LARGE[0]
    services = client.get("/area-clienti/").text
    assert services.count('class="panel service"') == LARGE[1]
    assert services.count("Rinnovo non riuscito il") == len(renewing) > 0
    assert services.count("sarà scaduta alla data del rinnovo") == 0  # failed ones say it so
    orders = client.get("/area-clienti/ordini").text
    assert orders.count('<tr id="order-') == 1 + LARGE[1] - LARGE[0]
    order = client.get(f"/ordini/{shopper.order_id}").text
    assert order.count("attivo fino al") == LARGE[0]
