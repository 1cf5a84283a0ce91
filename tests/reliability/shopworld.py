"""A shop with two furnished customers (carts, orders, cards, services, a failed renewal).

The first customer is logged in on the test client: the hostile-input tests post as them,
with the other customer's ids among the values, and check that nothing of the other changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import insert, select

from tests.reliability import fuzz
from tests.unit.renewal_fakes import make_card, make_service
from webapp.clock import now_utc
from webapp.extensions import db
from webapp.payments.models import SavedCard
from webapp.renewals.models import Renewal, RenewalStatus, Service, ServiceStatus
from webapp.shop import cart as shop_cart
from webapp.shop import checkout
from webapp.shop.models import Cart, CartLine, PaymentMethod, Product
from webapp.shop.order_models import Order

PASSWORD = "password123"


@dataclass
class World:
    """Two customers with carts, orders, services and cards; the first one is logged in."""

    client: FlaskClient
    bank_app: object
    attacker: object
    victim: object
    ids: list[int] = field(default_factory=list)  # of everything, everyone's
    kinds: dict[str, list[int]] = field(default_factory=dict)  # everyone's, by kind
    theirs: dict[str, list[int]] = field(default_factory=dict)  # the other customer's

    def snapshot(self) -> tuple[fuzz.Snapshot, fuzz.Snapshot]:
        from webapp.bank.extensions import db as bank_db

        shop_state = fuzz.snapshot(db.session, db.metadata)
        with self.bank_app.app_context():
            bank_state = fuzz.snapshot(bank_db.session, bank_db.metadata)
            bank_db.session.remove()
        return shop_state, bank_state

    def meaningful(self) -> list[object]:
        """Values that mean something right now: ids, tokens, totals, e-mails, codes."""
        db.session.rollback()
        carts = db.session.scalars(select(Cart.checkout_token)).all()
        totals = db.session.scalars(select(Order.total_cents)).all()
        refs = db.session.scalars(select(Order.id)).all()
        return [
            *self.ids,
            *carts,
            *totals,
            *(f"ORD-{r}" for r in refs),
            self.attacker.email,
            self.victim.email,
            PASSWORD,
            "RSSMRA85T10A562S",
        ]


def _bank_card(bank_app, token: str, pan: str, exp_year: int) -> None:
    from webapp.bank.extensions import db as bank_db
    from webapp.bank.models import Card

    with bank_app.app_context():
        bank_db.session.execute(
            insert(Card),
            [
                dict(
                    token=token,
                    pan=pan,
                    brand="visa",
                    last4=pan[-4:],
                    exp_month=12,
                    exp_year=exp_year,
                    holder="Cliente",
                    created_at=now_utc(),
                )
            ],
        )
        bank_db.session.commit()
        bank_db.session.remove()


def _furnish(customer, catalogue, bank_app) -> None:
    """A cart, a pending card order, a pending transfer order, cards, services, a renewal."""
    now = now_utc()
    products = catalogue["products"]
    cart = shop_cart.get_or_create_cart(customer.id, None)
    for sku in ("PEC-STD", "FIRMA-R"):
        shop_cart.add_product(cart, products[sku].id)
    shop_cart.set_payment_method(cart, PaymentMethod.CARD)
    checkout.confirm_order(cart, customer.id, cart.checkout_token, True, now)
    shop_cart.add_product(cart, products["SPID-PF"].id)
    shop_cart.set_payment_method(cart, PaymentMethod.BANK_TRANSFER)
    checkout.confirm_order(cart, customer.id, cart.checkout_token, True, now)
    for sku in ("PEC-PROMO", "CONS-1"):
        shop_cart.add_product(cart, products[sku].id)
    shop_cart.set_payment_method(cart, PaymentMethod.CARD)
    db.session.commit()

    good = make_card(customer, exp_year=now.year + 4, token=f"tok_fuzz_{customer.id}_ok")
    _bank_card(bank_app, good.gateway_token, "4242424242424242", now.year + 4)
    expired = make_card(customer, exp_month=1, exp_year=2020, last4="0069")
    removed = make_card(customer, last4="0002")
    removed.removed_at = now
    spare = make_card(
        customer, exp_year=now.year + 3, last4="4444", token=f"tok_fuzz_{customer.id}_spare"
    )  # used by nothing: removable
    _bank_card(bank_app, spare.gateway_token, "5555555555554444", now.year + 3)
    make_service(customer, products["PEC-STD"], expires_at=now + timedelta(days=200), card=good)
    make_service(customer, products["PEC-PROMO"], expires_at=now + timedelta(days=90), card=good)
    make_service(
        customer, products["FIRMA-R"], expires_at=now + timedelta(days=100), auto_renew=False
    )
    gone = make_service(customer, products["SPID-PF"], expires_at=now - timedelta(days=10))
    gone.status, gone.auto_renew = ServiceStatus.EXPIRED, False
    # In the renewal window, its renewal failed on the expired card: a new card retries it.
    due = make_service(
        customer, products["PEC-PRO"], expires_at=now + timedelta(days=5), card=expired
    )
    db.session.add(
        Renewal(
            service_id=due.id,
            period_expires_at=due.expires_at,
            status=RenewalStatus.FAILED,
            attempts=1,
            failure_code="expired_card",
            created_at=now,
        )
    )
    db.session.commit()


def build_world(client, bank_app, catalogue, create_customer) -> World:
    """Furnish two customers and log the first one in with `client`."""
    attacker = create_customer(email="attaccante@example.it", name="Attilio Attaccante")
    victim = create_customer(email="vittima@example.it", name="Vittoria Vittima")
    for customer in (attacker, victim):
        _furnish(customer, catalogue, bank_app)
    response = client.post("/accedi", data={"email": attacker.email, "password": PASSWORD})
    assert response.status_code == 303
    models = {
        "product": Product,
        "line": CartLine,
        "order": Order,
        "service": Service,
        "card": SavedCard,
        "renewal": Renewal,
    }
    kinds = {kind: list(db.session.scalars(select(m.id))) for kind, m in models.items()}
    theirs = {
        "line": list(
            db.session.scalars(select(CartLine.id).join(Cart).where(Cart.customer_id == victim.id))
        ),
        **{
            kind: list(db.session.scalars(select(m.id).where(m.customer_id == victim.id)))
            for kind, m in (("order", Order), ("service", Service), ("card", SavedCard))
        },
    }
    ids = sorted({i for values in kinds.values() for i in values})
    return World(client, bank_app, attacker, victim, ids, kinds, theirs)
