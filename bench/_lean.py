"""The lean reference for bench/fragments.py: what a cart fragment needs, and nothing else.

Flask's signed session, the customer's row and the cart's lines with their products (SQLAlchemy
Core, no ORM), one Jinja template: the floor the shop's fragments are measured against. It does
the same reads honestly: the session's "id:version" user id (see `load_user` in webapp) is
parsed, and a session whose version is not the customer's is anonymous, as in the shop.
"""

import os

from flask import Flask, session
from sqlalchemy import create_engine, text

from webapp.config import Config

app = Flask(__name__)
app.secret_key = Config.SECRET_KEY
engine = create_engine(os.environ["DATABASE_URL"])

TEMPLATE = """<section id="cart">
<p>{{ customer.name if customer else "Ospite" }}</p>
<ul>{% for line in lines %}<li>{{ line.name }}, {{ line.years }} anni: {{ line.price }}</li>
{% endfor %}</ul></section>"""


COMPILED = app.jinja_env.from_string(TEMPLATE)  # compiled once, as Flask's file templates are


def _user_id() -> tuple[int, int] | None:
    """(id, session version) from Flask-Login's "id:version", or None."""
    raw_id, _, raw_version = session.get("_user_id", "").partition(":")
    if not (raw_id.isdigit() and raw_version.isdigit()):
        return None
    return int(raw_id), int(raw_version)


def _customer(conn):
    user = _user_id()
    if user is None:
        return None
    customer = conn.execute(
        text("SELECT id, name, email, session_version FROM customer WHERE id = :id"),
        {"id": user[0]},
    ).first()
    if customer is None or customer.session_version != user[1]:
        return None  # a session from before the last "Esci": anonymous
    return customer


@app.get("/lean")
def lean():
    with engine.connect() as conn:
        customer = _customer(conn)
        lines = conn.execute(
            text(
                "SELECT p.name, l.years, p.yearly_price_cents * l.years AS price "
                "FROM cart c JOIN cart_line l ON l.cart_id = c.id "
                "JOIN product p ON p.id = l.product_id "
                "WHERE c.customer_id = :id OR c.anon_token = :token ORDER BY l.id"
            ),
            {"id": customer.id if customer else None, "token": session.get("cart_token")},
        ).all()
    return COMPILED.render(customer=customer, lines=lines)
