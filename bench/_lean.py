"""The lean reference for bench/fragments.py: what a cart fragment needs, and nothing else.

Flask's signed session, the customer's row and the cart's lines with their products (SQLAlchemy
Core, no ORM), one Jinja template: the floor the shop's fragments are measured against.
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


@app.get("/lean")
def lean():
    with engine.connect() as conn:
        customer = None
        if "_user_id" in session:
            customer = conn.execute(
                text("SELECT id, name, email FROM customer WHERE id = :id"),
                {"id": int(session["_user_id"])},
            ).first()
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
