"""The lean references for bench/fragments.py: what a fragment needs, and nothing else.

`/lean` (the issue's reference, a GET): Flask's signed session, the customer's row and the
cart's lines with their products (SQLAlchemy Core, no ORM), one Jinja template: the floor the
shop's fragments are measured against. It does the same reads honestly: the session's
"id:version" user id (see `load_user` in webapp) is parsed, and a session whose version is not
the customer's is anonymous, as in the shop.

`/lean-post/<service>` (a second reference, for the two POST fragments): the same session and
customer, plus what every form POST of the shop must do and a GET does not: the CSRF check
(Flask-WTF's own `validate_csrf`), the form, and a write: the service's row, one guarded UPDATE
of its frequency and a commit, then one template.
"""

import os

from flask import Flask, abort, request, session
from flask_wtf.csrf import validate_csrf
from sqlalchemy import create_engine, text
from wtforms import ValidationError

from webapp.config import Config

app = Flask(__name__)
app.secret_key = Config.SECRET_KEY
app.config["WTF_CSRF_TIME_LIMIT"] = Config.WTF_CSRF_TIME_LIMIT  # the shop's tokens, as signed
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


POST_TEMPLATE = """<article id="service-{{ row.id }}"><h3>{{ row.name }}</h3>
<p>{{ customer.name }}: ogni {{ years }} anni</p>
<select name="frequency_years">{% for y in range(1, 6) %}<option value="{{ y }}"
{%- if y == years %} selected{% endif %}>{{ y }}</option>{% endfor %}</select></article>"""
POST_COMPILED = app.jinja_env.from_string(POST_TEMPLATE)


@app.post("/lean-post/<int:service_id>")
def lean_post(service_id: int):
    try:
        validate_csrf(request.headers.get("X-CSRFToken"))
    except ValidationError:
        abort(400)
    years = int(request.form.get("frequency_years", "0"))
    with engine.begin() as conn:  # commits at the end
        customer = _customer(conn)
        if customer is None:
            abort(401)
        row = conn.execute(
            text(
                "SELECT s.id, s.frequency_years, p.name FROM service s "
                "JOIN product p ON p.id = s.product_id WHERE s.id = :id AND s.customer_id = :c"
            ),
            {"id": service_id, "c": customer.id},
        ).first()
        if row is None or not 1 <= years <= 5:
            abort(404 if row is None else 422)
        conn.execute(
            text(
                "UPDATE service SET frequency_years = :y WHERE id = :id AND frequency_years <> :y"
            ),
            {"y": years, "id": service_id},
        )
    return POST_COMPILED.render(customer=customer, row=row, years=years)
