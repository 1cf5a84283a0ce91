"""Hostile input on the mock bank's hosted pages (hypothesis): card form, summary, OTP, bank app.

Payments in every status, anything posted to any of them: never a 500; a refused request
changes nothing (a wrong OTP only counts the attempt); a final payment never changes; amounts,
order references and URLs never change; a card is saved only by an authorisation.
"""

from __future__ import annotations

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
    from webapp.bank import services

    now = datetime.now(UTC)
    key = uuid.uuid4().hex
    payment, _ = services.create_payment(
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
        services.submit_card(
            payment,
            holder="Mario Rossi",
            number=number,
            exp_month="12",
            exp_year=str(now.year + 3),
            cvv="1234" if number[0] == "3" else "123",
            now=now,
        )
        if confirm:
            services.confirm_payment(payment, now=now)
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
