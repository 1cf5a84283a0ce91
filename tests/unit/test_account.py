"""Accounts: registration with codice fiscale or partita IVA, login, logout, safe `next`."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import func, select

from tests.unit.helpers import add, customer_cart, login
from webapp.account.services import authenticate
from webapp.shop.models import Customer


def register(client, url="/registrati", **fields):
    data = dict(
        name="Giulia Verdi",
        email="giulia@example.it",
        tax_code="RSSMRA85T10A562S",
        password="segreta123",
        password2="segreta123",
    )
    data.update(fields)
    return client.post(url, data=data)


def customers(db) -> int:
    return db.session.scalar(select(func.count(Customer.id)))


def logged_in_as(client, name: str) -> bool:
    return f"Esci ({name})" in client.get("/").text


@pytest.mark.parametrize(
    ("posted", "stored"),
    [
        ("RSSMRA85T10A562S", "RSSMRA85T10A562S"),
        ("  rssmra85t10a562s ", "RSSMRA85T10A562S"),
        ("01114601006", "01114601006"),
        ("IT01114601006", "01114601006"),
    ],
)
def test_register_with_codice_fiscale_or_partita_iva(client, db, posted, stored):
    r = register(client, tax_code=posted)
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == "/"
    customer = db.session.scalars(select(Customer)).one()
    assert customer.tax_code == stored
    assert customer.email == "giulia@example.it"
    assert logged_in_as(client, "Giulia Verdi")


@pytest.mark.parametrize("tax_code", ["RSSMRA85T10A562X", "01114601007", "ABC", "12345678901234"])
def test_invalid_tax_code_is_refused(client, db, tax_code):
    r = register(client, tax_code=tax_code)
    assert r.status_code == 422
    assert "Codice fiscale o partita IVA non valido." in r.text
    assert customers(db) == 0
    assert not logged_in_as(client, "Giulia Verdi")


def test_missing_tax_code(client, db):
    r = register(client, tax_code="")
    assert r.status_code == 422
    assert "Inserisci il codice fiscale o la partita IVA." in r.text
    assert customers(db) == 0


def test_duplicate_email_creates_no_second_account(client, db, dummy_customer):
    # It answers like a registration (no enumeration): see test_account_security.py.
    r = register(client, email="  Mario@Example.IT ")
    assert r.status_code == 303
    assert customers(db) == 1
    assert not logged_in_as(client, "Mario Rossi")


def test_email_is_stored_lower_case(client, db):
    assert register(client, email="Giulia.Verdi@Example.IT").status_code == 303
    assert db.session.scalars(select(Customer)).one().email == "giulia.verdi@example.it"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"password2": "altra1234"}, "Le due password non coincidono."),
        ({"password": "corta", "password2": "corta"}, "La password deve avere almeno 8 caratteri."),
        ({"email": "non-una-email"}, "Indirizzo e-mail non valido."),
        ({"name": ""}, "Inserisci il nome."),
    ],
)
def test_registration_form_errors(client, db, fields, message):
    r = register(client, **fields)
    assert r.status_code == 422
    assert message in html.unescape(r.text)
    assert customers(db) == 0


def test_password_is_hashed(client, db):
    register(client)
    customer = db.session.scalars(select(Customer)).one()
    assert "segreta123" not in customer.password_hash
    assert customer.password_hash.startswith(("scrypt:", "pbkdf2:"))
    assert customer.check_password("segreta123")
    assert not customer.check_password("segreta124")


def test_registration_keeps_the_visitors_cart(client, db, catalogue):
    add(client, catalogue["products"]["PEC-STD"])
    register(client)
    customer = db.session.scalar(select(Customer).where(Customer.email == "giulia@example.it"))
    assert [line.product.sku for line in customer_cart(customer.id).lines] == ["PEC-STD"]


def test_register_page(client):
    page = client.get("/registrati")
    assert page.status_code == 200
    assert "Codice fiscale o partita IVA" in page.text


# --- login and logout -----------------------------------------------------------------------


def test_login(client, dummy_customer):
    r = client.post("/accedi", data={"email": "mario@example.it", "password": "password123"})
    assert r.status_code == 303
    assert r.headers["Location"] == "/"
    assert logged_in_as(client, "Mario Rossi")


def test_login_email_is_case_insensitive(client, dummy_customer):
    r = client.post("/accedi", data={"email": " MARIO@example.it ", "password": "password123"})
    assert r.status_code == 303


@pytest.mark.parametrize(
    ("email", "password"),
    [("mario@example.it", "sbagliata"), ("nessuno@example.it", "password123")],
)
def test_login_refused(client, dummy_customer, email, password):
    r = client.post("/accedi", data={"email": email, "password": password})
    assert r.status_code == 422
    assert "E-mail o password non corretti." in r.text
    assert not logged_in_as(client, "Mario Rossi")


def test_login_with_empty_fields(client, dummy_customer):
    r = client.post("/accedi", data={})
    assert r.status_code == 422
    assert "Inserisci l&#39;indirizzo e-mail." in r.text


def test_authenticate_service(db, dummy_customer):
    assert authenticate("mario@example.it", "password123") == dummy_customer
    assert authenticate("mario@example.it", "") is None
    assert authenticate("", "password123") is None


def test_logout(client, dummy_customer, catalogue):
    login(client)
    add(client, catalogue["products"]["PEC-STD"])
    r = client.post("/esci")
    assert r.status_code == 303
    assert r.headers["Location"] == "/"
    page = client.get("/").text
    assert "Sei uscito dal tuo account." in page
    assert "Esci (Mario Rossi)" not in page
    assert client.get("/checkout").status_code in (302, 303)
    assert client.get("/esci").status_code == 405  # a link cannot log anyone out


@pytest.mark.parametrize(
    ("next_url", "target"),
    [
        ("/checkout", "/checkout"),
        ("/ordini/1?x=1", "/ordini/1?x=1"),
        ("", "/"),
        ("https://evil.example/accedi", "/"),
        ("//evil.example/accedi", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("http:/evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("checkout", "/"),
    ],
)
def test_next_allows_only_local_paths(client, dummy_customer, next_url, target):
    r = client.post(
        "/accedi",
        query_string={"next": next_url},
        data={"email": "mario@example.it", "password": "password123"},
    )
    assert r.status_code == 303
    assert r.headers["Location"] == target
    # Already logged in: the login page sends on, under the same rule.
    r = client.get("/accedi", query_string={"next": next_url})
    assert r.headers["Location"] == target


def test_register_next_is_also_safe(client, db):
    r = register(client, url="/registrati?next=//evil.example")
    assert r.headers["Location"] == "/"
    client.post("/esci")
    r = register(client, url="/registrati?next=/checkout", email="altro@example.it")
    assert r.headers["Location"] == "/checkout"
