"""Twins over real HTTP: every money or state action fired 8 times at the same instant.

The shop runs under gunicorn (3 workers x 4 threads) on a scratch PostgreSQL database, the
mock bank as its own process on another; customers are `requests` sessions that log in through
the form (CSRF on). Each action is sent by 8 threads released together by a barrier, each with
its own copy of the customer's cookies. Then the databases are counted: one order, one charge at
the bank, one redemption, one e-mail, one extension; no answer is a 5xx, and every twin lands on
the same outcome (the paid order page, or the same fragment), never on a contradiction.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from sqlalchemy import func, insert, select
from werkzeug.security import generate_password_hash

from tests.reliability.conftest import (
    GOOD_PAN,
    MERCHANT,
    PG,
    System,
    requires_postgres,
    scratch_databases,
)
from tests.reliability.twins import (
    TALLY,
    TWINS,
    Answer,
    BankPage,
    Browser,
    ShopServer,
    assert_no_5xx,
    fire,
    get,
    post,
    signed_notification,
    twins_of,
)
from webapp.clock import add_years, now_utc, rome_date
from webapp.renewals.scheduler import parse_as_of

pytestmark = [pytest.mark.reliability, requires_postgres]

PASSWORD = "twins-password-1"
POOR_PAN = "4000000000009995"  # insufficient funds for any amount > 0 (verification passes)
PAID_MESSAGES = {
    "Pagamento riuscito: grazie! Ti abbiamo inviato una e-mail di conferma.",
    "Questo ordine risulta già pagato.",
}


class TwinWorld:
    """The shared servers and databases, and what the tests seed and count through them."""

    def __init__(self, system: System, shop: ShopServer):
        self.system = system
        self.shop = shop
        self.url = shop.url
        self.browsers: list[Browser] = []

    # --- seeding
    def customer(self) -> tuple[int, str]:
        """A fresh customer (id, e-mail), inserted directly: logging in is over HTTP."""
        from tests.conftest import add_private_billing
        from webapp.extensions import db
        from webapp.shop.models import Customer

        email = f"twin-{uuid.uuid4().hex[:10]}@example.it"
        customer = Customer(
            email=email,
            name="Mario Gemelli",
            tax_code="RSSMRA85T10A562S",
            password_hash=generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"),
            email_confirmed_at=now_utc(),
        )
        db.session.add(customer)
        db.session.flush()
        add_private_billing(customer)  # the checkout asks for billing data first
        db.session.commit()
        return customer.id, email

    def browser(self, email: str) -> Browser:
        browser = Browser(self.url).login(email, PASSWORD)
        self.browsers.append(browser)
        return browser

    def card(self, customer_id: int, pan: str = GOOD_PAN) -> int:
        """A saved card on the portal, and its token at the bank."""
        from webapp.bank.extensions import db as bank_db
        from webapp.bank.models import Card
        from webapp.extensions import db
        from webapp.payments.models import SavedCard

        token = f"tok_twin_{uuid.uuid4().hex[:12]}"
        year = now_utc().year + 4
        card = SavedCard(
            customer_id=customer_id,
            gateway_token=token,
            brand="visa",
            last4=pan[-4:],
            exp_month=12,
            exp_year=year,
            holder="Mario Gemelli",
        )
        db.session.add(card)
        db.session.commit()
        with self.system.bank_app.app_context():
            bank_db.session.execute(
                insert(Card),
                [
                    dict(
                        token=token,
                        pan=pan,
                        brand="visa",
                        last4=pan[-4:],
                        exp_month=12,
                        exp_year=year,
                        holder="Mario Gemelli",
                        created_at=now_utc(),
                    )
                ],
            )
            bank_db.session.commit()
            bank_db.session.remove()
        return card.id

    def product_id(self, sku: str) -> int:
        from webapp.extensions import db
        from webapp.shop.models import Product

        return db.session.scalar(select(Product.id).where(Product.sku == sku))

    def fill_cart(self, browser: Browser, skus: list[str], code: str | None = None) -> None:
        """Products in the cart, paid by card, with a codice sconto: through the pages."""
        for sku in skus:
            response = browser.post(f"/carrello/aggiungi/{self.product_id(sku)}", htmx=True)
            assert response.status_code == 200, response.text[:300]
        response = browser.post("/checkout/metodo", {"payment_method": "card"}, htmx=True)
        assert response.status_code == 200, response.text[:300]
        if code:
            response = browser.post("/checkout/sconto", {"code": code}, htmx=True)
            assert response.status_code == 200, response.text[:300]

    def order(self, browser: Browser, skus: list[str]) -> int:
        """An order waiting for payment, confirmed through the checkout page."""
        self.fill_cart(browser, skus)
        token = browser.token_of("/checkout", "checkout_token")
        response = browser.post("/checkout/conferma", {"checkout_token": token, "terms": "1"})
        assert response.status_code == 303, response.text[:300]
        return int(urlsplit(response.headers["Location"]).path.rsplit("/", 1)[1])

    # --- counting
    def shop_rows(self, stmt) -> list:
        from webapp.extensions import db

        db.session.rollback()  # a fresh snapshot: gunicorn's workers write
        return list(db.session.execute(stmt).all())

    def count(self, stmt) -> int:
        return self.system.shop_count(stmt)

    def emails(self, to: str) -> list[tuple[str | None, str]]:
        """(dedupe key, subject) of every e-mail queued for this address."""
        from webapp.outbox.models import OutboxEmail

        return [
            (key, subject)
            for key, subject in self.shop_rows(
                select(OutboxEmail.dedupe_key, OutboxEmail.subject)
                .where(OutboxEmail.to_addr == to)
                .order_by(OutboxEmail.id)
            )
        ]

    def at_bank(self, order_id: int) -> dict[str, list]:
        """What the bank holds for the order: charges, captured hosted payments, refunds."""
        from webapp.bank.extensions import db as bank_db
        from webapp.bank.models import Charge, Payment, PaymentStatus, Refund

        ref = f"ORD-{order_id}"
        with self.system.bank_app.app_context():
            charges = bank_db.session.execute(
                select(Charge.id, Charge.status, Charge.amount_cents).where(Charge.order_ref == ref)
            ).all()
            captures = bank_db.session.execute(
                select(Payment.id, Payment.amount_cents).where(
                    Payment.order_ref == ref, Payment.status == PaymentStatus.AUTHORISED
                )
            ).all()
            ids = [c.id for c in charges] + [p.id for p in captures]
            refunds = bank_db.session.execute(
                select(Refund.id, Refund.amount_cents).where(
                    Refund.charge_id.in_(ids) | Refund.payment_id.in_(ids)
                )
            ).all()
            bank_db.session.remove()
        return {
            "charges": [(str(s), a) for _, s, a in charges],
            "succeeded": [a for _, s, a in charges if str(s) == "succeeded"],
            "captures": [a for _, a in captures],
            "refunds": [a for _, a in refunds],
        }

    def bank_pages(self, order_id: int) -> list[tuple[str, str | None]]:
        """(status, decline code) of each of the order's hosted payments at the bank."""
        from webapp.bank.extensions import db as bank_db
        from webapp.bank.models import Payment

        with self.system.bank_app.app_context():
            rows = bank_db.session.execute(
                select(Payment.status, Payment.decline_code)
                .where(Payment.order_ref == f"ORD-{order_id}")
                .order_by(Payment.created_at)
            ).all()
            bank_db.session.remove()
        return [(str(status), code) for status, code in rows]

    def payments(self, order_id: int) -> Counter:
        from webapp.payments.models import Payment

        return Counter(
            (str(channel), str(status))
            for channel, status in self.shop_rows(
                select(Payment.channel, Payment.status).where(Payment.order_id == order_id)
            )
        )

    def order_status(self, order_id: int) -> str:
        from webapp.shop.order_models import Order

        [(status,)] = self.shop_rows(select(Order.status).where(Order.id == order_id))
        return str(status)

    def services_of(self, order_id: int) -> int:
        from webapp.renewals.models import Service
        from webapp.shop.order_models import OrderLine

        return self.count(
            select(func.count(Service.id))
            .join(OrderLine, OrderLine.id == Service.order_line_id)
            .where(OrderLine.order_id == order_id)
        )

    def total(self, order_id: int) -> int:
        from webapp.shop.order_models import Order

        [(total,)] = self.shop_rows(select(Order.total_cents).where(Order.id == order_id))
        return total

    def note(self, action: str, answers: list[Answer], **figures: object) -> None:
        statuses = dict(sorted(Counter(a.status for a in answers).items()))
        extra = ", ".join(f"{k} {v}" for k, v in figures.items())
        TALLY.lines.append(f"[twins] {action}: {len(answers)} twins, answers {statuses}; {extra}")

    def close(self) -> None:
        for browser in self.browsers:
            browser.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One gunicorn shop and one bank process for the module, on scratch PostgreSQL databases."""
    if not PG:
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL=postgresql+psycopg://...)")
    from webapp.demo import seed
    from webapp.extensions import db

    folder = tmp_path_factory.mktemp("twins")
    with scratch_databases("shop", "bank") as (shop_url, bank_url):
        system = System(shop_url, bank_url, folder)
        with system.app.app_context():
            db.create_all()
            seed(now_utc())
            db.session.commit()
            system.bank.start()
            shop = ShopServer(shop_url, system.bank.url, folder / "gunicorn.log")
            twin_world = TwinWorld(system, shop)
            try:
                shop.start()
                yield twin_world
                _tally_bank(system)
            finally:
                twin_world.close()
                shop.stop()
                system.close()
        errors = shop.errors_in_log()
        assert not errors, "gunicorn logged errors:\n" + "\n".join(errors[:20])


def _tally_bank(system: System) -> None:
    from webapp.bank.extensions import db as bank_db
    from webapp.bank.models import Charge, Payment, PaymentStatus, Refund
    from webapp.outbox.models import OutboxEmail

    with system.bank_app.app_context():
        TALLY.charges += bank_db.session.scalar(select(func.count(Charge.id)))
        TALLY.hosted_captures += bank_db.session.scalar(
            select(func.count(Payment.id)).where(
                Payment.status == PaymentStatus.AUTHORISED, Payment.amount_cents > 0
            )
        )
        TALLY.refunds += bank_db.session.scalar(select(func.count(Refund.id)))
        bank_db.session.remove()
    TALLY.emails += system.shop_count(select(func.count(OutboxEmail.id)))


def assert_landed_paid(answers: list[Answer], order_id: int) -> None:
    """Every twin was sent to the paid order's page and told it is paid: nothing else."""
    assert {a.status for a in answers} == {303}, [(a.status, a.text[:200]) for a in answers]
    assert {a.target for a in answers} == {f"/ordini/{order_id}"}
    assert {a.landed for a in answers} == {f"/ordini/{order_id}"}
    told = {message for a in answers for _, message in a.flashes}
    assert told and told <= PAID_MESSAGES, told


# --- 1. Conferma e completa l'ordine --------------------------------------------------------------


def test_confirm_twins_make_one_order(world):
    from webapp.shop.order_models import Order

    customer_id, email = world.customer()
    browser = world.browser(email)
    world.fill_cart(browser, ["PEC-STD", "SPID-PF"])
    token = browser.token_of("/checkout", "checkout_token")
    form = {"csrf_token": browser.csrf, "checkout_token": token, "terms": "1"}

    answers = fire(twins_of(browser, post(world.url + "/checkout/conferma", form)), world.url)

    assert_no_5xx(answers)
    orders = world.shop_rows(select(Order.id).where(Order.customer_id == customer_id))
    assert len(orders) == 1, orders
    [(order_id,)] = orders
    assert {(a.status, a.target, a.landed) for a in answers} == {
        (303, f"/ordini/{order_id}", f"/ordini/{order_id}")
    }
    assert world.order_status(order_id) == "pending_payment"
    world.note("Conferma e completa l'ordine", answers, orders=len(orders))


# --- 2. Paga ora su server sicuro, no saved card -----------------------------------------------


def test_pay_now_twins_reuse_one_hosted_payment(world):
    _, email = world.customer()
    browser = world.browser(email)
    order_id = world.order(browser, ["PEC-STD"])

    form = {"csrf_token": browser.csrf}
    answers = fire(twins_of(browser, post(f"{world.url}/ordini/{order_id}/paga", form)))

    assert_no_5xx(answers)
    assert {a.status for a in answers} == {303}
    targets = {a.location for a in answers}
    assert len(targets) == 1, f"{len(targets)} different bank pages: {targets}"
    [bank_page] = targets
    assert bank_page.startswith(world.system.bank.url + "/pay/")
    assert world.payments(order_id) == {("hosted_page", "pending"): 1}
    bank = world.at_bank(order_id)
    assert bank["captures"] == [] and bank["charges"] == []

    # The one page is paid, the customer comes back: paid once.
    page = BankPage()
    back = page.pay(bank_page)
    page.close()
    response = browser.http.get(back, allow_redirects=False, timeout=30)
    assert response.status_code == 303
    assert world.order_status(order_id) == "paid"
    assert world.at_bank(order_id)["captures"] == [world.total(order_id)]
    world.note("Paga ora su server sicuro", answers, bank_pages=len(targets))


# --- 3. and 4. Procedi with a saved card ---------------------------------------------------------


def _pay_by_saved_card(world, browser: Browser, order_id: int, card_id: int, attempts: list[str]):
    """Procedi on the portal from one window per attempt token, all at the same instant."""
    url = f"{world.url}/portale-pagamenti/ordini/{order_id}/procedi"
    total = str(world.total(order_id))
    sends = []
    for i in range(TWINS):
        form = {
            "csrf_token": browser.csrf,
            "choice": str(card_id),
            "attempt": attempts[i % len(attempts)],
            "amount_cents": total,
        }
        sends.append((browser.twin_session, post(url, form)))
    return fire(sends, world.url)


def _assert_paid_once_by_card(world, email: str, order_id: int, services: int) -> dict:
    bank = world.at_bank(order_id)
    total = world.total(order_id)
    assert bank["succeeded"] == [total], f"charges at the bank: {bank['charges']}"
    assert bank["captures"] == [] and bank["refunds"] == []
    assert world.payments(order_id) == {("saved_card", "succeeded"): 1}
    assert world.order_status(order_id) == "paid"
    assert world.services_of(order_id) == services
    mails = world.emails(email)
    assert [k for k, _ in mails] == [f"order-paid-{order_id}"], mails
    return bank


def test_procedi_twins_of_one_form_charge_the_card_once(world):
    customer_id, email = world.customer()
    card_id = world.card(customer_id)
    browser = world.browser(email)
    order_id = world.order(browser, ["PEC-STD", "FIRMA-R"])
    attempt = browser.token_of(f"/portale-pagamenti/ordini/{order_id}", "attempt")

    answers = _pay_by_saved_card(world, browser, order_id, card_id, [attempt])

    assert_no_5xx(answers)
    assert_landed_paid(answers, order_id)
    bank = _assert_paid_once_by_card(world, email, order_id, services=2)
    world.note("Procedi, same form", answers, charges=len(bank["charges"]))


def test_procedi_from_two_tabs_charges_the_card_once(world):
    customer_id, email = world.customer()
    card_id = world.card(customer_id)
    browser = world.browser(email)
    order_id = world.order(browser, ["SPID-PF"])
    portal = f"/portale-pagamenti/ordini/{order_id}"
    tabs = [browser.token_of(portal, "attempt"), browser.token_of(portal, "attempt")]
    assert tabs[0] != tabs[1]

    answers = _pay_by_saved_card(world, browser, order_id, card_id, tabs)

    assert_no_5xx(answers)
    assert_landed_paid(answers, order_id)
    bank = _assert_paid_once_by_card(world, email, order_id, services=1)
    world.note("Procedi, two tabs", answers, charges=len(bank["charges"]))


# --- 5. The bank's return and notification together ----------------------------------------------


def _hosted_page(
    world, browser: Browser, order_id: int, number: str = "4242424242424242"
) -> tuple[str, dict]:
    """Paga ora with no saved card: the bank's page paid; its return URL and parameters."""
    response = browser.post(f"/ordini/{order_id}/paga")
    assert response.status_code == 303, response.text[:300]
    page = BankPage()
    back = page.pay(response.headers["Location"], number)
    page.close()
    return back, dict(parse_qsl(urlsplit(back).query))


def _notification(world, order_id: int, params: dict):
    body = {
        "payment_id": params["payment_id"],
        "order_ref": f"ORD-{order_id}",
        "status": "authorised",
        "amount_cents": world.total(order_id),
        "currency": "EUR",
    }

    def send(session: requests.Session) -> requests.Response:
        url, raw, headers = signed_notification(world.url, body)
        return session.post(url, data=raw, headers=headers, timeout=30, allow_redirects=False)

    return send


def test_return_and_notification_together_pay_once(world):
    from webapp.payments.models import SavedCard

    customer_id, email = world.customer()
    browser = world.browser(email)
    order_id = world.order(browser, ["PEC-PRO"])
    back, params = _hosted_page(world, browser, order_id)

    half = TWINS // 2
    sends = [(browser.twin_session, get(back))] * half
    sends += [(requests.Session, _notification(world, order_id, params))] * (TWINS - half)
    answers = fire(sends, world.url)

    assert_no_5xx(answers)
    returns, notes = answers[:half], answers[half:]
    assert_landed_paid(returns, order_id)
    assert {(a.status, a.text.strip()) for a in notes} == {(200, '{"ok":true}')}
    assert world.payments(order_id) == {("hosted_page", "succeeded"): 1}
    assert world.order_status(order_id) == "paid"
    assert world.services_of(order_id) == 1
    bank = world.at_bank(order_id)
    assert bank["captures"] == [world.total(order_id)] and bank["refunds"] == []
    assert [k for k, _ in world.emails(email)] == [f"order-paid-{order_id}"]
    cards = world.count(
        select(func.count(SavedCard.id)).where(SavedCard.customer_id == customer_id)
    )
    assert cards == 1, "the card was saved more than once"
    world.note("Return + notification", answers, captures=len(bank["captures"]))


def test_return_and_notification_of_a_wrong_answer_hold_once_and_refund_once(world):
    """The bank's page answers another amount (test card 0101): whatever arrives first, the
    payment is held once ("Da verificare"), never paid, and the money taken refunded once."""
    customer_id, email = world.customer()
    browser = world.browser(email)
    order_id = world.order(browser, ["PEC-PRO"])
    back, params = _hosted_page(world, browser, order_id, "4000000000000101")

    half = TWINS // 2
    sends = [(browser.twin_session, get(back))] * half
    sends += [(requests.Session, _notification(world, order_id, params))] * (TWINS - half)
    answers = fire(sends, world.url)

    assert_no_5xx(answers)
    assert world.payments(order_id) == {("hosted_page", "to_verify"): 1}
    assert world.order_status(order_id) == "pending_payment"
    assert world.services_of(order_id) == 0
    bank = world.at_bank(order_id)
    taken = world.total(order_id) + 100
    assert bank["captures"] == [taken] and bank["refunds"] == [taken]
    world.note("Wrong answer: return + notification", answers, refunds=len(bank["refunds"]))


def test_send_and_cancel_on_one_bank_page_at_once_end_one_way(world):
    """ "Invio dati" and "Annulla e torna al negozio" on the same bank page at the same instant
    (two tabs, or a click on each before the first answer): the bank's compare-and-set on the
    payment's status lets one of them through. Either the card is charged and the order paid,
    or nothing is taken and the order waits for a new "Paga ora"; never a charge on a cancelled
    payment, never both."""
    _, email = world.customer()
    browser = world.browser(email)
    order_id = world.order(browser, ["PEC-STD"])
    response = browser.post(f"/ordini/{order_id}/paga")
    assert response.status_code == 303, response.text[:300]
    page = BankPage()
    url = page.fill(response.headers["Location"])
    form = {"csrf_token": page.csrf}
    half = TWINS // 2
    sends = [(page.twin_session, post(url + "/confirm", form))] * half
    sends += [(page.twin_session, post(url + "/cancel", form))] * (TWINS - half)
    answers = fire(sends)

    assert_no_5xx(answers)
    assert {a.status for a in answers} == {303}
    [(status, code)] = world.bank_pages(order_id)
    total = world.total(order_id)
    bank = world.at_bank(order_id)
    assert bank["refunds"] == [] and bank["charges"] == []
    back = [a.location for a in answers if "/pagamenti/ritorno" in a.location]
    if status == "authorised":  # "Invio dati" won: every cancel was refused
        assert code is None and bank["captures"] == [total]
        assert back == [], "a cancel answered with the way back after the card was charged"
        back = [page.return_link(url)]  # the result page's "Torna al negozio"
    else:  # "Annulla" won: nothing taken, the order waits for a new "Paga ora"
        assert (status, code) == ("failed", "cancelled") and bank["captures"] == []
        assert len(back) == 1, f"{len(back)} cancels went through"
    page.close()
    returned = browser.http.get(back[0], allow_redirects=False, timeout=30)
    assert returned.status_code == 303
    if status == "authorised":
        assert world.payments(order_id) == {("hosted_page", "succeeded"): 1}
        assert world.order_status(order_id) == "paid"
        assert world.services_of(order_id) == 1
    else:
        assert world.payments(order_id) == {("hosted_page", "failed"): 1}
        assert world.order_status(order_id) == "pending_payment"
        assert world.services_of(order_id) == 0
    world.note("Invio dati + Annulla", answers, bank_status=status)


# --- 6. Cross-path: a hosted page completed after a saved card paid -------------------------------


def test_hosted_page_completed_after_a_saved_card_paid_is_refunded_once(world):
    from webapp.payments.models import Refund

    customer_id, email = world.customer()
    card_id = world.card(customer_id)
    tab_a = world.browser(email)
    order_id = world.order(tab_a, ["PEC-STD"])
    total = world.total(order_id)
    portal = f"/portale-pagamenti/ordini/{order_id}"

    # Session A: "Nuova carta di pagamento", Procedi: off to the bank's page (left open).
    attempt = tab_a.token_of(portal, "attempt")
    response = tab_a.post(
        f"{portal}/procedi",
        {"choice": "new", "attempt": attempt, "amount_cents": str(total)},
    )
    assert response.status_code == 303
    bank_page = response.headers["Location"]
    assert bank_page.startswith(world.system.bank.url + "/pay/")

    # Session B pays with the saved card (its own twins at once).
    tab_b = world.browser(email)
    attempt_b = tab_b.token_of(portal, "attempt")
    paid = _pay_by_saved_card(world, tab_b, order_id, card_id, [attempt_b])
    assert_no_5xx(paid)
    assert_landed_paid(paid, order_id)

    # Session A finishes the bank's page: a second capture; return twins and notifications.
    page = BankPage()
    back = page.pay(bank_page)
    page.close()
    params = dict(parse_qsl(urlsplit(back).query))
    sends = [(tab_a.twin_session, get(back))] * (TWINS - 2)
    sends += [(requests.Session, _notification(world, order_id, params))] * 2
    answers = fire(sends, world.url)

    assert_no_5xx(answers)
    returns = answers[: TWINS - 2]
    assert {(a.status, a.landed) for a in returns} == {(303, f"/ordini/{order_id}")}
    told = {m for a in returns for _, m in a.flashes}
    assert told and all("era già stato pagato" in m for m in told), told
    assert {a.status for a in answers[TWINS - 2 :]} == {200}

    bank = world.at_bank(order_id)
    assert bank["succeeded"] == [total] and bank["captures"] == [total]
    assert bank["refunds"] == [total], f"refunds at the bank: {bank['refunds']}"
    assert world.payments(order_id) == {
        ("saved_card", "succeeded"): 1,
        ("hosted_page", "duplicate"): 1,
    }
    assert world.order_status(order_id) == "paid"
    assert world.services_of(order_id) == 1
    [(refund_id, status, amount)] = world.shop_rows(
        select(Refund.id, Refund.status, Refund.amount_cents)
        .join(Refund.payment)
        .where(Refund.payment.has(order_id=order_id))
    )
    assert (str(status), amount) == ("succeeded", total)
    keys = Counter(k for k, _ in world.emails(email))
    assert keys == {f"order-paid-{order_id}": 1, f"refund-{refund_id}": 1}, keys
    world.note(
        "Cross-path hosted after saved card",
        paid + answers,
        captures=len(bank["succeeded"]) + len(bank["captures"]),
        refunds=len(bank["refunds"]),
    )


# --- 7. A once-per-customer codice sconto from two sessions ---------------------------------------


def test_once_per_customer_code_from_two_sessions_is_redeemed_once(world):
    from webapp.shop.models import DiscountCode
    from webapp.shop.order_models import DiscountRedemption, Order

    customer_id, email = world.customer()
    first, second = world.browser(email), world.browser(email)
    world.fill_cart(first, ["PEC-PRO"], code="BENVENUTO10")
    response = second.post("/checkout/sconto", {"code": "BENVENUTO10"}, htmx=True)
    assert response.status_code == 200, response.text[:300]
    [(uses_before,)] = world.shop_rows(
        select(DiscountCode.uses).where(DiscountCode.code == "BENVENUTO10")
    )
    tokens = {b.token_of("/checkout", "checkout_token") for b in (first, second)}
    assert len(tokens) == 1  # one cart per customer: both sessions confirm the same form
    [token] = tokens

    sends = []
    for i in range(TWINS):
        browser = (first, second)[i % 2]
        form = {"csrf_token": browser.csrf, "checkout_token": token, "terms": "1"}
        sends.append((browser.twin_session, post(world.url + "/checkout/conferma", form)))
    answers = fire(sends, world.url)

    assert_no_5xx(answers)
    orders = world.shop_rows(
        select(Order.id, Order.discount_code, Order.discount_cents).where(
            Order.customer_id == customer_id
        )
    )
    assert len(orders) == 1, orders
    [(order_id, code, discount)] = orders
    assert code == "BENVENUTO10" and discount > 0
    assert {(a.status, a.landed) for a in answers} == {(303, f"/ordini/{order_id}")}
    redemptions = world.count(
        select(func.count(DiscountRedemption.id)).where(
            DiscountRedemption.customer_id == customer_id
        )
    )
    assert redemptions == 1
    [(uses_after,)] = world.shop_rows(
        select(DiscountCode.uses).where(DiscountCode.code == "BENVENUTO10")
    )
    assert uses_after == uses_before + 1
    world.note("Codice sconto once per customer", answers, redemptions=redemptions)


# --- 8. Rinnovo automatico switch and Frequenza di rinnovo ----------------------------------------


def _service(world, customer_id: int, card_id: int, sku: str, expires_at, auto_renew=True) -> int:
    """A paid order's service, seeded directly (with its order and line)."""
    from webapp.extensions import db
    from webapp.renewals.models import Service
    from webapp.shop.models import PaymentMethod, Product
    from webapp.shop.order_models import Order, OrderKind, OrderLine, OrderStatus

    product = db.session.scalar(select(Product).where(Product.sku == sku))
    net = product.yearly_price_cents
    started = add_years(expires_at, -1)
    order = Order(
        customer_id=customer_id,
        kind=OrderKind.PURCHASE,
        status=OrderStatus.PAID,
        payment_method=PaymentMethod.CARD,
        subtotal_cents=net,
        discount_cents=0,
        net_cents=net,
        vat_cents=round(net * 22 / 100),
        total_cents=net + round(net * 22 / 100),
        created_at=started,
        paid_at=started,
    )
    order.lines.append(
        OrderLine(
            product_id=product.id,
            product_name=product.name,
            kind=product.kind,
            years=1,
            yearly_price_cents=net,
            list_cents=net,
            discount_cents=0,
            net_cents=net,
            auto_renew=True,
        )
    )
    db.session.add(order)
    db.session.flush()
    service = Service(
        customer_id=customer_id,
        product_id=product.id,
        order_line_id=order.lines[0].id,
        started_at=started,
        expires_at=expires_at,
        auto_renew=auto_renew,
        frequency_years=1,
        saved_card_id=card_id,
    )
    db.session.add(service)
    db.session.commit()
    return service.id


def test_auto_renew_switch_and_frequency_twins_change_once(world):
    from webapp.renewals.models import Service

    customer_id, email = world.customer()
    card_id = world.card(customer_id)
    service_id = _service(world, customer_id, card_id, "PEC-STD", now_utc() + timedelta(days=200))
    browser = world.browser(email)
    browser.get("/area-clienti/")
    hx = {"HX-Request": "true", "X-CSRFToken": browser.csrf}
    switch = f"{world.url}/area-clienti/servizi/{service_id}/rinnovo-automatico"

    def state() -> tuple:
        [row] = world.shop_rows(
            select(Service.auto_renew, Service.frequency_years).where(Service.id == service_id)
        )
        return tuple(row)

    seen = []
    for wanted, values, word in ((False, ["0"], "disattivato"), (True, ["0", "1"], "attivato")):
        form = {"csrf_token": browser.csrf, "auto_renew": values}
        answers = fire(twins_of(browser, post(switch, form, headers=hx)))
        assert_no_5xx(answers)
        assert {a.status for a in answers} == {200}
        on_off = "on" if wanted else "off"
        assert all(f'data-auto-renew="{on_off}"' in a.text for a in answers)
        assert all(
            f'id="service-{service_id}"' in a.text and "<html" not in a.text for a in answers
        )
        told = Counter(
            "changed" if "Ti abbiamo inviato una e-mail" in a.text else "already"
            for a in answers
            if f"era già {word}" in a.text or f"automatico {word}." in a.text
        )
        assert told == {"changed": 1, "already": TWINS - 1}, told
        assert state()[0] is wanted
        subjects = [s for _, s in world.emails(email) if s.startswith(f"Rinnovo automatico {word}")]
        assert len(subjects) == 1, f"{len(subjects)} e-mails for one switch to {word}"
        seen += answers

    form = {"csrf_token": browser.csrf, "frequency_years": "3"}
    url = f"{world.url}/area-clienti/servizi/{service_id}/frequenza"
    answers = fire(twins_of(browser, post(url, form, headers=hx)))
    assert_no_5xx(answers)
    assert {a.status for a in answers} == {200}
    assert all("Frequenza di rinnovo aggiornata: ogni 3 anni" in a.text for a in answers)
    assert state() == (True, 3)
    assert len(world.emails(email)) == 2  # the two switches; a frequency change sends none
    world.note("Rinnovo automatico switch + frequency", seen + answers, emails=2)


# --- 9. A card added retries a failed renewal -----------------------------------------------------


def _failed_renewal(world, service_id: int, expires_at, attempts: int, next_attempt_at) -> int:
    from webapp.extensions import db
    from webapp.renewals.models import Renewal, RenewalStatus, Service

    renewal = Renewal(
        service_id=service_id,
        period_expires_at=expires_at,
        status=RenewalStatus.FAILED,
        attempts=attempts,
        failure_code="insufficient_funds",
        failure_reason="La carta non ha fondi sufficienti.",
        next_attempt_at=next_attempt_at,
        last_attempt_at=now_utc(),
        created_at=now_utc(),
    )
    db.session.add(renewal)
    _announced_as_charged(db.session.get(Service, service_id))  # as the first attempt did
    db.session.commit()
    return renewal.id


def _announced_as_charged(service) -> None:
    """The service's last notice: the amount its renewal is charged (issue 20's notices)."""
    from webapp.renewals.services import renewal_price

    price = renewal_price(service, day=rome_date(now_utc()))
    service.announced_period, service.announced_cents = service.expires_at, price.total_cents
    service.announced_years, service.announced_card_id = price.years, service.saved_card_id


def test_card_added_twins_retry_the_failed_renewal_once(world):
    from webapp.payments.models import SavedCard
    from webapp.renewals.models import Renewal, Service

    customer_id, email = world.customer()
    poor = world.card(customer_id, POOR_PAN)
    expires_at = now_utc().replace(microsecond=0) + timedelta(days=10)
    service_id = _service(world, customer_id, poor, "PEC-STD", expires_at)
    renewal_id = _failed_renewal(world, service_id, expires_at, 1, expires_at - timedelta(days=5))
    browser = world.browser(email)
    browser.get("/area-clienti/carte")

    response = browser.post("/area-clienti/carte/nuova")
    assert response.status_code == 303, response.text[:300]
    page = BankPage()
    back = page.pay(response.headers["Location"])
    page.close()
    assert urlsplit(back).path == "/area-clienti/carte/aggiunta"

    answers = fire(twins_of(browser, get(back)), world.url)

    assert_no_5xx(answers)
    assert {a.status for a in answers} == {303}
    assert {a.landed for a in answers} <= {"/area-clienti/", "/area-clienti/carte"}
    told = [(c, m) for a in answers for c, m in a.flashes]
    assert not [m for c, m in told if c == "error" or "non riuscito" in m], told
    assert sum("riuscito: il servizio ora scade" in m for _, m in told) == 1, told
    [(order_id, status, attempts)] = world.shop_rows(
        select(Renewal.order_id, Renewal.status, Renewal.attempts).where(Renewal.id == renewal_id)
    )
    assert (str(status), attempts) == ("succeeded", 2)
    bank = world.at_bank(order_id)
    assert bank["charges"] == [("succeeded", world.total(order_id))], bank
    [(new_expiry,)] = world.shop_rows(select(Service.expires_at).where(Service.id == service_id))
    assert new_expiry == add_years(expires_at, 1), "the service was not extended exactly once"
    cards = world.count(
        select(func.count(SavedCard.id)).where(SavedCard.customer_id == customer_id)
    )
    assert cards == 2, f"{cards} cards: the new card was saved more than once"
    # The new card is announced once (issue 20: a change of card gets a new notice), then paid.
    keys = [k for k, _ in world.emails(email)]
    assert keys[-1:] == [f"renewal-paid-{renewal_id}"], keys
    assert [k.split("-")[:2] for k in keys[:-1]] == [["notice", str(service_id)]], keys
    world.note("Card added + renewal retry", answers, charges=len(bank["charges"]))


# --- 10. Two renewal passes at once on a retry day ------------------------------------------------


def test_two_renewal_passes_on_a_retry_day_attempt_each_failed_renewal_once(world):
    from webapp.renewals.models import Renewal

    day = rome_date(now_utc()).isoformat()
    as_of = parse_as_of(day)
    expires_at = as_of + timedelta(days=5)  # today is the "5 days before expiry" retry
    n = 20
    renewals, emails = [], []
    for _ in range(n):
        customer_id, email = world.customer()
        card_id = world.card(customer_id, POOR_PAN)
        service_id = _service(world, customer_id, card_id, "PEC-STD", expires_at)
        renewals.append(_failed_renewal(world, service_id, expires_at, 1, as_of))
        emails.append(email)

    started = time.monotonic()
    procs = [world.system.renewals(f"twin-{i}", day) for i in (1, 2)]
    reports = [world.system.finish(p) for p in procs]
    elapsed = time.monotonic() - started

    assert [r["errori"] for r in reports] == [0, 0]
    assert sum(r["non riusciti"] for r in reports) == n, reports
    rows = world.shop_rows(
        select(Renewal.id, Renewal.order_id, Renewal.status, Renewal.attempts).where(
            Renewal.id.in_(renewals)
        )
    )
    assert {(str(s), a) for _, _, s, a in rows} == {("failed", 2)}
    for _, order_id, _, _ in rows:
        charges = world.at_bank(order_id)["charges"]
        assert [s for s, _ in charges] == ["declined"], f"order {order_id}: {charges}"
    for renewal_id, email in zip(renewals, emails, strict=True):
        keys = [k for k, _ in world.emails(email)]
        assert keys == [f"renewal-failed-{renewal_id}-2"], keys
    TALLY.actions += 1
    TALLY.fired += 2
    TALLY.answers += 2  # each pass's exit status and report
    TALLY.lines.append(
        f"[twins] Two renewal passes on a retry day: {n} failed renewals, split "
        f"{reports[0]['non riusciti']}/{reports[1]['non riusciti']}, {n} declined charges, "
        f"{n} e-mails, {elapsed:.1f} s"
    )


# --- 11. Renewal by hand and the automatic pass at once (issue 28) --------------------------------


def _renewal_order(world, browser: Browser, service_id: int) -> int:
    """ "Rinnova" in I miei servizi → the checkout → Conferma e completa l'ordine, over HTTP."""
    browser.get(f"/area-clienti/servizi/{service_id}/rinnova")
    response = browser.post(f"/area-clienti/servizi/{service_id}/rinnova", {"years": "1"})
    assert response.status_code == 303, response.text[:300]
    response = browser.post("/checkout/metodo", {"payment_method": "card"}, htmx=True)
    assert response.status_code == 200, response.text[:300]
    token = browser.token_of("/checkout", "checkout_token")
    response = browser.post("/checkout/conferma", {"checkout_token": token, "terms": "1"})
    assert response.status_code == 303, response.text[:300]
    return int(urlsplit(response.headers["Location"]).path.rsplit("/", 1)[1])


@pytest.mark.parametrize("pass_first", [False, True], ids=["together", "pass-charging"])
def test_renewal_by_hand_from_two_tabs_and_the_automatic_pass_renew_once(world, pass_first):
    from webapp.renewals.models import Renewal, RenewalStatus, Service

    customer_id, email = world.customer()
    card_id = world.card(customer_id)
    day = rome_date(now_utc()).isoformat()
    old = parse_as_of(day) + timedelta(days=10)  # in the window: the pass charges it today
    service_id = _service(world, customer_id, card_id, "PEC-STD", old)
    browser = world.browser(email)
    orders = [_renewal_order(world, browser, service_id) for _ in range(2)]  # two tabs
    portal = "/portale-pagamenti/ordini/{}"
    attempts = {o: browser.token_of(portal.format(o), "attempt") for o in orders}
    sends = []
    for i in range(TWINS):
        order_id = orders[i % 2]
        form = {
            "csrf_token": browser.csrf,
            "choice": str(card_id),
            "attempt": attempts[order_id],
            "amount_cents": str(world.total(order_id)),
        }
        sends.append(
            (browser.twin_session, post(f"{world.url}{portal.format(order_id)}/procedi", form))
        )

    automatic = world.system.renewals("twin-manual", day)  # the pass, at the same instant:
    opened = select(Renewal.id).where(Renewal.service_id == service_id)
    deadline = time.monotonic() + 30
    while pass_first and not world.shop_rows(opened) and time.monotonic() < deadline:
        time.sleep(0.02)  # fire once the pass has opened the period and is about to charge it
    answers = fire(sends, world.url)
    report = world.system.finish(automatic)

    assert_no_5xx(answers)
    assert report["errori"] == 0
    [(expires_at,)] = world.shop_rows(select(Service.expires_at).where(Service.id == service_id))
    assert expires_at == add_years(old, 1), "the period was not extended exactly once"
    rows = world.shop_rows(
        select(Renewal.status, Renewal.manual, Renewal.order_id).where(
            Renewal.service_id == service_id
        )
    )
    assert [str(s) for s, _, _ in rows] == [str(RenewalStatus.SUCCEEDED)], rows
    [(_, manual, auto_order)] = rows
    charged = refunded = 0
    for order_id in [*orders, *([auto_order] if auto_order else [])]:
        bank = world.at_bank(order_id)
        charged += sum(bank["succeeded"]) + sum(bank["captures"])
        refunded += sum(bank["refunds"])
    price = world.total(orders[0])  # € 6,10: one year, list price + VAT, either way
    assert charged - refunded == price, f"kept {charged - refunded}, one period is {price}"
    world.note(
        f"Rinnova (two tabs) + automatic pass ({'pass charging' if pass_first else 'together'})",
        answers,
        winner="by hand" if manual else "automatic",
        charged=charged,
        refunded=refunded,
    )


# --- SdI: one notification delivered by webhook 8 times at once -----------------------------------


def _sent_invoice(world) -> tuple[int, str, str, str]:
    """A paid order's invoice (a private buyer: MC) whose attempt the intermediary took:
    (invoice id, buyer e-mail, IdentificativoSdI, file name)."""
    from tests.unit.invoicing_helpers import confirmed_order, pay
    from webapp.clock import now_utc
    from webapp.extensions import db
    from webapp.invoicing.models import Invoice
    from webapp.invoicing.transmission import open_attempt, record_receipt
    from webapp.shop.models import Customer, Product

    customer_id, email = world.customer()
    now = now_utc()
    products = {p.sku: p for p in db.session.scalars(select(Product))}
    order = confirmed_order(db.session.get(Customer, customer_id), products, now)
    pay(order, now)
    invoice = db.session.scalar(select(Invoice).where(Invoice.order_id == order.id))
    attempt = open_attempt(invoice, now)
    sdi_id = str(4_100_000_000 + attempt.id)
    record_receipt(attempt, sdi_id, now)
    db.session.commit()
    return invoice.id, email, sdi_id, attempt.file_name


def test_sdi_notification_twins_are_stored_and_applied_once(world):
    from webapp.clock import now_utc
    from webapp.config import DEFAULT_SDI_SECRET
    from webapp.invoicing.models import Invoice, SdiNotification
    from webapp.sdi.messages import build
    from webapp.signing import sign_request

    invoice_id, email, sdi_id, file_name = _sent_invoice(world)
    now = now_utc()
    xml = build(
        "MC",
        sdi_id=sdi_id,
        file_name=file_name,
        message_id="77",
        received_at=now,
        now=now,
        secret=DEFAULT_SDI_SECRET,
    )
    path = "/sdi/notifiche"

    def send(session: requests.Session) -> requests.Response:
        # The shop under gunicorn runs with the development intermediary secret.
        headers = sign_request(DEFAULT_SDI_SECRET, MERCHANT, "POST", path, xml, int(time.time()))
        headers["Content-Type"] = "application/xml"
        return session.post(world.url + path, data=xml, headers=headers, timeout=30)

    answers = fire([(requests.Session, send)] * TWINS)

    assert_no_5xx(answers)
    assert {a.status for a in answers} == {200}, [(a.status, a.text[:200]) for a in answers]
    texts = Counter(a.text.strip() for a in answers)
    assert texts == {"applicata": 1, "duplicata": TWINS - 1}, texts
    stored = world.count(
        select(func.count(SdiNotification.id)).where(SdiNotification.sdi_id == sdi_id)
    )
    assert stored == 1
    [(state,)] = world.shop_rows(select(Invoice.sdi_state).where(Invoice.id == invoice_id))
    assert str(state) == "non_consegnata"
    courtesy = [k for k, _ in world.emails(email) if k and k.startswith("sdi-courtesy")]
    assert courtesy == [f"sdi-courtesy-{invoice_id}"]
    world.note("SdI notification (webhook)", answers, stored=stored, emails=len(courtesy))


# --- staff: a one-time link, the lock after too many wrong codes (issue 19) --------------------


def _staff(world, email: str, failures: int = 0):
    from webapp.backoffice.auth import create_staff
    from webapp.extensions import db

    member = create_staff(email, "Gemella Staff", "operatore", PASSWORD)
    member.totp_confirmed, member.totp_failures = True, failures
    db.session.commit()
    return member


def test_staff_link_twins_complete_it_once(world):
    from webapp.backoffice.links import issue_link
    from webapp.backoffice.models import AuditEntry, StaffLinkPurpose
    from webapp.extensions import db

    member = _staff(world, f"twin-staff-{uuid.uuid4().hex[:8]}@pecshop.test")
    token = issue_link(member, StaffLinkPurpose.PASSWORD, now_utc(), timedelta(hours=1))
    db.session.commit()
    browser = Browser(world.url)
    world.browsers.append(browser)
    assert browser.get(f"/backoffice/link/{token}").url.endswith("/backoffice/link")
    form = {"csrf_token": browser.csrf, "password": "twin-new-pass", "password2": "twin-new-pass"}

    answers = fire(twins_of(browser, post(world.url + "/backoffice/link", form)))

    assert_no_5xx(answers)
    used = world.shop_rows(
        select(AuditEntry.id).where(
            AuditEntry.staff_id == member.id, AuditEntry.action == "link usato: password"
        )
    )
    assert len(used) == 1, used
    assert sorted(a.status for a in answers) == [303] + [410] * (TWINS - 1)
    world.note("staff: link monouso", answers, completed=len(used))


def test_wrong_code_twins_lock_the_account_once(world):
    from webapp.backoffice.models import AuditEntry, StaffUser

    member = _staff(world, f"twin-lock-{uuid.uuid4().hex[:8]}@pecshop.test", failures=9)
    browser = Browser(world.url)
    world.browsers.append(browser)
    browser.get("/backoffice/accesso")
    response = browser.post("/backoffice/accesso", {"email": member.email, "password": PASSWORD})
    assert response.status_code == 303, response.text[:300]
    form = {"csrf_token": browser.csrf, "code": "000000"}

    answers = fire(twins_of(browser, post(world.url + "/backoffice/accesso/codice", form)))

    assert_no_5xx(answers)
    [(locked_at, failures)] = world.shop_rows(
        select(StaffUser.locked_at, StaffUser.totp_failures).where(StaffUser.id == member.id)
    )
    # Each twin that read the pending login before the lock counted its code; none after it.
    assert locked_at is not None and 10 <= failures <= 9 + TWINS
    locks = world.shop_rows(
        select(AuditEntry.id).where(
            AuditEntry.staff_id == member.id, AuditEntry.action == "account staff bloccato"
        )
    )
    mails = [s for _, s in world.emails(member.email) if "bloccato" in s]
    assert len(locks) == 1 and len(mails) == 1, (locks, mails)
    world.note("staff: blocco dopo codici errati", answers, locks=len(locks), emails=len(mails))


# --- 11. A frequency changed after the reminder: one new notice (issue 20) ----------------------


def test_frequency_twins_after_the_reminder_send_one_new_notice(world):
    from webapp.extensions import db
    from webapp.renewals.models import Service

    customer_id, email = world.customer()
    card_id = world.card(customer_id)
    expires_at = now_utc() + timedelta(days=25)  # reminded, not yet in the window
    service_id = _service(world, customer_id, card_id, "PEC-STD", expires_at)
    service = db.session.get(Service, service_id)
    service.announced_period, service.announced_years = service.expires_at, 1
    service.announced_cents, service.announced_card_id = 610, card_id  # the reminder's
    db.session.commit()
    browser = world.browser(email)
    browser.get("/area-clienti/")
    hx = {"HX-Request": "true", "X-CSRFToken": browser.csrf}
    form = {"csrf_token": browser.csrf, "frequency_years": "2"}
    url = f"{world.url}/area-clienti/servizi/{service_id}/frequenza"
    answers = fire(twins_of(browser, post(url, form, headers=hx)))
    assert_no_5xx(answers)
    assert {a.status for a in answers} == {200}
    notices = [k for k, _ in world.emails(email) if k and k.startswith(f"notice-{service_id}-")]
    assert len(notices) == 1, f"{len(notices)} notices for one change of frequency"
    [row] = world.shop_rows(
        select(Service.announced_cents, Service.announced_years).where(Service.id == service_id)
    )
    assert tuple(row) == (1220, 2)
    world.note("frequency after the reminder: new notice", answers, notices=1)
