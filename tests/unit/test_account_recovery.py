"""Password dimenticata? and the address confirmation (issue 21): the links' lifecycle."""

from __future__ import annotations

import html
import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import FIXED_NOW
from tests.unit.helpers import login
from webapp import create_app
from webapp.config import TestConfig
from webapp.extensions import db as _db
from webapp.logs import redact
from webapp.outbox.models import OutboxEmail
from webapp.shop import accounts
from webapp.shop.models import Customer
from webapp.shop.tokens import AccountToken, TokenPurpose

RESET_LINK = re.compile(r"/password/nuova/([A-Za-z0-9_-]+)")
CONFIRM_LINK = re.compile(r"/conferma-email/([A-Za-z0-9_-]+)")
NEW = {"password": "nuova-password-1", "password2": "nuova-password-1"}


class Clock:
    """The views' clock, moved by the tests."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def move(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    import webapp.account.profile
    import webapp.account.recovery
    import webapp.account.views

    clock = Clock(FIXED_NOW)
    for module in (webapp.account.recovery, webapp.account.views, webapp.account.profile):
        monkeypatch.setattr(module, "now_utc", clock)
    return clock


def mails(db, to: str, subject: str | None = None) -> list[OutboxEmail]:
    stmt = select(OutboxEmail).where(OutboxEmail.to_addr == to).order_by(OutboxEmail.id)
    found = db.session.scalars(stmt).all()
    return [m for m in found if subject is None or subject in m.subject]


def last_link(db, to: str, pattern: re.Pattern = RESET_LINK) -> str:
    for mail in reversed(mails(db, to)):
        found = pattern.search(mail.body_text)
        if found:
            return found.group(0)
    raise AssertionError(f"no link to {to}")


def ask_reset(client, email="mario@example.it"):
    return client.post("/password-dimenticata", data={"email": email})


def open_and_set(client, link: str, data=None):
    """GET the e-mailed link (token into the session), then POST the new password."""
    opened = client.get(link)
    assert opened.status_code in (302, 303) and opened.headers["Location"] == "/password/nuova"
    return client.post("/password/nuova", data=data or NEW)


# --- no enumeration -------------------------------------------------------------------------------


def test_a_registered_and_an_unknown_address_get_the_same_answer(client, db, dummy_customer, clock):
    known = ask_reset(client, "mario@example.it")
    unknown = ask_reset(client, "nessuno@example.it")
    assert known.status_code == unknown.status_code == 200

    def words(response, email):
        return html.unescape(response.text).replace(email, "EMAIL")

    assert words(known, "mario@example.it") == words(unknown, "nessuno@example.it")
    assert "Se l'indirizzo" in html.unescape(known.text)
    assert len(mails(db, "mario@example.it", "Reimposta")) == 1
    assert mails(db, "nessuno@example.it") == []


def test_the_reset_mail_is_sent_after_the_answer_not_before(app, client, db, dummy_customer):
    """The answer does not wait for SMTP (its time would tell a registered address)."""
    from webapp.outbox import services as outbox

    email_id = None
    app.config["MAIL_SEND_IN_BACKGROUND"] = True  # as in production (the test commits nothing)
    with app.test_request_context():
        email_id = accounts.request_password_reset("mario@example.it", FIXED_NOW)
        outbox.send_in_background(email_id)
        assert email_id not in db.session.info.get(outbox._SESSION_KEY, [])
        assert db.session.info[outbox._BACKGROUND_KEY] == [email_id]
        db.session.rollback()
        assert outbox._BACKGROUND_KEY not in db.session.info  # a rollback sends nothing


# --- the link's lifecycle -------------------------------------------------------------------------


def test_reset_link_sets_a_new_password_and_works_once(client, db, dummy_customer, clock):
    ask_reset(client)
    link = last_link(db, "mario@example.it")
    done = open_and_set(client, link)
    assert done.status_code == 303 and done.headers["Location"] == "/accedi"
    login(client, password="nuova-password-1")
    client.post("/esci")
    assert (
        client.post(
            "/accedi", data={"email": "mario@example.it", "password": "password123"}
        ).status_code
        == 422
    )
    assert len(mails(db, "mario@example.it", "password è stata cambiata")) == 1

    again = client.get(link, follow_redirects=True)
    assert again.status_code == 410
    assert "Link già usato o scaduto" in html.unescape(again.text)
    assert "Chiedi un nuovo link" in again.text


def test_the_token_leaves_the_url_at_the_first_get(client, db, dummy_customer, clock):
    ask_reset(client)
    link = last_link(db, "mario@example.it")
    opened = client.get(link)
    assert opened.headers["Location"] == "/password/nuova"
    page = client.get("/password/nuova")
    assert page.status_code == 200
    token = link.rsplit("/", 1)[1]
    assert token not in page.text
    assert 'autocomplete="new-password"' in page.text


def test_a_reset_link_expires_after_60_minutes(client, db, dummy_customer, clock):
    ask_reset(client)
    link = last_link(db, "mario@example.it")
    clock.move(minutes=60, seconds=1)
    assert open_and_set(client, link).status_code == 410
    assert db.session.get(Customer, dummy_customer.id).check_password("password123")


def test_a_reset_link_still_works_at_59_minutes(client, db, dummy_customer, clock):
    ask_reset(client)
    link = last_link(db, "mario@example.it")
    clock.move(minutes=59)
    assert open_and_set(client, link).status_code == 303


def test_a_newer_link_kills_the_older(client, db, dummy_customer, clock):
    ask_reset(client)
    older = last_link(db, "mario@example.it")
    clock.move(minutes=2)
    ask_reset(client)
    newer = last_link(db, "mario@example.it")
    assert older != newer
    assert open_and_set(client, older).status_code == 410
    assert open_and_set(client, newer).status_code == 303


def test_a_double_click_sends_one_link(client, db, dummy_customer, clock):
    ask_reset(client)
    ask_reset(client)
    assert len(mails(db, "mario@example.it", "Reimposta")) == 1


def test_a_token_for_one_customer_does_nothing_for_another(client, db, create_customer, clock):
    mario = create_customer()
    giulia = create_customer(email="giulia@example.it", name="Giulia Bianchi")
    ask_reset(client, "mario@example.it")
    link = last_link(db, "mario@example.it")
    assert open_and_set(client, link).status_code == 303
    assert db.session.get(Customer, giulia.id).check_password("password123")
    assert not db.session.get(Customer, mario.id).check_password("password123")


@pytest.mark.parametrize("token", ["x", "A" * 43, "..", "%00", "é" * 30, "a" * 500, "A-_" * 15])
def test_a_made_up_token_is_the_used_or_expired_page(client, db, dummy_customer, token):
    response = client.get(f"/password/nuova/{token}", follow_redirects=True)
    assert response.status_code == 410
    confirm = client.get(f"/conferma-email/{token}", follow_redirects=True)
    assert confirm.status_code == 410


def test_the_new_password_follows_the_registration_rule(client, db, dummy_customer, clock):
    ask_reset(client)
    link = last_link(db, "mario@example.it")
    short = open_and_set(client, link, {"password": "corta", "password2": "corta"})
    assert short.status_code == 422
    assert "almeno 8 caratteri" in short.text
    different = client.post("/password/nuova", data={"password": "abcdefgh1", "password2": "x"})
    assert different.status_code == 422
    assert client.post("/password/nuova", data=NEW).status_code == 303  # still usable


def test_a_reset_ends_every_other_session(app, db, dummy_customer, clock):
    other = app.test_client()
    login(other)
    assert other.get("/area-clienti/").status_code == 200
    client = app.test_client()
    ask_reset(client)
    open_and_set(client, last_link(db, "mario@example.it"))
    assert other.get("/area-clienti/").status_code in (302, 303)


def test_only_the_hash_of_a_token_is_stored(client, db, dummy_customer, clock):
    ask_reset(client)
    token = last_link(db, "mario@example.it").rsplit("/", 1)[1]
    row = db.session.scalar(select(AccountToken))
    assert row.token_hash != token and token not in row.token_hash
    assert len(row.token_hash) == 64


# --- the access log ----------------------------------------------------------------------------


def test_the_access_log_never_prints_a_token(
    client, db, dummy_customer, clock, caplog, monkeypatch
):
    # Alembic's fileConfig (test_migrations, earlier in a run) disables existing loggers.
    monkeypatch.setattr(logging.getLogger("webapp.access"), "disabled", False)
    ask_reset(client)
    link = last_link(db, "mario@example.it")
    token = link.rsplit("/", 1)[1]
    with caplog.at_level(logging.INFO, logger="webapp.access"):
        client.get(link)
        client.get(f"/conferma-email/{token}")
    lines = [r.getMessage() for r in caplog.records if r.name == "webapp.access"]
    assert lines and not any(token in line for line in lines)
    assert any("/password/nuova/[redatto]" in line for line in lines)


def test_redact_keeps_other_paths():
    assert redact("/conferma-email/invia") == "/conferma-email/invia"
    assert redact("/conferma-email/abc_DEF-123") == "/conferma-email/[redatto]"
    assert redact("/area-clienti/") == "/area-clienti/"


# --- rate limits ---------------------------------------------------------------------------------


@pytest.fixture
def limited(database_url):
    app = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "RATELIMIT_ENABLED": True,
            "RESET_RATE_LIMIT_IP": "5 per hour",
            "RESET_RATE_LIMIT_ADDRESS": "3 per hour",
        },
    )
    with app.app_context():
        _db.create_all()
        yield app
        _db.session.remove()
        _db.engine.dispose()


@pytest.mark.parametrize("email", ["mario@example.it", "sconosciuto@example.it"])
def test_a_few_requests_an_hour_per_address_then_429(limited, email):
    client = limited.test_client()
    answers = [ask_reset(client, email).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    last = ask_reset(client, email)
    assert "Troppe richieste: riprova tra qualche minuto." in html.unescape(last.text)
    assert "Retry-After" in last.headers
    assert ask_reset(client, "altro@example.it").status_code == 200  # another address


def test_requests_per_client_address_are_limited_too(limited):
    client = limited.test_client()
    answers = [ask_reset(client, f"a{i}@example.it").status_code for i in range(6)]
    assert answers == [200] * 5 + [429]


# --- the address confirmation ------------------------------------------------------------------

REGISTRATION = {
    "name": "Giulia Bianchi",
    "email": "giulia@example.it",
    "tax_code": "RSSMRA85T10A562S",
    "password": "password123",
    "password2": "password123",
}


def register(client):
    response = client.post("/registrati", data=REGISTRATION)
    assert response.status_code == 303
    return response


def test_registration_sends_a_48_hour_link_and_two_clicks_confirm_once(client, db, clock):
    register(client)
    customer = db.session.scalar(select(Customer).where(Customer.email == "giulia@example.it"))
    assert customer.email_confirmed_at is None
    link = last_link(db, "giulia@example.it", CONFIRM_LINK)
    clock.move(hours=47)
    first = client.get(link, follow_redirects=True)
    assert first.status_code == 200 and "Indirizzo confermato" in first.text
    db.session.expire_all()
    confirmed_at = db.session.get(Customer, customer.id).email_confirmed_at
    assert confirmed_at is not None
    clock.move(minutes=1)
    second = client.get(link, follow_redirects=True)
    assert second.status_code == 200 and "già confermato" in html.unescape(second.text)
    db.session.expire_all()
    assert db.session.get(Customer, customer.id).email_confirmed_at == confirmed_at


def test_a_confirmation_link_expires_after_48_hours(client, db, clock):
    register(client)
    link = last_link(db, "giulia@example.it", CONFIRM_LINK)
    clock.move(hours=48, seconds=1)
    assert client.get(link, follow_redirects=True).status_code == 410


def test_an_unconfirmed_customer_cannot_confirm_an_order(client, db, catalogue, clock):
    from tests.conftest import add_private_billing
    from tests.unit.helpers import add, checkout_token, choose_method

    register(client)
    customer = db.session.scalar(select(Customer).where(Customer.email == "giulia@example.it"))
    add_private_billing(customer)
    db.session.commit()
    add(client, catalogue["products"]["PEC-STD"])
    choose_method(client)
    page = client.get("/checkout")
    assert 'id="email-unconfirmed"' in page.text and "Invia di nuovo" in page.text
    refused = client.post(
        "/checkout/conferma", data={"checkout_token": checkout_token(client), "terms": "1"}
    )
    assert refused.status_code == 422
    assert "Conferma il tuo indirizzo e-mail prima di confermare" in html.unescape(refused.text)
    assert 'form="email-unconfirmed"' in refused.text
    client.get(last_link(db, "giulia@example.it", CONFIRM_LINK))
    done = client.post(
        "/checkout/conferma", data={"checkout_token": checkout_token(client), "terms": "1"}
    )
    assert done.status_code == 303 and "/ordini/" in done.headers["Location"]


def test_invia_di_nuovo_sends_a_new_link_that_kills_the_old(client, db, clock):
    register(client)
    old = last_link(db, "giulia@example.it", CONFIRM_LINK)
    clock.move(minutes=5)
    again = client.post("/conferma-email/invia", data={"next": "/checkout"})
    assert again.status_code == 303 and again.headers["Location"] == "/checkout"
    new = last_link(db, "giulia@example.it", CONFIRM_LINK)
    assert new != old
    assert client.get(old, follow_redirects=True).status_code == 410
    assert "Indirizzo confermato" in client.get(new, follow_redirects=True).text
    count = select(func.count(OutboxEmail.id)).where(OutboxEmail.subject.like("Conferma il tuo%"))
    assert db.session.scalar(count) == 2


def test_the_demo_account_is_confirmed(db, catalogue):
    demo = db.session.scalar(select(Customer).where(Customer.email == "demo@pecshop.test"))
    assert demo is not None and demo.email_confirmed_at is not None


def test_the_forms_say_what_password_managers_and_people_need(client):
    register_page = client.get("/registrati").text
    for attribute in ("name", "email", "new-password"):
        assert f'autocomplete="{attribute}"' in register_page
    assert "Almeno 8 caratteri" in register_page
    assert 'href="/privacy"' in register_page
    login_page = client.get("/accedi").text
    assert 'autocomplete="current-password"' in login_page
    assert "Password dimenticata?" in login_page
    assert TokenPurpose.RESET.value == "reset"
