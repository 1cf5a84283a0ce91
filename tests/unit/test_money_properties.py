"""A stateful property test of money after the first payment (issue 20).

Hypothesis's rule-based state machine plays random sequences of purchases (card or bank
transfer), renewal passes with the test clock, partial and full refunds, withdrawals, price
changes, frequency changes and the Rinnovo automatico switch (through the customer area),
renewals by hand paid by card, bank answers that do not match ("Da verificare"), and
billing-type changes, and checks after every step (tests/unit/money_invariants.py): money at
the bank = payments - refunds, per order and in total; one invoice per payment with the amount
paid; credit notes = refunds to the cent; each service's paid-up-to date = the periods its
unrefunded payments cover; every renewal charge = the last amount announced; the recesso only
for consumers within 14 days; a held answer's money all given back.

Bounded in the normal run; longer with MONEY_PROPERTY_EXAMPLES and MONEY_PROPERTY_STEPS
(e.g. `MONEY_PROPERTY_EXAMPLES=200 MONEY_PROPERTY_STEPS=40`).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from tests.suite_speed import empty_postgres
from tests.unit import money_invariants as inv
from tests.unit.helpers import login
from tests.unit.invoicing_helpers import confirmed_order, give_billing
from tests.unit.money_world import pay_by_card
from tests.unit.renewal_fakes import FAKE_MERCHANT, FakeGateway
from webapp.clock import rome_date
from webapp.extensions import db
from webapp.payments.models import Payment, PaymentStatus, RefundKind
from webapp.shop.models import PaymentMethod, Product, ProductPrice
from webapp.shop.order_models import Order, OrderKind, OrderStatus

EXAMPLES = int(os.environ.get("MONEY_PROPERTY_EXAMPLES", "6"))
STEPS = int(os.environ.get("MONEY_PROPERTY_STEPS", "14"))
SKUS = ("PEC-STD", "SPID-PF", "FIRMA-R")
KINDS = ("private", "business_code", "public")


def wipe_database() -> None:
    """Each example starts from an empty shop (the schema stays)."""
    db.session.rollback()
    tables = db.metadata.sorted_tables
    if db.engine.dialect.name == "postgresql":
        empty_postgres(db.session.connection())
    else:
        # order_line and service point at each other: checked at commit, when both are empty.
        db.session.execute(db.text("PRAGMA defer_foreign_keys = ON"))
        for table in reversed(tables):
            db.session.execute(table.delete())
    db.session.commit()


def machine_for(app, start, monkeypatch):
    import webapp.account.area as area

    class MoneyMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            from tests.conftest import add_private_billing
            from webapp.demo import seed
            from webapp.shop.models import Customer

            wipe_database()
            seed(start)
            customer = Customer(email="mario@example.it", name="Mario Rossi", tax_code="X" * 16)
            customer.set_password("password123")
            db.session.add(customer)
            db.session.flush()
            add_private_billing(customer)
            db.session.commit()
            self.customer, self.now = customer, start
            self.fake = FakeGateway()
            app.extensions["gateway"] = self.fake
            self.elsewhere: dict[str, int] = {}  # hosted payments and transfers, by reference
            self.buyers: dict[int, str] = {}  # order id -> billing type at confirm
            self.billing = "private"
            self.seen_payment = 0
            monkeypatch.setattr(area, "now_utc", lambda: self.now)
            self.client = app.test_client()
            login(self.client)

        def _product(self, sku: str) -> Product:
            return db.session.scalar(select(Product).where(Product.sku == sku))

        @rule(
            sku=st.sampled_from(SKUS),
            years=st.integers(1, 3),
            card=st.sampled_from([True, True, True, False]),
        )
        def purchase(self, sku, years, card):
            if rome_date(self.now).strftime("%m%d") == "0229":
                return  # a service started on 29 February ends on 28 February: kept simple
            products = {sku: self._product(sku)}
            method = PaymentMethod.CARD if card else PaymentMethod.BANK_TRANSFER
            order = confirmed_order(self.customer, products, self.now, (sku,), years, method)
            self.buyers[order.id] = order.buyer["customer_type"]
            if card:
                payment = pay_by_card(order, self.now)
                self.elsewhere[payment.gateway_ref] = payment.amount_cents
            else:
                self._transfer(order)

        def _transfer(self, order: Order) -> None:
            from webapp.payments.transfers import record_bank_transfer

            reference = f"TRN{secrets.token_hex(5).upper()}"
            payment = record_bank_transfer(
                order, order.total_cents, rome_date(self.now), reference, self.now, "test"
            )
            db.session.commit()
            self.elsewhere[payment.idempotency_key] = payment.amount_cents

        @rule(before=st.sampled_from([31, 30, 20, 15, 14, 10, 1, 0, -1]), days=st.integers(1, 9))
        def renewal_pass(self, before, days):
            """A pass on a day that matters to the next renewing service (its reminder, window,
            retries, expiry), or `days` later when that day is past."""
            from webapp.renewals.engine import run_renewals
            from webapp.renewals.models import Service, ServiceStatus

            soonest = db.session.scalar(
                select(db.func.min(Service.expires_at)).where(
                    Service.status == ServiceStatus.ACTIVE,
                    Service.auto_renew,
                    Service.expires_at > self.now,
                )
            )
            day = soonest - timedelta(days=before) if soonest else None
            self.now = day if day and day > self.now else self.now + timedelta(days=days)
            run_renewals(self.now)
            db.session.expire_all()
            new = db.session.scalars(select(Payment).where(Payment.id > self.seen_payment)).all()
            inv.check_charges_announced(new)

        def _payments(self):
            return db.session.scalars(
                select(Payment)
                .where(Payment.status == PaymentStatus.SUCCEEDED)
                .where(Payment.refunded_cents < Payment.amount_cents)
                .order_by(Payment.id)
            ).all()

        @rule(pick=st.integers(0, 50), share=st.sampled_from([None, 1, 3, 50]))
        def refund(self, pick, share):
            from webapp.errors import DomainError
            from webapp.payments.refunds import execute_refund, refund_payment

            payments = [p for p in self._payments() if p.gateway_ref]  # transfers: by transfer
            if not payments:
                return
            payment = payments[pick % len(payments)]
            left = payment.amount_cents - payment.refunded_cents
            amount = left if share is None else max(1, left * share // 100)
            try:
                row = refund_payment(
                    payment, amount, kind=RefundKind.OPERATOR, reason="prova", now=self.now
                )
            except DomainError:
                db.session.rollback()
                raise
            db.session.commit()
            execute_refund(row, self.now)
            db.session.commit()

        @rule(pick=st.integers(0, 50))
        def withdraw(self, pick):
            from webapp.payments.refunds import execute_refund
            from webapp.payments.withdrawal import withdraw, withdrawal_refusal

            orders = db.session.scalars(
                select(Order).where(
                    Order.kind == OrderKind.PURCHASE, Order.status == OrderStatus.PAID
                )
            ).all()
            if not orders:
                return
            order = orders[pick % len(orders)]
            expected = inv.withdrawal_expected(order, self.buyers[order.id], self.now)
            allowed = withdrawal_refusal(order, self.customer, self.now) is None
            assert allowed == expected, f"order {order.id}: recesso {allowed}, expected {expected}"
            if allowed:
                row = withdraw(order, self.customer, self.now)
                db.session.commit()
                execute_refund(row, self.now)
                db.session.commit()

        @rule(sku=st.sampled_from(SKUS[:2]), cents=st.integers(100, 3000), ahead=st.integers(0, 60))
        def price_change(self, sku, cents, ahead):
            product = self._product(sku)
            day = rome_date(self.now) + timedelta(days=ahead)
            if db.session.scalar(
                select(ProductPrice.id).where(
                    ProductPrice.product_id == product.id, ProductPrice.effective_from == day
                )
            ):
                return
            db.session.add(
                ProductPrice(product_id=product.id, yearly_price_cents=cents, effective_from=day)
            )
            db.session.commit()

        @rule(pick=st.integers(0, 50), years=st.integers(1, 5))
        def frequency_change(self, pick, years):
            renewable = self._renewable()
            if not renewable:
                return
            service = renewable[pick % len(renewable)]
            response = self.client.post(
                f"/area-clienti/servizi/{service.id}/frequenza", data={"frequency_years": years}
            )
            assert response.status_code in (200, 422), response.status_code

        def _renewable(self):
            from webapp.renewals.models import Service, ServiceStatus

            services = db.session.scalars(
                select(Service).where(Service.status == ServiceStatus.ACTIVE).order_by(Service.id)
            ).all()
            return [s for s in services if s.renewable]

        @rule(pick=st.integers(0, 50), enabled=st.booleans())
        def auto_renew_switch(self, pick, enabled):
            """Rinnovo automatico off (the reminders then offer "Rinnova ora") or on again."""
            services = self._renewable()
            if not services:
                return
            service = services[pick % len(services)]
            form = {"auto_renew": ["0", "1"] if enabled else ["0"]}
            url = f"/area-clienti/servizi/{service.id}/rinnovo-automatico"
            response = self.client.post(url, data=form)
            assert response.status_code in (200, 422), response.status_code

        @rule(pick=st.integers(0, 50), years=st.integers(1, 3))
        def renew_by_hand(self, pick, years):
            """Rinnova from the customer area, paid by card at once (issue 28): refused before
            the bank when the period is renewed, being charged or out of its window."""
            from webapp.errors import DomainError
            from webapp.payments.payable import payable_order
            from webapp.renewals import manual
            from webapp.shop import cart as shop_cart
            from webapp.shop import checkout

            services = [s for s in self._renewable() if s.product.renewable_by_hand]
            if not services:
                return
            service = services[pick % len(services)]
            try:
                cart = shop_cart.get_or_create_cart(self.customer.id, None)
                manual.add_to_cart(cart, service, years, self.now)
                shop_cart.set_payment_method(cart, PaymentMethod.CARD)
                order = checkout.confirm_order(
                    cart, self.customer.id, cart.checkout_token, True, self.now
                )
                db.session.commit()
                payable_order(order, rome_date(self.now))
            except DomainError as exc:
                db.session.rollback()
                event(f"renewal by hand refused: {type(exc).__name__}")
                return
            event("renewed by hand")
            self.buyers[order.id] = order.buyer["customer_type"]  # a purchase: the recesso
            payment = pay_by_card(order, self.now)
            self.elsewhere[payment.gateway_ref] = payment.amount_cents

        @rule(sku=st.sampled_from(SKUS), wrong=st.sampled_from(["amount", "order", "merchant"]))
        def wrong_answer(self, sku, wrong):
            """The bank's page answers for another amount, order or merchant (issue 29): the
            payment is held ("Da verificare"), nothing is paid, the money taken given back."""
            from webapp.payments import flows
            from webapp.payments.gateway import GatewayStatus, PaymentStatusInfo
            from webapp.payments.models import PaymentChannel
            from webapp.payments.settlement import order_ref

            products = {sku: self._product(sku)}
            method = PaymentMethod.CARD
            order = confirmed_order(self.customer, products, self.now, (sku,), 1, method)
            ref = f"pay_wrong_{secrets.token_hex(4)}"
            db.session.add(
                Payment(
                    order_id=order.id,
                    channel=PaymentChannel.HOSTED_PAGE,
                    amount_cents=order.total_cents,
                    idempotency_key=secrets.token_hex(8),
                    gateway_ref=ref,
                    created_at=self.now,
                )
            )
            db.session.commit()
            taken = order.total_cents + (100 if wrong == "amount" else 0)
            self.fake.verifications[ref] = PaymentStatusInfo(
                ref,
                GatewayStatus.AUTHORISED,
                taken,
                "EUR",
                order_ref(order) if wrong != "order" else "ORD-999999",
                None,
                None,
                self.fake.next_card,
                merchant_id=FAKE_MERCHANT if wrong != "merchant" else "another-shop",
            )
            self.elsewhere[ref] = taken  # what the bank took
            payment = flows.settle_hosted_payment(ref, self.now).payment
            db.session.refresh(order)
            assert payment.status is PaymentStatus.TO_VERIFY, payment.status
            assert order.status is OrderStatus.PENDING_PAYMENT

        @rule(kind=st.sampled_from(KINDS))
        def billing_change(self, kind):
            give_billing(self.customer, kind)
            self.billing = kind

        @invariant()
        def money_is_right(self):
            inv.check_all(self.fake, self.elsewhere)
            last = db.session.scalar(select(db.func.max(Payment.id)))
            self.seen_payment = last or 0

    return MoneyMachine


def test_money_after_the_first_payment_holds_whatever_happens(app, now, monkeypatch):
    machine = machine_for(app, now, monkeypatch)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
