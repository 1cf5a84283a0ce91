"""Tampered signatures, amounts and ids (hypothesis): refused, and nothing created or paid.

The bank's API (signed by the shop), the shop's return URL (signed by the bank, carried by the
browser) and the bank's notification (signed by the bank) are altered one piece at a time.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
from flask import Flask
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from tests.reliability import fuzz
from tests.reliability.conftest import GOOD_PAN, MERCHANT, SECRET, dispose_bank
from tests.unit.bank_browser import BankBrowser
from webapp.clock import now_utc
from webapp.extensions import db
from webapp.shop import cart as shop_cart
from webapp.shop import checkout
from webapp.shop.models import PaymentMethod
from webapp.signing import (
    MERCHANT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign_request,
)

pytestmark = pytest.mark.reliability

TOKEN = "tok_reliability_known"
CHARGE_KEY = "known-charge"
PAYMENT_KEY = "known-payment"


NUMBERISH = ["²", "¹²³", "١٢٣٤", "1" * 400, "-1", "+1", " 1", "1 ", "0x1", "1.0", "1_0", ""]
TAMPER = settings(fuzz.FUZZ, max_examples=int(60 * fuzz.SCALE))  # cheap, many ways to tamper


def header_junk() -> st.SearchStrategy[str]:
    """Junk that can travel in an HTTP header (no line breaks), number-like text included."""
    return st.one_of(
        st.sampled_from(NUMBERISH),
        fuzz.junk().map(lambda s: s.replace("\r", "").replace("\n", "")[:300]),
    )


# --- the bank's API -------------------------------------------------------------------------------


@dataclass
class BankApi:
    app: Flask
    payment_id: str

    def snapshot(self) -> fuzz.Snapshot:
        from webapp.bank.extensions import db as bank_db

        with self.app.app_context():
            state = fuzz.snapshot(bank_db.session, bank_db.metadata)
            bank_db.session.remove()
        return state

    def send(self, method: str, path: str, body: bytes, headers: dict[str, str]):
        return self.app.test_client().open(
            path, method=method, data=body, headers={"Content-Type": "application/json", **headers}
        )


def _signed(method: str, path: str, body: bytes, **kw) -> dict[str, str]:
    return sign_request(
        kw.get("secret", SECRET),
        kw.get("merchant", MERCHANT),
        method,
        path,
        body,
        kw.get("ts", int(time.time())),
    )


@pytest.fixture
def bank_api(bank_database_url) -> Iterator[BankApi]:
    """The bank with a known card token, a charge and a hosted payment already made."""
    from webapp.bank import create_bank_app
    from webapp.bank.extensions import db as bank_db
    from webapp.bank.models import Card

    app = create_bank_app(
        {
            "TESTING": True,
            "BANK_DATABASE_URL": bank_database_url,
            "BANK_SHARED_SECRET": SECRET,
            "BANK_MERCHANT_ID": MERCHANT,
            "BANK_NOTIFY_ENABLED": False,
            "SECRET_KEY": "api",
        }
    )
    with app.app_context():
        bank_db.session.execute(
            insert(Card),
            [
                dict(
                    token=TOKEN,
                    pan=GOOD_PAN,
                    brand="visa",
                    last4="4242",
                    exp_month=12,
                    exp_year=now_utc().year + 3,
                    holder="Mario Rossi",
                    created_at=now_utc(),
                )
            ],
        )
        bank_db.session.commit()
    api = BankApi(app, "")
    for path, body in (
        ("/api/charges", _charge_body(CHARGE_KEY)),
        ("/api/payments", _payment_body(PAYMENT_KEY)),
    ):
        response = api.send("POST", path, body, _signed("POST", path, body))
        assert response.status_code == 201, response.text
    api.payment_id = response.json["payment_id"]
    yield api
    dispose_bank(app)


def _charge_body(key: str, amount: int = 610, token: str = TOKEN) -> bytes:
    return json.dumps(
        {
            "token": token,
            "amount_cents": amount,
            "currency": "EUR",
            "order_ref": "ORD-7",
            "description": "Rinnovo",
            "initiator": "merchant",
            "idempotency_key": key,
        }
    ).encode()


def _payment_body(key: str, amount: int = 12_200) -> bytes:
    return json.dumps(
        {
            "amount_cents": amount,
            "currency": "EUR",
            "order_ref": "ORD-8",
            "description": "Ordine",
            "return_url": "http://shop.test/ritorno",
            "notify_url": None,
            "save_card": True,
            "idempotency_key": key,
        }
    ).encode()


def _valid_requests(api: BankApi, key: str) -> list[tuple[str, str, bytes]]:
    """Requests the bank would carry out if they were signed properly."""
    return [
        ("POST", "/api/payments", _payment_body(key)),
        ("POST", "/api/charges", _charge_body(key)),
        ("POST", "/api/charges", _charge_body(CHARGE_KEY, amount=1)),  # the amount tampered
        ("GET", f"/api/payments/{api.payment_id}", b""),
        ("GET", f"/api/charges/by-key/{CHARGE_KEY}", b""),
        ("DELETE", f"/api/tokens/{TOKEN}", b""),
        ("GET", "/api/stats", b""),
    ]


TAMPERS = [
    "junk_sig",
    "flip_sig",
    "no_sig",
    "stale",
    "junk_ts",
    "no_ts",
    "merchant",
    "no_merchant",
    "secret",
    "body",
    "path",
    "method",
]


@TAMPER
@given(data=st.data())
def test_bank_api_refuses_every_tampered_signature(bank_api: BankApi, data) -> None:
    method, path, body = data.draw(st.sampled_from(_valid_requests(bank_api, "fresh-key")))
    tamper = data.draw(st.sampled_from(TAMPERS), label="tamper")
    now = int(time.time())
    headers = _signed(method, path, body, ts=now)
    send_method, send_path, send_body = method, path, body
    if tamper == "junk_sig":
        headers[SIGNATURE_HEADER] = data.draw(header_junk(), label="signature")
    elif tamper == "flip_sig":
        i = data.draw(st.integers(0, len(headers[SIGNATURE_HEADER]) - 1), label="position")
        sig = headers[SIGNATURE_HEADER]
        headers[SIGNATURE_HEADER] = sig[:i] + ("0" if sig[i] != "0" else "1") + sig[i + 1 :]
    elif tamper == "stale":
        skew = data.draw(st.integers(301, 10**9) | st.integers(-(10**9), -301), label="skew")
        headers = _signed(method, path, body, ts=now + skew)
    elif tamper == "junk_ts":
        headers[TIMESTAMP_HEADER] = data.draw(header_junk(), label="timestamp")
    elif tamper == "merchant":
        merchant = data.draw(header_junk(), label="merchant")
        headers = _signed(method, path, body, merchant=merchant, ts=now)
    elif tamper == "secret":
        headers = _signed(method, path, body, secret=data.draw(fuzz.junk(), label="secret"), ts=now)
    elif tamper == "body":
        send_body = data.draw(
            st.sampled_from(
                [
                    body.replace(b'"amount_cents": 610', b'"amount_cents": 1'),
                    body.replace(b"12200", b"1"),
                    body + b" ",
                    b"{}",
                    b"x",
                ]
            ),
            label="body",
        )
    elif tamper == "path":
        send_path = data.draw(st.sampled_from([p for _, p, _ in _valid_requests(bank_api, "k")]))
    elif tamper == "method":
        send_method = data.draw(st.sampled_from(["GET", "POST", "DELETE", "PUT"]))
    elif tamper.startswith("no_"):
        headers.pop(
            {"no_sig": SIGNATURE_HEADER, "no_ts": TIMESTAMP_HEADER, "no_merchant": MERCHANT_HEADER}[
                tamper
            ]
        )
    assume(headers != _signed(send_method, send_path, send_body, ts=now))  # really tampered

    before = bank_api.snapshot()
    response = bank_api.send(send_method, send_path, send_body, headers)
    context = {
        "tamper": tamper,
        "request": f"{send_method} {send_path}",
        "status": response.status_code,
    }
    assert response.status_code in (401, 404, 405), context  # 404/405: no such route at all
    fuzz.assert_unchanged(before, bank_api.snapshot(), context)


def json_values() -> st.SearchStrategy[object]:
    meaningful = st.sampled_from(
        [
            TOKEN,
            "EUR",
            "eur",
            "merchant",
            "customer",
            CHARGE_KEY,
            PAYMENT_KEY,
            "http://shop.test/ritorno",
            "javascript:alert(1)",
            "ORD-7",
            610,
            0,
            -610,
            True,
            1.5,
            10**8,
            10**8 + 1,
        ]
    )
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        fuzz.junk().map(lambda s: s[:5000]),
        meaningful,
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=4,
    )


CHARGE_FIELDS = (
    "token",
    "amount_cents",
    "currency",
    "order_ref",
    "description",
    "initiator",
    "idempotency_key",
)
PAYMENT_FIELDS = (
    "amount_cents",
    "currency",
    "order_ref",
    "description",
    "return_url",
    "notify_url",
    "save_card",
    "idempotency_key",
)


@TAMPER
@given(data=st.data())
def test_bank_api_refuses_bad_bodies_and_ids_without_creating_anything(
    bank_api: BankApi, data
) -> None:
    kind = data.draw(
        st.sampled_from(
            ["charge", "payment", "one_charge_field", "one_payment_field", "raw", "ids"]
        ),
        label="kind",
    )
    if kind.startswith("one_"):  # a valid request with one field changed or missing
        charge = kind == "one_charge_field"
        key = f"k-{uuid.uuid4().hex}"
        doc = json.loads(_charge_body(key) if charge else _payment_body(key))
        field = data.draw(st.sampled_from(sorted(doc)), label="field")
        if data.draw(st.booleans(), label="drop"):
            del doc[field]
        else:
            doc[field] = data.draw(json_values(), label="value")
        method, path, body = "POST", "/api/charges" if charge else "/api/payments", b""
        body = json.dumps(doc).encode()
    elif kind in ("charge", "payment"):
        fields = CHARGE_FIELDS if kind == "charge" else PAYMENT_FIELDS
        method, path = "POST", f"/api/{kind}s"
        doc = data.draw(
            st.dictionaries(st.sampled_from([*fields, "x"]), json_values()), label="body"
        )
        body = json.dumps(doc).encode()
    elif kind == "raw":
        method, path = "POST", data.draw(st.sampled_from(["/api/charges", "/api/payments"]))
        body = data.draw(st.binary(max_size=200) | fuzz.junk().map(str.encode), label="raw")
    else:
        method, prefix = data.draw(
            st.sampled_from(
                [
                    ("GET", "/api/payments/"),
                    ("GET", "/api/charges/by-key/"),
                    ("DELETE", "/api/tokens/"),
                ]
            )
        )
        ident = data.draw(fuzz.junk().map(lambda s: s[:2000]), label="id")
        assume(ident != TOKEN)
        path, body = prefix + ident, b""
    url = quote(path, safe="/")
    before = bank_api.snapshot()
    sent_path = bank_api.app.test_request_context(url).request.path  # as the bank will see it
    response = bank_api.send(method, url, body, _signed(method, sent_path, body))
    after = bank_api.snapshot()

    context = {
        "request": f"{method} {path[:120]}",
        "body": body[:300],
        "status": response.status_code,
    }
    assert response.status_code < 500, context
    if response.status_code >= 400:
        fuzz.assert_unchanged(before, after, context)
    else:
        assert response.status_code in (200, 201, 204), context
        # Accepted: a well-formed request, carried out at most once per idempotency key.
        changed = fuzz.changed_tables(before, after)
        assert changed in ([], ["bank_payment"], ["bank_charge"]), context


# --- the shop: return URL and notification --------------------------------------------------------


@pytest.fixture
def authorised(app, client, auth, bank, dummy_customer, catalogue) -> dict[str, str]:
    """An order paid at the bank (4242, no challenge): the signed 'torna al negozio' params."""
    cart = shop_cart.get_or_create_cart(dummy_customer.id, None)
    shop_cart.add_product(cart, catalogue["products"]["PEC-STD"].id)
    shop_cart.set_payment_method(cart, PaymentMethod.CARD)
    order = checkout.confirm_order(cart, dummy_customer.id, cart.checkout_token, True, now_utc())
    db.session.commit()
    auth.login()
    response = client.post(f"/ordini/{order.id}/paga")
    assert response.status_code == 303
    back = BankBrowser(bank).pay(response.headers["Location"], GOOD_PAN)
    return dict(parse_qsl(urlsplit(back).query))


def _shop_state(bank_app: Flask) -> tuple[fuzz.Snapshot, fuzz.Snapshot]:
    from webapp.bank.extensions import db as bank_db

    shop_state = fuzz.snapshot(db.session, db.metadata)
    with bank_app.app_context():
        bank_state = fuzz.snapshot(bank_db.session, bank_db.metadata)
        bank_db.session.remove()
    return shop_state, bank_state


@TAMPER
@given(data=st.data())
def test_tampered_return_from_the_bank_is_refused(app, client, bank, authorised, data) -> None:
    params = [(k, v) for k, v in authorised.items()]
    op = data.draw(st.sampled_from(["change", "drop", "add", "duplicate_first"]), label="op")
    key = data.draw(st.sampled_from(list(authorised)), label="key")
    value = data.draw(
        fuzz.values_for(
            [
                "1",
                "0",
                "1220",
                "610",
                "declined",
                "authorised",
                "USD",
                "ORD-1",
                "ORD-2",
                authorised["sig"].upper(),
                authorised["ts"] + "0",
            ]
        ),
        label="value",
    )
    if op == "change":
        assume(value != authorised[key])
        params = [(k, value if k == key else v) for k, v in params]
    elif op == "drop":
        params = [(k, v) for k, v in params if k != key]
    elif op == "add":
        extra = data.draw(st.text(min_size=1, max_size=10), label="extra key")
        assume(extra not in authorised)
        params.append((extra, value))
    else:  # the server reads the first of two values
        assume(value != authorised[key])
        params.insert(0, (key, value))
    path = data.draw(st.sampled_from(["/pagamenti/ritorno", "/area-clienti/carte/aggiunta"]))

    before = _shop_state(bank)
    response = client.get(path, query_string=urlencode(params))
    context = {"op": op, "key": key, "path": path, "status": response.status_code}
    assert response.status_code in (400, 404), context
    fuzz.assert_unchanged(before[0], _shop_state(bank)[0], context)


@TAMPER
@given(data=st.data())
def test_tampered_notification_is_refused(app, bank, authorised, data) -> None:
    body = json.dumps(
        {k: authorised[k] for k in ("payment_id", "order_ref", "status", "currency")}
    ).encode()
    path = "/pagamenti/notifica"
    headers = sign_request(
        app.config["BANK_SHARED_SECRET"], MERCHANT, "POST", path, body, int(time.time())
    )
    tamper = data.draw(st.sampled_from(["sig", "ts", "body", "secret", "none"]), label="tamper")
    if tamper == "sig":
        headers[SIGNATURE_HEADER] = data.draw(header_junk(), label="signature")
    elif tamper == "ts":
        ts = data.draw(header_junk() | st.integers(-(10**12), 10**12).map(str), label="ts")
        assume(ts != headers[TIMESTAMP_HEADER])
        headers[TIMESTAMP_HEADER] = ts
    elif tamper == "body":
        new = data.draw(fuzz.junk().map(str.encode), label="body")
        assume(new != body)
        body = new
    elif tamper == "secret":
        secret = data.draw(fuzz.junk(), label="secret")
        assume(secret != app.config["BANK_SHARED_SECRET"])
        headers = sign_request(secret, MERCHANT, "POST", path, body, int(time.time()))
    else:
        headers = {}

    before = _shop_state(bank)
    response = app.test_client().post(path, data=body, headers=headers)
    context = {"tamper": tamper, "status": response.status_code}
    # A body over the webhook's size limit is refused before its signature is read (413).
    too_large = len(body) > app.config["WEBHOOK_MAX_CONTENT_LENGTH"]
    assert response.status_code == (413 if too_large else 401), context
    fuzz.assert_unchanged(before[0], _shop_state(bank)[0], context)


def test_the_genuine_return_pays_once(app, client, bank, authorised) -> None:
    """The control: untampered, the same parameters pay the order, once."""
    from webapp.payments.models import Payment, PaymentStatus
    from webapp.shop.order_models import Order, OrderStatus

    for _ in range(2):
        response = client.get("/pagamenti/ritorno", query_string=authorised)
        assert response.status_code == 303
    db.session.rollback()
    order = db.session.get(Order, int(authorised["order_ref"].removeprefix("ORD-")))
    assert order.status is OrderStatus.PAID
    statuses = db.session.scalars(select(Payment.status).where(Payment.order_id == order.id))
    assert list(statuses) == [PaymentStatus.SUCCEEDED]


@pytest.mark.parametrize(
    ("path", "field"),
    [("/api/charges", f) for f in CHARGE_FIELDS if f != "amount_cents"]
    + [("/api/payments", f) for f in PAYMENT_FIELDS if f not in ("amount_cents", "save_card")],
)
def test_bank_api_refuses_a_nul_byte_in_any_text_field(bank_api: BankApi, path, field) -> None:
    """PostgreSQL cannot store or look up a NUL byte: the bank must refuse it, not fail."""
    key = f"k-{uuid.uuid4().hex}"
    doc = json.loads(_charge_body(key) if path == "/api/charges" else _payment_body(key))
    doc[field] = f"{doc[field] or 'http://shop.test/n'}\x00"
    body = json.dumps(doc).encode()
    before = bank_api.snapshot()
    response = bank_api.send("POST", path, body, _signed("POST", path, body))
    assert response.status_code == 400, response.text
    fuzz.assert_unchanged(before, bank_api.snapshot(), {"field": field})
