"""Accounts against the usual attacks: enumeration, replayed cookies, cross-site cookies, floods."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import func, select

from webapp import create_app
from webapp.account import services as account
from webapp.config import TestConfig
from webapp.extensions import db as _db
from webapp.outbox.models import OutboxEmail
from webapp.shop.models import Customer

NEW = {
    "name": "Giulia Verdi",
    "tax_code": "RSSMRA85T10A562S",
    "password": "password123",
    "password2": "password123",
}


def _logged_in(client) -> bool:
    with client.session_transaction() as session:
        return "_user_id" in session


# --- login: the same work for known and unknown e-mails ------------------------------------


def test_login_checks_a_hash_for_unknown_emails_too(app, dummy_customer, monkeypatch):
    calls: list[str] = []
    real = account.check_password_hash

    def spy(stored: str, password: str) -> bool:
        calls.append(stored)
        return real(stored, password)

    monkeypatch.setattr(account, "check_password_hash", spy)
    assert account.authenticate("mario@example.it", "sbagliata") is None
    assert account.authenticate("nessuno@example.it", "sbagliata") is None
    assert account.authenticate("mario@example.it", "password123") == dummy_customer
    assert len(calls) == 3  # one check each, whether the account exists or not
    known, unknown, _ = calls
    method = app.config["PASSWORD_HASH_METHOD"]
    assert known.startswith(method + "$") and unknown.startswith(method + "$")
    assert unknown != known


# --- registration does not tell which e-mails have an account ------------------------------


def test_registering_a_taken_email_looks_like_a_registration(client, db, dummy_customer):
    visitor = client.application.test_client()
    new = visitor.post("/registrati?next=/carrello", data={**NEW, "email": "giulia@example.it"})
    taken = client.post("/registrati?next=/carrello", data={**NEW, "email": "  Mario@Example.IT "})

    assert (taken.status_code, taken.headers["Location"]) == (303, "/carrello")
    assert (new.status_code, new.headers["Location"]) == (303, "/carrello")
    assert not _logged_in(client)  # not logged in as the owner, whatever password was typed
    assert db.session.scalar(select(func.count(Customer.id))) == 2
    page = html.unescape(client.get("/carrello").text)
    assert "Controlla la tua casella di posta" in page
    assert "Esiste già" not in page and "già registrato" not in page
    mail = db.session.scalars(select(OutboxEmail).where(OutboxEmail.to_addr == "mario@example.it"))
    (mail,) = mail.all()
    assert mail.subject == "Tentativo di registrazione con il tuo indirizzo e-mail"
    assert "qualcuno ha provato a registrarsi con il tuo indirizzo" in mail.body_text
    assert "http://127.0.0.1:5000/accedi" in mail.body_text


def test_the_owner_is_told_once_a_day(client, db, dummy_customer):
    for _ in range(3):
        assert client.post("/registrati", data={**NEW, "email": "mario@example.it"}).status_code
    count = select(func.count(OutboxEmail.id)).where(OutboxEmail.to_addr == "mario@example.it")
    assert db.session.scalar(count) == 1


def test_a_new_registration_still_logs_in(client, db):
    r = client.post("/registrati", data={**NEW, "email": "giulia@example.it"})
    assert r.status_code == 303
    assert _logged_in(client)
    # One e-mail, as for a taken address: the confirmation link (issue 21).
    subjects = db.session.scalars(select(OutboxEmail.subject)).all()
    assert subjects == ["Conferma il tuo indirizzo e-mail"]


# --- SameSite on every cookie ------------------------------------------------------------------


def _set_cookies(response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.getlist("Set-Cookie")}


def test_every_cookie_of_the_shop_is_samesite_lax(client, dummy_customer):
    r = client.post(
        "/accedi",
        data={"email": "mario@example.it", "password": "password123", "remember": "y"},
    )
    cookies = _set_cookies(r)
    assert {"session", "remember_token"} <= set(cookies)
    for name, header in cookies.items():
        assert "SameSite=Lax" in header, name
        assert "HttpOnly" in header, name


def test_the_bank_cookie_is_samesite_lax(bank):
    from webapp.bank.extensions import db as bank_db
    from webapp.bank.models import Payment

    browser = bank.test_client()
    with bank.app_context():
        from tests.reliability.test_bad_input_bank import _payment

        payment = _payment(None, confirm=False)
        bank_db.session.commit()
        pid = payment.id
        assert bank_db.session.get(Payment, pid) is not None
        bank_db.session.remove()
    cookies = _set_cookies(browser.get(f"/pay/{pid}"))
    assert cookies, "the card page sets the bank's session cookie (its CSRF token)"
    for name, header in cookies.items():
        assert "SameSite=Lax" in header, name


# --- "Esci" ends the session on the server ---------------------------------------------------


def test_a_session_cookie_copied_before_logout_is_dead_after(client, dummy_customer):
    client.post("/accedi", data={"email": "mario@example.it", "password": "password123"})
    assert client.get("/area-clienti/").status_code == 200
    stolen = client.get_cookie("session").value

    assert client.post("/esci").status_code == 303
    thief = client.application.test_client()
    thief.set_cookie("session", stolen)
    r = thief.get("/area-clienti/")
    assert r.status_code in (302, 303)
    assert r.headers["Location"].startswith("/accedi")


def test_a_remember_me_cookie_copied_before_logout_is_dead_after(client, dummy_customer):
    client.post(
        "/accedi", data={"email": "mario@example.it", "password": "password123", "remember": "y"}
    )
    stolen = client.get_cookie("remember_token").value
    client.post("/esci")
    thief = client.application.test_client()
    thief.set_cookie("remember_token", stolen)
    assert thief.get("/area-clienti/").status_code in (302, 303)


def test_logging_in_again_after_logout_works(client, dummy_customer):
    for _ in range(2):
        r = client.post("/accedi", data={"email": "mario@example.it", "password": "password123"})
        assert r.status_code == 303
        assert client.get("/area-clienti/").status_code == 200
        client.post("/esci")
        assert client.get("/area-clienti/").status_code in (302, 303)


@pytest.mark.parametrize("user_id", ["1", "1:", "1:x", "x:0", "1:0:0", "²:0", "1:²", "9" * 30])
def test_a_malformed_session_user_id_is_a_visitor(client, dummy_customer, user_id):
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True
    assert client.get("/area-clienti/").status_code in (302, 303)


# --- an honest 429 -----------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True])
def test_too_many_logins_answer_429_in_italian(database_url, htmx):
    app = create_app(
        TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url, "RATELIMIT_ENABLED": True}
    )
    client = app.test_client()
    headers = {"HX-Request": "true"} if htmx else {}
    with app.app_context():
        _db.create_all()  # alone on PostgreSQL the schema may not exist yet
        form = {"email": "x@example.it", "password": "sbagliata"}
        for _ in range(10):
            client.post("/accedi", data=form, headers=headers)
        last = client.post("/accedi", data=form, headers=headers)
        _db.session.remove()
        _db.engine.dispose()
    assert last.status_code == 429
    text = html.unescape(last.text)
    if htmx:  # the error fragment, swapped where the form's answer goes
        assert "Troppe richieste: riprova tra qualche minuto." in text
    else:  # the login form again, with the wait
        assert "Troppi tentativi di accesso: riprova tra un minuto." in text
    assert "Richiesta non valida" not in text
    assert ("<html" in text) is not htmx
    assert "Retry-After" in last.headers
