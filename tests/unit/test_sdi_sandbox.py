"""The SdI · Sandbox checks files as the SdI does and rejects them with its codes; it refuses
an empty file or unsigned calls; its clock moves by CLI or control endpoint."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from webapp.sdi.messages import validate
from webapp.signing import sign_request

SECRET = "test-sdi-secret"
SELLER = "IT01234560157"


@pytest.fixture
def sandbox(tmp_path):
    from webapp.sdi import create_sdi_app
    from webapp.sdi.extensions import db

    app = create_sdi_app(
        {
            "TESTING": True,
            "SDI_DATABASE_URL": f"sqlite:///{tmp_path / 'sdi.db'}",
            "SDI_SHARED_SECRET": SECRET,
            "SDI_NOTIFY_ENABLED": False,
        }
    )
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def call(app, method: str, path: str, payload=None, secret: str = SECRET):
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = sign_request(secret, "pec-shop", method, path.split("?")[0], body, int(time.time()))
    return app.test_client().open(path, method=method, data=body, headers=headers)


def send(app, name: str, content: bytes):
    payload = {"nome_file": name, "file": base64.b64encode(content).decode()}
    return call(app, "POST", "/api/v1/fatture", payload)


def invoice_xml(
    number: str = "2026/000001", kind: str = "TD01", code: str = "TESTRC1", progr="00001"
):
    """A valid FatturaPA invoice, as the shop builds it."""
    from datetime import date

    from webapp.invoicing import fatturapa

    seller = fatturapa.Seller(
        name="PEC Shop S.r.l.",
        vat_number="01234560157",
        tax_code="01234560157",
        address="Via Roma 1",
        cap="20121",
        city="Milano",
        province="MI",
        rea_office="MI",
        rea_number="1234567",
        email="a@pecshop.test",
        phone="0212345678",
        iban="IT60X0542811101000000123456",
    )
    customer = {
        "customer_type": "business",
        "company_name": "Rossi S.r.l.",
        "vat_number": "00743110157",
        "tax_code": "",
        "address": "Via Garibaldi 10",
        "postal_code": "20121",
        "city": "Milano",
        "province": "MI",
        "country": "IT",
        "sdi_code": code,
        "pec": "",
    }
    line = {
        "description": "PEC",
        "quantity": 1,
        "unit": "anni",
        "unit_price_cents": 1000,
        "discount_cents": 0,
        "net_cents": 1000,
    }
    doc = fatturapa.Document(
        kind=kind,
        number=number,
        issued_on=date(2026, 11, 25),
        progressive=progr,
        customer=customer,
        lines=[line],
        net_cents=1000,
        vat_cents=220,
        vat_rate_percent=22,
        total_cents=1220,
        paid_cents=1220,
        split_payment=False,
        payment_method="MP08",
        order_number="2026-000001",
    )
    return fatturapa.build(doc, seller)


def feed(app) -> list[tuple[str, bytes]]:
    answer = call(app, "GET", "/api/v1/notifiche?dopo=0")
    assert answer.status_code == 200
    return [(n["tipo"], base64.b64decode(n["xml"])) for n in answer.json["notifiche"]]


def errors_of(xml: bytes) -> list[tuple[str, str]]:
    root = etree.fromstring(xml)
    return [(e.findtext("Codice"), e.findtext("Descrizione")) for e in root.iter("Errore")]


def test_a_valid_file_gets_an_identifier_and_a_delivery_receipt(sandbox):
    answer = send(sandbox, f"{SELLER}_00001.xml", invoice_xml())
    assert answer.status_code == 201
    assert answer.json["identificativo_sdi"].isdigit()
    ((kind, xml),) = feed(sandbox)
    assert kind == "RC" and validate(xml) == []
    assert b"<Codice>TESTRC1</Codice>" in xml


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("fattura.xml", None, "00001"),
        (f"{SELLER}_1.xml", None, "00001"),
        (f"{SELLER}_00001.xml", b"<?xml version='1.0'?><nonfattura/>", "00200"),
        (f"{SELLER}_00001.xml", b"not xml at all", "00200"),
        (f"{SELLER}_00001.xml", b"<x>" + b" " * (5 * 1024 * 1024) + b"</x>", "00003"),
    ],
)
def test_bad_files_are_rejected_with_the_sdi_code(sandbox, name, content, code):
    answer = send(sandbox, name, content or invoice_xml())
    assert answer.status_code == 201
    ((kind, xml),) = feed(sandbox)
    assert kind == "NS" and validate(xml) == []
    assert errors_of(xml)[0][0] == code


def test_the_schema_rejection_carries_the_validator_message(sandbox):
    broken = invoice_xml().replace(b"<Divisa>EUR</Divisa>", b"<Divisa>EURO</Divisa>")
    send(sandbox, f"{SELLER}_00001.xml", broken)
    ((_, xml),) = feed(sandbox)
    code, text = errors_of(xml)[0]
    assert code == "00200" and "Divisa" in text and "EURO" in text


def test_a_name_or_the_bytes_received_before_are_a_duplicate(sandbox):
    first = invoice_xml()
    send(sandbox, f"{SELLER}_00001.xml", first)
    send(sandbox, f"{SELLER}_00001.xml", invoice_xml(number="2026/000002"))  # same name
    send(sandbox, f"{SELLER}_00002.xml", first)  # same bytes
    kinds = [(k, errors_of(x)) for k, x in feed(sandbox)]
    assert kinds[0] == ("RC", [])
    assert [k for k, _ in kinds[1:]] == ["NS", "NS"]
    assert {e[0][0] for _, e in kinds[1:]} == {"00002"}


def test_a_number_already_delivered_is_a_duplicate_invoice_with_the_exceptions(sandbox):
    send(sandbox, f"{SELLER}_00001.xml", invoice_xml(code="TESTNS1", progr="00001"))  # NS 00311
    # the same number again after a rejection: fine (earlier rejected files are ignored)
    send(sandbox, f"{SELLER}_00002.xml", invoice_xml(progr="00002"))
    # once more, delivered already: 00404
    send(sandbox, f"{SELLER}_00003.xml", invoice_xml(progr="00003"))
    # a credit note with the same number is apart
    send(sandbox, f"{SELLER}_00004.xml", invoice_xml(kind="TD04", progr="00004"))
    results = [(k, [e[0] for e in errors_of(x)]) for k, x in feed(sandbox)]
    assert results == [("NS", ["00311"]), ("RC", []), ("NS", ["00404"]), ("RC", [])]


def test_an_empty_file_or_an_outage_is_refused_without_an_identifier(sandbox):
    answer = send(sandbox, f"{SELLER}_00001.xml", b"")
    assert answer.status_code == 400 and answer.json["error"] == "file_vuoto"
    assert call(sandbox, "POST", "/api/v1/servizio", {"disponibile": False}).status_code == 200
    assert send(sandbox, f"{SELLER}_00001.xml", invoice_xml()).status_code == 503
    call(sandbox, "POST", "/api/v1/servizio", {"disponibile": True})
    assert send(sandbox, f"{SELLER}_00001.xml", invoice_xml()).status_code == 201


def test_unsigned_or_wrongly_signed_calls_are_refused(sandbox):
    assert sandbox.test_client().get("/api/v1/notifiche").status_code == 401
    assert call(sandbox, "GET", "/api/v1/notifiche", secret="wrong").status_code == 401
    assert call(sandbox, "GET", "/api/v1/notifiche?dopo=x").status_code == 400


def test_the_clock_moves_by_the_control_endpoint_and_the_cli(sandbox, tmp_path, monkeypatch):
    from webapp.sdi import __main__ as cli
    from webapp.sdi.extensions import sdi_now

    send(sandbox, f"{SELLER}_00001.xml", invoice_xml(code="PADT15"))
    assert call(sandbox, "POST", "/api/v1/orologio", {"avanza_giorni": 10}).status_code == 200
    assert [k for k, _ in feed(sandbox)] == ["RC"]
    assert call(sandbox, "POST", "/api/v1/orologio", {"avanza_giorni": -1}).status_code == 400
    monkeypatch.setenv("SDI_DATABASE_URL", sandbox.config["SDI_DATABASE_URL"])
    monkeypatch.setenv("SDI_SHARED_SECRET", SECRET)
    cli.main(["clock", "--advance-days", "5"])
    assert [k for k, _ in feed(sandbox)] == ["RC", "DT"]
    with sandbox.app_context():
        assert sdi_now() - datetime.now(UTC) > timedelta(days=14)


def test_the_home_page_lists_files_notifications_and_test_codes(sandbox):
    send(sandbox, f"{SELLER}_00001.xml", invoice_xml())
    page = sandbox.test_client().get("/").get_data(as_text=True)
    assert f"{SELLER}_00001.xml" in page and "RC" in page
    assert "Codici destinatario di prova" in page and "PAEC02" in page and "0000000" in page


def test_the_sandbox_importing_the_shop_breaks_a_contract(tmp_path):
    from tests.unit.test_layers import _copy, _lint

    tree = _copy(tmp_path)
    services = tree / "webapp" / "sdi" / "services.py"
    services.write_text(services.read_text() + "\nimport webapp.invoicing.models  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "The mock SdI intermediary imports nothing of the shop" in result.stdout
    assert "BROKEN" in result.stdout
