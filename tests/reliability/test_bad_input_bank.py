"""Hostile input on the mock bank (hypothesis): hosted pages (card form, summary, OTP, bank app)
and the signed JSON API (payments, charges, refunds).

Payments in every status, anything posted to any of them: never a 500; a refused request
changes nothing (a wrong OTP only counts the attempt); a final payment never changes; amounts,
order references and URLs never change; a card is saved only by an authorisation.
Correctly signed API calls with any JSON body: never a 500; a 4xx changes nothing; the refunds
of a payment or charge never add up to more than it captured.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from tests.reliability import fuzz
from tests.reliability.conftest import SECRET, dispose_bank

pytestmark = pytest.mark.reliability

CARDS = [
    "4111111111111111",
    "5555555555554444",
    "4242424242424242",
    "378282246310005",
    "4000000000000002",
    "4000000000009995",
    "4000000000000069",
    "4000000000003063",
    "4000002760003184",
    "4242 4242 4242 4242",
    "4242-4242-4242-4242",
    "4242424242424241",
    "6011111111111117",
]
PAGE_FIELDS = ("holder", "number", "exp_month", "exp_year", "cvv")


@dataclass(frozen=True)
class Page:
    method: str
    path: str  # "{pid}" is replaced by a drawn payment id
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


PAGES = [
    Page("GET", "/pay/{pid}"),
    Page("POST", "/pay/{pid}", PAGE_FIELDS),
    Page("GET", "/pay/{pid}/edit"),
    Page("POST", "/pay/{pid}/confirm"),
    Page("POST", "/pay/{pid}/otp", ("otp",)),
    Page("GET", "/pay/{pid}/app/status"),
    Page("GET", "/app/{pid}"),
    Page("POST", "/app/{pid}/approve"),
    Page("POST", "/app/{pid}/refuse"),
    Page("POST", "/app/{pid}/{junk}"),
    Page("GET", "/pay/{pid}/result"),
]


def _payment(number: str | None, *, confirm: bool, amount: int = 12_200, notify: bool = True):
    """A hosted payment, its card submitted (and confirmed) with a test card."""
    from webapp.bank import payments

    now = datetime.now(UTC)
    key = uuid.uuid4().hex
    payment, _ = payments.create_payment(
        amount_cents=amount,
        currency="EUR",
        order_ref=f"ORD-{key[:8]}",
        description="Ordine di prova",
        return_url="http://shop.test/pagamenti/ritorno",
        notify_url="http://shop.test/pagamenti/notifica" if notify else None,
        save_card=True,
        idempotency_key=f"fuzz-{key}",
        now=now,
    )
    if number is not None:
        payments.submit_card(
            payment,
            holder="Mario Rossi",
            number=number,
            exp_month="12",
            exp_year=str(now.year + 3),
            cvv="1234" if number[0] == "3" else "123",
            now=now,
        )
        if confirm:
            payments.confirm_payment(payment, now=now)
    return payment


@pytest.fixture
def bank_pages(bank_database_url) -> Iterator[Flask]:
    """The bank with payments in every status (CSRF off here: a separate test checks it)."""
    from webapp.bank import create_bank_app
    from webapp.bank.extensions import db as bank_db

    bank_app = create_bank_app(
        {
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "BANK_DATABASE_URL": bank_database_url,
            "BANK_SHARED_SECRET": SECRET,
            "BANK_NOTIFY_ENABLED": False,
            "SECRET_KEY": "fuzz",
        }
    )
    with bank_app.app_context():
        _payment(None, confirm=False)  # created
        _payment(None, confirm=False, amount=0)  # a card verification, created
        _payment("4111111111111111", confirm=False)  # summary shown
        _payment("4111111111111111", confirm=True)  # SMS OTP challenge
        _payment("4111111111111111", confirm=True, notify=False)
        _payment("5555555555554444", confirm=True)  # bank app challenge
        _payment("4000000000003063", confirm=True)  # hardware token challenge
        _payment("4000002760003184", confirm=True)  # SMS challenge of the SCA card
        _payment("4242424242424242", confirm=True)  # authorised
        _payment("4000000000000002", confirm=True)  # declined
        bank_db.session.commit()
    yield bank_app
    dispose_bank(bank_app)


@dataclass
class BankState:
    """What the pages may and may not change."""

    payments: dict[str, dict]
    cards: int
    notifications: int


def _state(bank_app: Flask) -> tuple[fuzz.Snapshot, BankState]:
    from webapp.bank.extensions import db as bank_db

    with bank_app.app_context():
        snap = fuzz.snapshot(bank_db.session, bank_db.metadata)
        bank_db.session.remove()
    payments = {p["id"]: p for p in snap["bank_payment"]}
    return snap, BankState(payments, len(snap["bank_card"]), len(snap["bank_notification"]))


FIXED = (
    "amount_cents",
    "currency",
    "order_ref",
    "return_url",
    "notify_url",
    "idempotency_key",
    "save_card",
    "created_at",
)
FINAL = {"authorised", "declined", "failed"}


def check_bank_invariants(before: BankState, after: BankState) -> None:
    assert set(after.payments) == set(before.payments), "pages never create or delete payments"
    for pid, old in before.payments.items():
        new = after.payments[pid]
        assert {k: new[k] for k in FIXED} == {k: old[k] for k in FIXED}, pid
        if str(old["status"]) in FINAL:
            assert new == old, f"final payment {pid} changed"
    authorised_saving = sum(
        str(p["status"]) == "authorised" and p["save_card"] and p["card_token"] is not None
        for p in after.payments.values()
    )
    assert after.cards == authorised_saving
    final_notified = sum(
        str(p["status"]) in FINAL and p["notify_url"] is not None for p in after.payments.values()
    )
    assert after.notifications == final_notified


def _only_otp_counted(before: fuzz.Snapshot, after: fuzz.Snapshot, pid: str) -> None:
    """A wrong OTP (422) counts the attempt on that payment and changes nothing else."""
    assert fuzz.changed_tables(before, after) in ([], ["bank_payment"])
    old = {p["id"]: p for p in before["bank_payment"]}
    for new in after["bank_payment"]:
        expected = dict(old[new["id"]])
        if new["id"] == pid:
            expected["otp_failures"] += new["otp_failures"] - old[pid]["otp_failures"]
            assert new["otp_failures"] - old[pid]["otp_failures"] in (0, 1)
        assert new == expected


@pytest.mark.parametrize("target", PAGES, ids=str)
@fuzz.FUZZ
@given(data=st.data())
def test_hostile_input_never_breaks_the_bank_pages(bank_pages: Flask, target: Page, data) -> None:
    from webapp.bank.extensions import db as bank_db
    from webapp.bank.models import Payment

    with bank_pages.app_context():
        ids = list(bank_db.session.scalars(select(Payment.id)))
        codes = [c for c in bank_db.session.scalars(select(Payment.otp_code)) if c]
        bank_db.session.remove()
    pid = data.draw(st.one_of(st.sampled_from(ids), fuzz.junk()), label="payment id")
    meaningful = [
        *CARDS,
        *codes,
        "Mario Rossi",
        "12",
        "1",
        "13",
        "2030",
        "30",
        "2000",
        "123",
        "1234",
        "²",
        "１２",
        "٠١",
        "1" * 5000,
        "4" * 5000,
    ]
    fields = data.draw(fuzz.form(target.fields, fuzz.values_for(meaningful)), label="fields")
    path = target.path.replace("{pid}", quote(pid, safe="")[:2000])
    path = path.replace("{junk}", quote(data.draw(fuzz.junk(), label="decision")[:50], safe=""))
    headers = {"HX-Request": "true"} if data.draw(st.booleans(), label="htmx") else {}

    snap_before, before = _state(bank_pages)
    response = bank_pages.test_client().open(
        path, method=target.method, data=fields, headers=headers
    )
    snap_after, after = _state(bank_pages)

    context = {"page": str(target), "path": path[:200], "status": response.status_code}
    assert response.status_code < 500, context
    if response.status_code == 422 and target.path.endswith("/otp"):
        _only_otp_counted(snap_before, snap_after, pid)
    elif 400 <= response.status_code < 500:
        fuzz.assert_unchanged(snap_before, snap_after, context)
    check_bank_invariants(before, after)


# ---- the signed JSON API ------------------------------------------------------------------------


def _json_values() -> st.SearchStrategy[object]:
    """Any JSON value, small or absurd, and the strings the fuzz module knows."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**30), 10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        fuzz.junk(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )


@dataclass(frozen=True)
class Endpoint:
    path: str
    fields: tuple[str, ...]

    def __str__(self) -> str:
        return self.path


ENDPOINTS = [
    Endpoint(
        "/api/payments",
        (
            "amount_cents",
            "currency",
            "order_ref",
            "description",
            "return_url",
            "notify_url",
            "save_card",
            "idempotency_key",
        ),
    ),
    Endpoint(
        "/api/charges",
        (
            "token",
            "amount_cents",
            "currency",
            "order_ref",
            "description",
            "initiator",
            "idempotency_key",
        ),
    ),
    Endpoint(
        "/api/refunds", ("payment_ref", "amount_cents", "currency", "reason", "idempotency_key")
    ),
]


@pytest.fixture
def bank_api(bank_pages: Flask) -> Flask:
    """The bank of the pages above, plus a saved-card charge to refund and a refund made."""
    from webapp.bank import charges, refunds
    from webapp.bank.extensions import db as bank_db
    from webapp.bank.models import Card

    with bank_pages.app_context():
        now = datetime.now(UTC)
        token = bank_db.session.scalars(select(Card.token)).first()
        charge, _ = charges.charge_token(
            token=token,
            amount_cents=4880,
            currency="EUR",
            order_ref="REN-1",
            description="Rinnovo",
            initiator="merchant",
            idempotency_key="fuzz-charge",
            now=now,
        )
        refunds.refund(
            target_id=charge.id,
            amount_cents=880,
            currency="EUR",
            reason="Parziale",
            idempotency_key="fuzz-refund",
            now=now,
        )
        bank_db.session.commit()
    return bank_pages


def _api_meaningful(bank_app: Flask) -> list[object]:
    from webapp.bank.extensions import db as bank_db
    from webapp.bank.models import Card, Charge, Payment

    with bank_app.app_context():
        ids = [
            *bank_db.session.scalars(select(Payment.id)),
            *bank_db.session.scalars(select(Charge.id)),
        ]
        tokens = list(bank_db.session.scalars(select(Card.token)))
        bank_db.session.remove()
    return [
        *ids,
        *tokens,
        "EUR",
        "customer",
        "merchant",
        "fuzz-refund",
        "fuzz-charge",
        1,
        880,
        4000,
        4880,
        12_200,
        0,
        -1,
        True,
        "http://shop.test/x",
    ]


def _signed_post(bank_app: Flask, path: str, raw: bytes):
    from webapp.signing import sign_request

    headers = sign_request(SECRET, "pec-shop", "POST", path, raw, int(time.time()))
    headers["Content-Type"] = "application/json"
    return bank_app.test_client().post(path, data=raw, headers=headers)


def check_refund_invariants(snap: fuzz.Snapshot) -> None:
    """Refunds never exceed the captured amount, and refunded_cents is their sum."""
    refunds = snap["bank_refund"]
    for table, key in (("bank_payment", "payment_id"), ("bank_charge", "charge_id")):
        for row in snap[table]:
            total = sum(r["amount_cents"] for r in refunds if r[key] == row["id"])
            assert row["refunded_cents"] == total, row["id"]
            assert 0 <= total <= row["amount_cents"], row["id"]


@pytest.mark.parametrize("target", ENDPOINTS, ids=str)
@fuzz.FUZZ
@given(data=st.data())
def test_hostile_json_never_breaks_the_bank_api(bank_api: Flask, target: Endpoint, data) -> None:
    meaningful = _api_meaningful(bank_api)
    value = st.one_of(_json_values(), st.sampled_from(meaningful), st.sampled_from(meaningful))
    as_object = st.fixed_dictionaries({}, optional={name: value for name in target.fields})
    body = data.draw(st.one_of(as_object, as_object, as_object, _json_values()), label="body")
    raw = json.dumps(body).encode()
    if data.draw(st.booleans(), label="mangle"):
        raw = data.draw(st.sampled_from([raw[:-1], raw + b"]", b"[" * 50_000, b"\xff" + raw, b""]))

    snap_before, before = _state(bank_api)
    response = _signed_post(bank_api, target.path, raw)
    snap_after, after = _state(bank_api)

    context = {"path": target.path, "body": raw[:200], "status": response.status_code}
    assert response.status_code < 500, context
    if not isinstance(body, dict) or raw[:1] != b"{":
        assert response.status_code == 400, context
    if response.status_code >= 400:
        fuzz.assert_unchanged(snap_before, snap_after, context)
    check_refund_invariants(snap_after)
    for pid, old in before.payments.items():  # the API never touches an existing payment's state
        new = after.payments[pid]
        assert {k: new[k] for k in (*FIXED, "status")} == {k: old[k] for k in (*FIXED, "status")}
