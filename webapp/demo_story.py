"""The demo's story: what `flask seed-demo` adds so that a first `make run` shows the product alive.

The demo customer (Mario Rossi, the README's login) gets a PEC due in 25 days on a card that
expires this month, an SPID due in 10 days whose renewal failed (in the back office's
"Solleciti"), a Conservazione with auto-renewal off, a Firma Digitale order refunded (its credit
note), paid orders with their invoices and a bank-transfer order waiting. Twelve other demo
customers bought over the last 90 days, so the dashboard, the search and the queues have data.

Deterministic (one seeded random generator, every date relative to `now`) and idempotent: it
runs once, when none of its customers exists. Orders are paid through the same functions the
bank's answers and the back office use (`succeed_payment`, `refund_payment`), so services,
invoices and credit notes are what the shop itself would have made; the e-mails they queue are
marked sent (they are history, not news). The cards' tokens are unknown to the mock bank: a
renewal the scheduler tries on them fails, as the SPID's already did.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from stdnum.it import codicefiscale

from webapp.extensions import db
from webapp.money import vat_cents
from webapp.outbox.models import OutboxEmail
from webapp.payments.models import (
    Payment,
    PaymentChannel,
    RefundKind,
    SavedCard,
)
from webapp.payments.refunds import refund_payment, succeed_refund
from webapp.payments.settlement import succeed_payment
from webapp.renewals.models import Renewal, RenewalStatus, Service
from webapp.shop.billing import fix_buyer
from webapp.shop.models import BillingProfile, Customer, CustomerType, PaymentMethod, Product
from webapp.shop.order_models import Order, OrderLine

SALES_DAYS = 90
SEED = 26  # the generator's seed: the same story on every machine
PASSWORD = "demo12345"  # nosec B105 # demo data: seed-demo refuses outside development
STAFF = "operatore@pecshop.test"
OTHERS = [
    ("Giulia", "Bianchi", "Torino", "TO", "10121"),
    ("Luca", "Ferrari", "Bologna", "BO", "40121"),
    ("Francesca", "Russo", "Napoli", "NA", "80121"),
    ("Marco", "Romano", "Roma", "RM", "00184"),
    ("Chiara", "Colombo", "Monza", "MB", "20900"),
    ("Alessandro", "Ricci", "Firenze", "FI", "50122"),
    ("Sara", "Marino", "Bari", "BA", "70121"),
    ("Davide", "Greco", "Palermo", "PA", "90133"),
    ("Elena", "Bruno", "Genova", "GE", "16121"),
    ("Paolo", "Gallo", "Verona", "VR", "37121"),
    ("Anna", "Conti", "Padova", "PD", "35121"),
    ("Stefano", "De Luca", "Bergamo", "BG", "24121"),
]
# What the others buy, with weights: mostly PEC, some of everything.
BASKET = [("PEC-STD", 6), ("PEC-PRO", 3), ("SPID-PF", 4), ("FIRMA-R", 2), ("MARCHE-50", 2)]
BASKET += [("CONS-1", 1), ("FPA-100", 1), ("PEC-PROMO", 2)]

Event = tuple[datetime, Callable[[datetime], None]]


def other_email(index: int) -> str:
    return f"cliente{index + 1:02d}@demo.pecshop.test"


def tax_code(first: str, last: str, index: int) -> str:
    """A well-formed codice fiscale (the SdI sandbox refuses a wrong check character)."""
    letters = "".join(c for c in (last + first).upper() if c.isalpha()).ljust(6, "X")[:6]
    body = f"{letters}{80 + index % 15}{'ABCDEHLMPRST'[index % 12]}{10 + index:02d}F205"
    return body + codicefiscale.calc_check_digit(body)


def seed_story(now: datetime, demo: Customer) -> bool:
    """Add the story once (False when it is already there); flushes, the caller commits."""
    if db.session.scalar(select(Customer.id).where(Customer.email == other_email(0))):
        return False
    products = {p.sku: p for p in db.session.scalars(select(Product))}
    first_mail = db.session.scalar(select(func.max(OutboxEmail.id))) or 0
    events = demo_events(now, demo, products) if not _has_orders(demo) else []
    events += sales_events(now, _other_customers(now), products)
    for when, happen in sorted(events, key=lambda event: event[0]):
        happen(when)
    db.session.flush()
    db.session.execute(
        update(OutboxEmail)
        .where(OutboxEmail.id > first_mail, OutboxEmail.sent_at.is_(None))
        .values(sent_at=now, next_attempt_at=now)
    )
    return True


def _has_orders(customer: Customer) -> bool:
    return db.session.scalar(select(Order.id).where(Order.customer_id == customer.id)) is not None


def _other_customers(now: datetime) -> list[Customer]:
    customers = []
    for index, (first, last, city, province, cap) in enumerate(OTHERS):
        code = tax_code(first, last, index)
        customer = Customer(
            email=other_email(index),
            name=f"{first} {last}",
            tax_code=code,
            created_at=now - timedelta(days=SALES_DAYS + 5 + index),
            email_confirmed_at=now - timedelta(days=SALES_DAYS + 5 + index),
        )
        customer.set_password(PASSWORD)
        db.session.add(customer)
        db.session.flush()
        db.session.add(
            BillingProfile(
                customer_id=customer.id,
                customer_type=CustomerType.PRIVATE,
                first_name=first,
                last_name=last,
                tax_code=code,
                address=f"Via Roma {index + 1}",
                postal_code=cap,
                city=city,
                province=province,
                country="IT",
            )
        )
        customers.append(customer)
    db.session.flush()
    return customers


def card_for(customer: Customer, last4: str, brand: str, month: int, year: int) -> SavedCard:
    card = SavedCard(
        customer_id=customer.id,
        gateway_token=f"demo-tok-{customer.id}-{last4}",
        brand=brand,
        last4=last4,
        exp_month=month,
        exp_year=year,
        holder=customer.name,
    )
    db.session.add(card)
    db.session.flush()
    return card


def new_order(
    customer: Customer, lines: list[tuple[Product, int]], method: PaymentMethod, when: datetime
) -> Order:
    """An order as the checkout confirms it: list prices, VAT on the total, the buyer copied."""
    net = sum(product.yearly_price_cents * years for product, years in lines)
    order = Order(
        customer_id=customer.id,
        payment_method=method,
        subtotal_cents=net,
        net_cents=net,
        vat_cents=vat_cents(net),
        total_cents=net + vat_cents(net),
        created_at=when,
    )
    for product, years in lines:
        order.lines.append(
            OrderLine(
                product_id=product.id,
                product_name=product.name,
                kind=product.kind,
                years=years,
                yearly_price_cents=product.yearly_price_cents,
                list_cents=product.yearly_price_cents * years,
                net_cents=product.yearly_price_cents * years,
                auto_renew=method is PaymentMethod.CARD and product.auto_renewable,
            )
        )
    fix_buyer(order, customer)
    db.session.add(order)
    db.session.flush()
    return order


def pay_by_card(order: Order, card: SavedCard, when: datetime) -> Payment:
    """The bank's page captured it: the order is paid (services, invoice) as the shop does."""
    payment = Payment(
        order_id=order.id,
        channel=PaymentChannel.HOSTED_PAGE,
        amount_cents=order.total_cents,
        idempotency_key=f"demo-hosted-{order.id}",
        gateway_ref=f"demo-pay-{order.id}",
        saved_card_id=card.id,
        created_at=when - timedelta(minutes=3),
    )
    db.session.add(payment)
    db.session.flush()
    succeed_payment(payment, card, when)
    return payment


def pay_by_transfer(order: Order, when: datetime) -> Payment:
    """A bonifico recorded by the back office: the order is paid like any other."""
    payment = Payment(
        order_id=order.id,
        channel=PaymentChannel.BANK_TRANSFER,
        amount_cents=order.total_cents,
        idempotency_key=f"demo-transfer-{order.id}",
        transfer_reference=f"DEMOCRO{order.id:08d}",
        value_date=when.date(),
        recorded_by=STAFF,
        created_at=when,
    )
    db.session.add(payment)
    db.session.flush()
    succeed_payment(payment, None, when)
    return payment


def refund_in_full(payment: Payment, reason: str, when: datetime) -> None:
    """An operator's refund the bank confirmed: services stopped, credit note, as the shop does."""
    refund = refund_payment(
        payment,
        payment.amount_cents - payment.refunded_cents,
        kind=RefundKind.OPERATOR,
        reason=reason,
        now=when,
        requested_by=STAFF,
        idempotency_key=f"demo-refund-{payment.id}",
    )
    succeed_refund(refund, f"demo-refund-{payment.id}", when)


def service_of(order: Order) -> Service:
    return db.session.scalar(select(Service).where(Service.order_line_id == order.lines[0].id))


def demo_events(now: datetime, demo: Customer, products: dict[str, Product]) -> list[Event]:
    """Mario Rossi's year: what the customer area and the back office show for him."""
    expiring = card_for(demo, "4242", "visa", now.month, now.year)  # expires this month
    later = now + timedelta(days=800)
    mastercard = card_for(demo, "4444", "mastercard", later.month, later.year)

    def pec(when: datetime) -> None:  # due in 25 days, auto-renewal on the expiring card
        pay_by_card(
            new_order(demo, [(products["PEC-STD"], 1)], PaymentMethod.CARD, when), expiring, when
        )

    def spid(when: datetime) -> None:  # due in 10 days: its renewal failed, in dunning
        order = new_order(demo, [(products["SPID-PF"], 1)], PaymentMethod.CARD, when)
        pay_by_card(order, mastercard, when)
        failed_renewal(service_of(order), now)

    def conservazione(when: datetime) -> None:  # auto-renewal turned off by the customer
        order = new_order(demo, [(products["CONS-1"], 1)], PaymentMethod.CARD, when)
        pay_by_card(order, mastercard, when)
        service_of(order).auto_renew = False

    def firma(when: datetime) -> None:  # bought and refunded: a credit note
        lines = [(products["FIRMA-R"], 1), (products["MARCHE-50"], 1)]
        payment = pay_by_card(new_order(demo, lines, PaymentMethod.CARD, when), mastercard, when)
        refund_in_full(payment, "Acquisto doppio: rimborso concordato", when + timedelta(days=2))

    def transfer(when: datetime) -> None:  # waiting for the customer's bonifico
        new_order(demo, [(products["PEC-PRO"], 1)], PaymentMethod.BANK_TRANSFER, when)

    days = [(340, pec), (355, spid), (200, conservazione), (60, firma), (2, transfer)]
    return [(now - timedelta(days=d, hours=3), event) for d, event in days]


def failed_renewal(service: Service, now: datetime) -> None:
    """The renewal window's first charge was declined; the next retry is 5 days before expiry."""
    db.session.add(
        Renewal(
            service_id=service.id,
            period_expires_at=service.expires_at,
            status=RenewalStatus.FAILED,
            attempts=1,
            last_attempt_at=now - timedelta(days=4),
            next_attempt_at=service.expires_at - timedelta(days=5),
            failure_code="insufficient_funds",
            failure_reason="Fondi insufficienti",
            created_at=now - timedelta(days=4),
        )
    )
    db.session.flush()


def sales_events(now: datetime, customers: list[Customer], products: dict) -> list[Event]:
    """About 90 orders over 90 days: cards mostly, some transfers, two still waiting."""
    rng = random.Random(SEED)
    skus = [sku for sku, weight in BASKET for _ in range(weight)]
    cards = {}
    for index, customer in enumerate(customers):
        year = now.year + 1 + index % 3
        cards[customer.id] = card_for(
            customer, f"{1000 + index * 7:04d}", "visa", 1 + index % 12, year
        )
    events: list[Event] = []
    for day in range(SALES_DAYS, 0, -1):
        for _ in range(rng.choice((0, 1, 1, 1, 2))):
            customer = rng.choice(customers)
            picked = sorted({rng.choice(skus) for _ in range(rng.choice((1, 1, 2)))})
            lines = [(products[sku], rng.choice((1, 1, 1, 2, 3))) for sku in picked]
            lines = [(p, 1 if not p.auto_renewable or p.promotional else y) for p, y in lines]
            transfer = rng.random() < 0.15
            when = now - timedelta(days=day, minutes=rng.randrange(8 * 60, 20 * 60))
            events += _sale(customer, lines, cards[customer.id], transfer, when, day > 3)
    return events


def _sale(customer, lines, card, transfer: bool, when: datetime, arrived: bool) -> list[Event]:
    """The order; paid at once by card, or two days later by a transfer (if it has arrived)."""
    made: list[Order] = []

    def order(at: datetime) -> None:
        method = PaymentMethod.BANK_TRANSFER if transfer else PaymentMethod.CARD
        made.append(new_order(customer, lines, method, at))
        if not transfer:
            pay_by_card(made[0], card, at)

    def transfer_arrives(at: datetime) -> None:
        pay_by_transfer(made[0], at)

    events: list[Event] = [(when, order)]
    if transfer and arrived:  # the transfers of the last three days are still on their way
        events.append((when + timedelta(days=2), transfer_arrives))
    return events
