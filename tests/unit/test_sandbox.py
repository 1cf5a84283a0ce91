"""The sandbox API (issue 23): off unless SANDBOX=1 with a token and never in production, 401
without the token, and what it answers: the test clock, the e-mails, orders and customers."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from tests.unit.renewal_fakes import FakeGateway, make_card, make_service
from webapp import create_app
from webapp.bank import create_bank_app
from webapp.clock import add_years, now_utc
from webapp.config import TestConfig
from webapp.extensions import db
from webapp.outbox.models import OutboxEmail
from webapp.renewals.models import Service

TOKEN = "token-di-prova"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXPIRES = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)


@contextmanager
def built(app, **overrides):
    """Another app on the test app's database; its connections closed at the end."""
    other = create_app(TestConfig, {**app.config, **overrides})
    try:
        yield other
    finally:
        with other.app_context():
            db.engine.dispose()


@pytest.fixture
def sandbox(app):
    """The test app with the sandbox on (the factory decides at start, so build it again)."""
    with built(app, SANDBOX=True, SANDBOX_TOKEN=TOKEN) as on:
        yield on


@pytest.fixture
def api(sandbox):
    return sandbox.test_client()


@pytest.fixture
def fake(app, sandbox) -> FakeGateway:
    gateway = FakeGateway()
    app.extensions["gateway"] = gateway
    sandbox.extensions["gateway"] = gateway
    return gateway


def sandbox_urls(flask_app) -> list[tuple[str, str]]:
    """Every sandbox rule as (method, concrete URL)."""
    urls = []
    for rule in flask_app.url_map.iter_rules():
        if rule.endpoint.startswith("sandbox."):
            url = re.sub(r"<(?:int:)?\w+>", "1", rule.rule)
            urls += [(m, url) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return urls


def bank_app(tmp_path, **config):
    """The mock bank on a file of tmp_path (SQLite: nothing left open on a server)."""
    return create_bank_app(
        {
            "TESTING": True,
            "BANK_DATABASE_URL": f"sqlite:///{tmp_path / 'bank.db'}",
            "BANK_NOTIFY_ENABLED": False,
            "SANDBOX": True,
            "SANDBOX_TOKEN": TOKEN,
            **config,
        }
    )


# --- on, off, token ------------------------------------------------------------------------


def test_off_by_default_every_url_is_404(app, sandbox):
    urls = sandbox_urls(sandbox)
    assert len(urls) >= 7, urls
    client = app.test_client()
    for method, url in urls:
        assert client.open(url, method=method, headers=AUTH).status_code == 404, url


def test_production_never_has_the_sandbox_even_when_asked(app, sandbox, tmp_path):
    production = {
        "ENV_NAME": "production",
        "SECRET_KEY": "a-real-secret-of-production",
        "BANK_SHARED_SECRET": "a-real-bank-secret",
    }
    with built(app, SANDBOX=True, SANDBOX_TOKEN=TOKEN, **production) as shop:
        client = shop.test_client()
        for method, url in sandbox_urls(sandbox):
            assert client.open(url, method=method, headers=AUTH).status_code == 404, url

    bank_on = bank_app(tmp_path)
    bank_prod = bank_app(tmp_path, APP_ENV="production")
    bank_urls = sandbox_urls(bank_on)
    assert bank_urls == [("GET", "/sandbox/api/movimenti")]
    for method, url in bank_urls:
        answer = bank_prod.test_client().open(url, method=method, headers=AUTH)
        assert answer.status_code == 404, url


def test_a_token_is_needed_on_every_url(api, sandbox, tmp_path):
    for method, url in sandbox_urls(sandbox):
        for headers in ({}, {"Authorization": "Bearer sbagliato"}, {"Authorization": TOKEN}):
            answer = api.open(url, method=method, headers=headers)
            assert answer.status_code == 401, (url, headers)
            assert answer.json["errore"].startswith("Serve il token del sandbox")
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    bank = bank_app(tmp_path).test_client()
    assert bank.get("/sandbox/api/movimenti?ordine=ORD-1").status_code == 401
    assert bank.get("/sandbox/api/movimenti?ordine=ORD-1", headers=AUTH).status_code == 200


def test_a_sandbox_without_a_token_is_off(app):
    with built(app, SANDBOX=True, SANDBOX_TOKEN="") as half:
        assert half.test_client().get("/sandbox/", headers=AUTH).status_code == 404


# --- the test clock ------------------------------------------------------------------------


def test_clock_pass_as_of_a_day_renews_what_is_due_and_reports(
    api, fake, dummy_customer, catalogue
):
    card = make_card(dummy_customer)
    service = make_service(
        dummy_customer, catalogue["products"]["PEC-STD"], expires_at=EXPIRES, card=card
    )
    early = api.post("/sandbox/orologio/passata", json={"as_of": "2027-01-04"}, headers=AUTH)
    assert early.status_code == 200, early.json
    assert early.json["report"]["charged"] == 0
    assert fake.calls == []

    answer = api.post("/sandbox/orologio/passata", json={"as_of": "2027-01-05"}, headers=AUTH)
    assert answer.status_code == 200, answer.json
    assert answer.json["as_of_rome"] == "05/01/2027 12:00"
    assert answer.json["report"]["charged"] == 1
    assert answer.json["report"]["opened"] == 1
    assert answer.json["text"].startswith("Passata rinnovi al 05/01/2027 12:00: ")
    assert "addebitati 1" in answer.json["text"]
    db.session.expire_all()
    assert db.session.get(Service, service.id).expires_at == add_years(EXPIRES, 1)

    again = api.post("/sandbox/orologio/passata", json={"as_of": "2027-01-05"}, headers=AUTH)
    assert again.json["report"]["charged"] == 0
    assert len(fake.calls) == 1


def test_clock_refuses_a_bad_instant_or_body(api):
    bad = api.post("/sandbox/orologio/passata", json={"as_of": "05/01/2027"}, headers=AUTH)
    assert bad.status_code == 400
    assert bad.json["errore"] == "as_of: usa il formato AAAA-MM-GG oppure AAAA-MM-GGTHH:MM."
    listed = api.post("/sandbox/orologio/passata", json=[1], headers=AUTH)
    assert listed.status_code == 400
    assert listed.json["errore"] == "Il corpo della richiesta deve essere un oggetto JSON."


def test_moving_one_customers_services_renews_only_theirs(api, fake, create_customer, catalogue):
    pec = catalogue["products"]["PEC-STD"]
    mario, luigi = create_customer(), create_customer(email="luigi@example.it")
    expires = (now_utc() + timedelta(days=365)).replace(microsecond=0)
    moved = make_service(mario, pec, expires_at=expires, card=make_card(mario))
    other = make_service(luigi, pec, expires_at=expires, card=make_card(luigi, token="tok-l"))

    answer = api.post(
        "/sandbox/orologio/sposta", json={"email": "MARIO@example.it", "days": 355}, headers=AUTH
    )
    assert answer.status_code == 200, answer.json
    old = expires - timedelta(days=355)
    [before] = answer.json["moved"]
    assert (before["id"], before["expires_at"]) == (moved.id, old.isoformat())
    [after] = answer.json["services"]
    assert after["expires_at"] == add_years(old, 1).isoformat()
    assert answer.json["pass"]["report"]["charged"] == 1
    assert len(fake.calls) == 1
    db.session.expire_all()
    assert db.session.get(Service, other.id).expires_at == expires

    # The renewal's order, as the back office sees it.
    customer = api.get("/sandbox/clienti?email=mario@example.it", headers=AUTH).json
    [renewal, purchase] = customer["orders"]
    assert (renewal["kind"], renewal["status"], purchase["kind"]) == ("renewal", "paid", "purchase")
    assert [c["last4"] for c in customer["cards"]] == ["4242"]
    order = api.get(f"/sandbox/ordini/{renewal['id']}", headers=AUTH).json
    assert order["bank_ref"] == f"ORD-{renewal['id']}"
    assert [(p["channel"], p["status"]) for p in order["payments"]] == [("renewal", "succeeded")]
    assert [s["sku"] for s in order["services"]] == ["PEC-STD"]
    assert [i["sdi"] for i in order["invoices"]] == [None] * len(order["invoices"])


def test_move_refuses_what_it_cannot_do(api, dummy_customer):
    post = lambda body: api.post("/sandbox/orologio/sposta", json=body, headers=AUTH)  # noqa: E731
    nobody = post({"email": "nessuno@example.it", "days": 3})
    assert (nobody.status_code, nobody.json["errore"]) == (404, "Cliente non trovato.")
    text = post({"email": dummy_customer.email, "days": "tre"})
    assert (text.status_code, text.json["errore"]) == (400, "days: un numero intero di giorni.")
    zero = post({"email": dummy_customer.email, "days": 0})
    assert (zero.status_code, zero.json["errore"]) == (409, "Giorni: da 1 a 3660.")


# --- e-mails, orders, staff ----------------------------------------------------------------


def test_emails_to_an_address_since_a_moment_with_their_links(api, dummy_customer):
    db.session.add(
        OutboxEmail(
            to_addr="mario@example.it",
            subject="Rinnovo automatico disattivato: PEC Standard",
            body_text="Puoi cambiarlo dalla tua area clienti: http://shop.test/area-clienti",
            body_html='<a href="http://shop.test/area-clienti?a=1&amp;b=2">area</a>',
        )
    )
    db.session.add(OutboxEmail(to_addr="luigi@example.it", subject="Altro", body_text="x"))
    db.session.commit()
    answer = api.get("/sandbox/email?to=Mario@example.it", headers=AUTH)
    assert answer.status_code == 200
    [mail] = answer.json["emails"]
    assert mail["subject"] == "Rinnovo automatico disattivato: PEC Standard"
    assert "http://shop.test/area-clienti" in mail["text"]
    assert mail["links"] == [
        "http://shop.test/area-clienti",
        "http://shop.test/area-clienti?a=1&b=2",
    ]
    later = (now_utc() + timedelta(minutes=1)).isoformat()
    since = api.get(
        "/sandbox/email", query_string={"to": "mario@example.it", "since": later}, headers=AUTH
    )
    assert since.json["emails"] == []
    today = api.get(f"/sandbox/email?to=mario@example.it&since={now_utc():%Y-%m-%d}", headers=AUTH)
    assert [m["subject"] for m in today.json["emails"]] == [mail["subject"]]
    wrong = api.get("/sandbox/email?to=mario@example.it&since=ieri", headers=AUTH)
    assert (wrong.status_code, wrong.json["errore"]) == (
        400,
        "since: usa il formato AAAA-MM-GG oppure AAAA-MM-GGTHH:MM.",
    )
    assert api.get("/sandbox/email", headers=AUTH).status_code == 400
    assert api.get("/sandbox/ordini/999999", headers=AUTH).json == {"errore": "Ordine non trovato."}


def test_staff_for_a_test_gets_a_fresh_account_and_its_secret(api):
    answer = api.post("/sandbox/staff", json={}, headers=AUTH)
    assert answer.status_code == 200
    assert answer.json["email"].endswith("@pecshop.test")
    assert len(pyotp.TOTP(answer.json["totp_secret"]).now()) == 6
    other = api.post("/sandbox/staff", json={}, headers=AUTH).json
    assert other["email"] != answer.json["email"]
    wrong = api.post("/sandbox/staff", json={"role": "capo"}, headers=AUTH)
    assert wrong.status_code == 400 and "Ruolo non valido" in wrong.json["errore"]


# --- make run: a QA deployment -------------------------------------------------------------


def test_make_run_turns_the_sandbox_on_with_a_kept_token_but_not_in_production(
    tmp_path, monkeypatch
):
    from webapp import devserver

    monkeypatch.delenv("SANDBOX_TOKEN", raising=False)
    monkeypatch.delenv("SANDBOX", raising=False)
    monkeypatch.setattr(devserver, "INSTANCE_DIR", tmp_path)
    monkeypatch.setattr(devserver.sandbox_token, "__defaults__", (tmp_path,))
    first = devserver.qa_settings()
    assert first["SANDBOX"] == "1" and len(first["SANDBOX_TOKEN"]) >= 24
    assert devserver.qa_settings() == first  # the same token after a restart
    monkeypatch.setenv("SANDBOX_TOKEN", "scelto-da-qa")
    assert devserver.qa_settings()["SANDBOX_TOKEN"] == "scelto-da-qa"
    monkeypatch.setenv("APP_ENV", "production")
    assert devserver.qa_settings() == {}


def test_the_invoice_job_runs_now_through_the_sandbox(
    app, sandbox, api, sdi, create_customer, catalogue
):
    """QA need not wait for the scheduler's minute: one pass of `flask invoices transmit`."""
    from tests.unit.sdi_helpers import buyer_with_code, paid_invoice
    from webapp.clock import now_utc

    sandbox.extensions["sdi_gateway"] = app.extensions["sdi_gateway"]  # the sdi fixture's

    invoice = paid_invoice(
        buyer_with_code(create_customer, "TESTRC1", "rc@example.it"),
        catalogue["products"],
        now_utc(),
    )
    assert invoice.sdi_label == "Da inviare"
    assert api.post("/sandbox/fatture/trasmetti").status_code == 401  # the token, as everywhere

    answer = api.post("/sandbox/fatture/trasmetti", headers=AUTH)

    assert answer.status_code == 200, answer.json
    assert (answer.json["prepared"], answer.json["sent"]) == (1, 1)
    assert "1 inviate" in answer.json["text"]
    sdi.push()  # the sandbox's webhook: delivered
    db.session.expire_all()
    assert db.session.get(type(invoice), invoice.id).sdi_label == "Consegnata"
    again = api.post("/sandbox/fatture/trasmetti", headers=AUTH)
    assert again.json["sent"] == 0  # nothing sent twice
