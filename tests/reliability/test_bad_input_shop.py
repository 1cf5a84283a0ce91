"""Hostile input on every form and fragment endpoint of the shop (hypothesis).

A logged-in customer posts anything: other customers' ids, huge or negative numbers, unicode,
NUL bytes, repeated and missing fields. Never a 500; a refused request (4xx) changes nothing,
neither in the shop nor at the bank; nothing of the other customer ever changes; and the data
stays valid (years and frequencies allowed, cards owned, amounts fixed, one success per order).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.reliability import fuzz
from tests.reliability.shopworld import World
from webapp.extensions import db
from webapp.payments.models import PaymentStatus
from webapp.shop.order_models import Order, OrderStatus

pytestmark = pytest.mark.reliability

HX = {"HX-Request": "true"}
RETURN_FIELDS = ("payment_id", "order_ref", "status", "amount_cents", "currency", "ts", "sig")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # "{id}" is replaced by a drawn integer
    fields: tuple[str, ...] = ()
    query: bool = False  # the fields travel in the query string
    anonymous: bool = False

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def kind(self) -> str:
        """What the path's id names (its ids are drawn more often)."""
        for marker, kind in (
            ("aggiungi", "product"),
            ("righe", "line"),
            ("servizi", "service"),
            ("carte", "card"),
            ("ordini", "order"),
        ):
            if f"/{marker}/" in self.path:
                return kind
        return ""


ENDPOINTS = [
    Endpoint("POST", "/carrello/aggiungi/{id}"),
    Endpoint("POST", "/carrello/righe/{id}/rimuovi"),
    Endpoint("GET", "/carrello"),
    Endpoint("GET", "/checkout"),
    Endpoint("POST", "/checkout/metodo", ("payment_method",)),
    Endpoint("POST", "/checkout/righe/{id}/anni", ("years",)),
    Endpoint("POST", "/checkout/sconto", ("code",)),
    Endpoint("POST", "/checkout/sconto/rimuovi"),
    Endpoint("POST", "/checkout/conferma", ("checkout_token", "terms")),
    Endpoint("GET", "/ordini/{id}"),
    Endpoint("POST", "/ordini/{id}/paga"),
    Endpoint("GET", "/portale-pagamenti/ordini/{id}"),
    Endpoint("POST", "/portale-pagamenti/ordini/{id}/scelta", ("choice",)),
    Endpoint(
        "POST", "/portale-pagamenti/ordini/{id}/procedi", ("choice", "amount_cents", "attempt")
    ),
    Endpoint("POST", "/area-clienti/servizi/{id}/rinnovo-automatico", ("auto_renew",)),
    Endpoint("POST", "/area-clienti/servizi/{id}/frequenza", ("frequency_years",)),
    Endpoint("POST", "/area-clienti/servizi/{id}/carta", ("card_id",)),
    Endpoint("GET", "/area-clienti/servizi/{id}/rinnova"),
    Endpoint("POST", "/area-clienti/servizi/{id}/rinnova", ("years",)),
    Endpoint("POST", "/area-clienti/carte/{id}/rimuovi"),
    Endpoint("POST", "/area-clienti/carte/nuova"),
    Endpoint("GET", "/area-clienti/carte/aggiunta", RETURN_FIELDS, query=True),
    Endpoint("GET", "/area-clienti/ordini/{id}"),
    Endpoint("GET", "/pagamenti/ritorno", RETURN_FIELDS, query=True),
    Endpoint("POST", "/accedi", ("email", "password", "remember", "next"), anonymous=True),
    Endpoint(
        "POST",
        "/registrati",
        ("name", "email", "tax_code", "password", "password2"),
        anonymous=True,
    ),
]


def check_invariants(orders_before: list[dict], after: fuzz.Snapshot) -> None:
    """Whatever was posted, the data stays valid."""
    products = {p["id"]: p for p in after["product"]}
    kinds_renewable = {"pec", "spid", "conservazione", "fatturazione_pa"}

    def allowed(product_id: int) -> range:
        p = products[product_id]
        if str(p["kind"]) not in kinds_renewable:
            return range(1, 2)
        return range(1, 3 if p["promotional"] else 6)

    for line in after["cart_line"]:
        assert line["years"] in allowed(line["product_id"]), line
    cards = {c["id"]: c for c in after["saved_card"]}
    for service in after["service"]:
        assert service["frequency_years"] in allowed(service["product_id"]), service
        if service["saved_card_id"] is not None:
            assert cards[service["saved_card_id"]]["customer_id"] == service["customer_id"]
        if service["auto_renew"]:
            assert service["saved_card_id"] is not None, service
    orders = {o["id"]: o for o in after["orders"]}
    for payment in after["payment"]:  # a payment only ever uses a card of the order's owner
        if payment["saved_card_id"] is not None:
            owner = orders[payment["order_id"]]["customer_id"]
            assert cards[payment["saved_card_id"]]["customer_id"] == owner, payment
    for old in orders_before:  # amounts are fixed when the order is confirmed
        assert orders[old["id"]]["total_cents"] == old["total_cents"]
        assert orders[old["id"]]["customer_id"] == old["customer_id"]
    was_paid = {o["id"] for o in orders_before if str(o["status"]) == OrderStatus.PAID}
    paid: dict[int, int] = {}
    for payment in after["payment"]:
        if str(payment["status"]) == PaymentStatus.SUCCEEDED:
            paid[payment["order_id"]] = paid.get(payment["order_id"], 0) + 1
    for order in orders.values():
        if order["id"] in was_paid:
            continue  # seeded as paid
        # Paid by card (or a renewal charge) here: exactly one successful payment; else none.
        assert paid.get(order["id"], 0) == (str(order["status"]) == OrderStatus.PAID), order


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
@fuzz.FUZZ
@given(data=st.data())
def test_hostile_input_never_breaks_the_shop(world: World, endpoint: Endpoint, data) -> None:
    values = fuzz.values_for(world.meaningful())
    path = endpoint.path
    if "{id}" in path:
        ids = fuzz.ints(world.ids, world.kinds.get(endpoint.kind, ()))
        path = path.replace("{id}", str(data.draw(ids, label="id")))
    fields = data.draw(fuzz.form(endpoint.fields, values), label="fields")
    headers = HX if data.draw(st.booleans(), label="htmx") else {}
    client = world.client
    if endpoint.anonymous:
        client = world.client.application.test_client()

    before_shop, before_bank = world.snapshot()
    kwargs = {"query_string": fields} if endpoint.query else {"data": fields}
    response = client.open(path, method=endpoint.method, headers=headers, **kwargs)
    after_shop, after_bank = world.snapshot()

    context = {"endpoint": str(endpoint), "path": path, "status": response.status_code}
    assert response.status_code < 500, context
    if 400 <= response.status_code < 500:
        fuzz.assert_unchanged(before_shop, after_shop, context)
        fuzz.assert_unchanged(before_bank, after_bank, context)
    victim = (world.victim.id, world.victim.email)
    fuzz.assert_unchanged(
        fuzz.owned_by(before_shop, *victim),
        fuzz.owned_by(after_shop, *victim),
        {**context, "whose": "the other customer's"},
    )
    check_invariants(before_shop["orders"], after_shop)


def _own(world: World, kind: str) -> int:
    """One of the logged-in customer's own objects of this kind."""
    return next(i for i in world.kinds[kind] if i not in world.theirs[kind])


# (path, form) that would succeed with the customer's own ids; here they carry the other's.
FOREIGN = {
    "remove line": lambda w, i: (f"/carrello/righe/{i}/rimuovi", {}, "line"),
    "years": lambda w, i: (f"/checkout/righe/{i}/anni", {"years": "2"}, "line"),
    "view order": lambda w, i: (f"/ordini/{i}", None, "order"),
    "receipt": lambda w, i: (f"/area-clienti/ordini/{i}", None, "order"),
    "pay order": lambda w, i: (f"/ordini/{i}/paga", {}, "order"),
    "portal": lambda w, i: (f"/portale-pagamenti/ordini/{i}", None, "order"),
    "portal select": lambda w, i: (
        f"/portale-pagamenti/ordini/{i}/scelta",
        {"choice": "new"},
        "order",
    ),
    "portal proceed": lambda w, i: (
        f"/portale-pagamenti/ordini/{i}/procedi",
        {"choice": "new", "amount_cents": "0"},
        "order",
    ),
    "select their card": lambda w, i: (
        f"/portale-pagamenti/ordini/{_own(w, 'order')}/scelta",
        {"choice": str(i)},
        "card",
    ),
    "pay with their card": lambda w, i: (
        f"/portale-pagamenti/ordini/{_own(w, 'order')}/procedi",
        {
            "choice": str(i),
            "attempt": "x",
            "amount_cents": str(db.session.get(Order, _own(w, "order")).total_cents),
        },
        "card",
    ),
    "auto-renew": lambda w, i: (
        f"/area-clienti/servizi/{i}/rinnovo-automatico",
        {"auto_renew": "0"},
        "service",
    ),
    "frequency": lambda w, i: (
        f"/area-clienti/servizi/{i}/frequenza",
        {"frequency_years": "2"},
        "service",
    ),
    "renew their service": lambda w, i: (
        f"/area-clienti/servizi/{i}/rinnova",
        {"years": "1"},
        "service",
    ),
    "their service, my card": lambda w, i: (
        f"/area-clienti/servizi/{i}/carta",
        {"card_id": str(_own(w, "card"))},
        "service",
    ),
    "my service, their card": lambda w, i: (
        f"/area-clienti/servizi/{_own(w, 'service')}/carta",
        {"card_id": str(i)},
        "card",
    ),
    "remove their card": lambda w, i: (f"/area-clienti/carte/{i}/rimuovi", {}, "card"),
}


def test_the_other_customers_ids_are_refused(world: World) -> None:
    """Every id of the other customer, on every endpoint that takes one: refused, no change."""
    for name, make in FOREIGN.items():
        for their_id in world.theirs[make(world, 0)[2]]:
            _refused(world, name, *make(world, their_id)[:2])


def _refused(world: World, name: str, path: str, form: dict | None) -> None:
    """One request with the other customer's id: 404 or 422, and no change anywhere."""
    before = world.snapshot()
    if form is None:
        response = world.client.get(path)
    else:
        response = world.client.post(path, data=form, headers=HX)
    after = world.snapshot()
    context = {"case": name, "path": path, "status": response.status_code}
    # Removing a line that is not in one's cart shows the cart as it is (a double click).
    assert response.status_code in ((200,) if name == "remove line" else (404, 422)), context
    fuzz.assert_unchanged(before[0], after[0], context)
    fuzz.assert_unchanged(before[1], after[1], context)
