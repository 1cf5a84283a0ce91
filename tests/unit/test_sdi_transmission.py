"""The transmission's parts one by one, on the shop's side of the intermediary: an attempt's
fixed name and bytes, which attempts are due and claimable (each boundary), what a call's
failure or a lost answer leaves on the attempt, the compare-and-set that moves it, which
document "Reinvia" takes and which "Dati mancanti" documents a billing profile releases."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from lxml import etree
from sqlalchemy import select, update

from tests.unit.sdi_helpers import attempts, buyer_with_code, copies, paid_invoice
from webapp import signing
from webapp.errors import DomainError
from webapp.extensions import db
from webapp.invoicing.models import Invoice, Transmission
from webapp.invoicing.numbering import progressive
from webapp.invoicing.sdi_gateway import (
    FeedItem,
    HttpSdiGateway,
    Receipt,
    SdiRefused,
    SdiUnavailable,
)
from webapp.invoicing.sdi_jobs import transmit_pass
from webapp.invoicing.sdi_states import SdiState
from webapp.invoicing.transmission import (
    backoff,
    claim,
    complete_missing_data,
    deliver,
    due_attempts,
    has_missing_data,
    latest_attempt,
    move,
    open_attempt,
    prepare_due,
    record_receipt,
    resend,
    sdi_state,
    sync_invoice,
)
from webapp.payments.gateway import HttpResponse, response_method
from webapp.shop.models import BillingProfile

MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


@pytest.fixture
def products(catalogue):
    return catalogue["products"]


@pytest.fixture
def invoice(sdi, create_customer, products, now):
    return paid_invoice(buyer_with_code(create_customer, "TESTRC1", "b@example.it"), products, now)


class FakeSdi:
    """An intermediary that answers as told and records what it was asked."""

    def __init__(self, known=None, fail=None):
        self.known = known
        self.fail = fail
        self.calls: list[tuple[str, str]] = []

    def find_file(self, file_name):
        self.calls.append(("find", file_name))
        return self.known

    def send_file(self, file_name, content):
        self.calls.append(("send", file_name))
        if self.fail:
            raise self.fail
        return Receipt("4242", file_name)


def _missing_data_invoice(create_customer, products, now, email):
    from tests.unit.invoicing_helpers import confirmed_order, pay

    customer = create_customer(email=email, billing=False)
    order = confirmed_order(customer, products, now)
    db.session.query(BillingProfile).filter_by(customer_id=customer.id).delete()
    pay(order, now)
    db.session.commit()
    return customer, db.session.scalars(db.select(Invoice).filter_by(order_id=order.id)).one()


def test_the_backoff_doubles_from_a_minute_up_to_an_hour():
    assert [backoff(n) for n in (0, 1, 2, 3, 6)] == [
        MINUTE,
        MINUTE,
        2 * MINUTE,
        4 * MINUTE,
        32 * MINUTE,
    ]
    assert backoff(7) == backoff(30) == timedelta(hours=1)  # 64 minutes: capped


def test_an_attempt_fixes_its_name_bytes_and_times_before_any_call(app, invoice, now):
    invoice.sdi_state = SdiState.MISSING_DATA  # shown "Da inviare" again once an attempt opens
    attempt = open_attempt(invoice, now + SECOND)
    db.session.commit()
    db.session.expire_all()
    attempt = db.session.get(Transmission, attempt.id)
    code = progressive(attempt.id)
    assert attempt.file_name == f"IT01234560157_{code}.xml"
    assert etree.fromstring(attempt.xml).findtext(".//ProgressivoInvio") == code
    assert attempt.sha256 == hashlib.sha256(attempt.xml).hexdigest()
    assert attempt.intermediary == app.config["SDI_INTERMEDIARY"]
    assert attempt.state is SdiState.TO_SEND and attempt.tries == 0
    assert attempt.created_at == attempt.next_try_at == now + SECOND
    assert attempt.claimed_until is None and attempt.sdi_id is None
    assert sdi_state(invoice.id) is SdiState.TO_SEND
    assert sdi_state(invoice.id + 1000) is None


def test_prepare_due_opens_one_attempt_per_document_to_send_lowest_first(
    sdi, create_customer, products, now
):
    docs = [
        paid_invoice(buyer_with_code(create_customer, "TESTRC1", f"p{i}@example.it"), products, now)
        for i in range(3)
    ]
    _, missing = _missing_data_invoice(create_customer, products, now, "m@example.it")
    open_attempt(docs[0], now)  # already in flight: not taken, nor counted in the limit
    assert prepare_due(now, limit=1) == 1
    assert [len(attempts(d.id)) for d in docs] == [1, 1, 0]
    assert prepare_due(now) == 1
    assert prepare_due(now) == 0
    assert [len(attempts(d.id)) for d in docs] == [1, 1, 1] and attempts(missing.id) == []
    # an attempt no longer in flight (rejected) does not hold its document back
    db.session.execute(
        update(Transmission).where(Transmission.invoice_id == docs[2].id).values(state="scartata")
    )
    assert prepare_due(now, limit=1) == 1 and len(attempts(docs[2].id)) == 2


def test_a_pass_takes_two_hundred_documents_and_attempts_at_a_time(invoice, now):
    copies(invoice, 200)
    assert prepare_due(now) == 200
    assert prepare_due(now) == 1
    assert len(due_attempts(now)) == 200
    assert len(due_attempts(now, limit=300)) == 201


def test_due_attempts_boundaries_of_the_next_try_and_of_the_lease(invoice, now):
    first = open_attempt(invoice, now)
    assert due_attempts(now) == [first.id]
    assert due_attempts(now - SECOND) == []  # its next try is later
    first.claimed_until = now
    db.session.flush()
    assert due_attempts(now) == []  # the lease still holds at its last instant
    assert due_attempts(now + SECOND) == [first.id]
    first.state = SdiState.SENT
    db.session.flush()
    assert due_attempts(now + SECOND) == []


def test_due_attempts_in_id_order_up_to_the_limit(sdi, create_customer, products, now):
    docs = [
        paid_invoice(buyer_with_code(create_customer, "TESTRC1", f"d{i}@example.it"), products, now)
        for i in range(3)
    ]
    opened = [open_attempt(d, now).id for d in docs]
    assert due_attempts(now) == opened
    assert due_attempts(now, limit=2) == opened[:2]


def test_a_claim_leases_the_attempt_for_five_minutes_and_counts_the_try(
    invoice, create_customer, products, now
):
    attempt = open_attempt(invoice, now)
    buyer = buyer_with_code(create_customer, "TESTRC1", "other@example.it")
    other = open_attempt(paid_invoice(buyer, products, now), now)
    db.session.commit()
    claimed = claim(attempt.id, now)
    assert claimed is not None and claimed.id == attempt.id
    assert db.session.get(Transmission, other.id).tries == 0  # only the attempt claimed
    assert claimed.tries == 1 and claimed.claimed_until == now + 5 * MINUTE
    assert claim(attempt.id, now) is None  # the other transmitter loses
    assert claim(attempt.id, now + 5 * MINUTE) is None  # the lease's last instant
    again = claim(attempt.id, now + 5 * MINUTE + SECOND)
    assert again.tries == 2 and again.claimed_until == now + 10 * MINUTE + SECOND
    again.state = SdiState.SENT
    again.claimed_until = None
    db.session.flush()
    assert claim(attempt.id, now + timedelta(hours=1)) is None  # sent: not claimable
    assert claim(attempt.id + 100, now) is None


def test_the_first_try_sends_without_asking_and_records_the_receipt(invoice, now):
    attempt = claim(open_attempt(invoice, now).id, now)
    attempt.last_error = "earlier failure"
    fake = FakeSdi()
    assert deliver(attempt, now + SECOND, fake) is True
    assert fake.calls == [("send", attempt.file_name)]
    db.session.expire_all()
    attempt = db.session.get(Transmission, attempt.id)
    assert attempt.state is SdiState.SENT and attempt.sdi_id == "4242"
    assert attempt.sent_at == now + SECOND
    assert attempt.claimed_until is None and attempt.last_error is None
    assert sdi_state(invoice.id) is SdiState.SENT


def test_a_later_try_asks_first_and_takes_the_receipt_it_finds(invoice, now):
    attempt = claim(open_attempt(invoice, now).id, now)
    attempt.tries = 2
    fake = FakeSdi(known=Receipt("777", attempt.file_name))
    assert deliver(attempt, now, fake) is True
    assert fake.calls == [("find", attempt.file_name)]  # never a second file
    assert attempt.sdi_id == "777" and attempt.state is SdiState.SENT


@pytest.mark.parametrize(
    "fail", [SdiUnavailable("x" * 300), SdiRefused("E1", "y" * 300)], ids=["down", "refused"]
)
def test_a_failed_call_leaves_the_attempt_waiting_with_backoff(invoice, now, fail):
    attempt = claim(open_attempt(invoice, now).id, now)
    for _ in range(2):
        attempt = claim(attempt.id, attempt.claimed_until + SECOND) if attempt.tries else attempt
    later = now + timedelta(hours=2)
    attempt.claimed_until = later
    db.session.flush()
    assert deliver(attempt, later, FakeSdi(fail=fail)) is False
    db.session.expire_all()
    attempt = db.session.get(Transmission, attempt.id)
    assert attempt.state is SdiState.TO_SEND and attempt.sdi_id is None
    assert attempt.last_error == str(fail)[:200] and len(attempt.last_error) == 200
    assert attempt.next_try_at == later + backoff(attempt.tries)
    assert attempt.tries == 3 and attempt.claimed_until is None
    assert sdi_state(invoice.id) is SdiState.TO_SEND


def test_a_receipt_after_the_outcome_keeps_the_outcome(invoice, now):
    attempt = open_attempt(invoice, now)
    attempt.claimed_until = now + MINUTE
    attempt.last_error = "read timeout"
    assert move(attempt, SdiState.DELIVERED, sdi_id="555")  # a fast webhook came first
    sync_invoice(attempt)
    record_receipt(attempt, "999", now + SECOND)
    db.session.expire_all()
    attempt = db.session.get(Transmission, attempt.id)
    assert attempt.state is SdiState.DELIVERED and attempt.sdi_id == "555"
    assert attempt.sent_at == now + SECOND
    assert attempt.claimed_until is None and attempt.last_error is None
    assert sdi_state(invoice.id) is SdiState.DELIVERED


def test_a_receipt_after_the_outcome_fills_a_missing_identifier(invoice, now):
    attempt = open_attempt(invoice, now)
    assert move(attempt, SdiState.NOT_DELIVERED)
    record_receipt(attempt, "999", now)
    db.session.expire_all()
    attempt = db.session.get(Transmission, attempt.id)
    assert attempt.state is SdiState.NOT_DELIVERED and attempt.sdi_id == "999"


def _stale(attempt, *states) -> None:
    """Other processes move the attempt meanwhile; the state this session read stays old."""
    for state in states:
        db.session.execute(
            update(Transmission)
            .where(Transmission.id == attempt.id)
            .values(state=state)
            .execution_options(synchronize_session=False)
        )


def test_move_retries_after_a_concurrent_change_and_refuses_going_back(invoice, now):
    attempt = open_attempt(invoice, now)
    _stale(attempt, SdiState.SENT)  # another process sent it meanwhile
    assert attempt.state is SdiState.TO_SEND
    assert move(attempt, SdiState.DELIVERED, outcome_at=now) is True
    assert attempt.state is SdiState.DELIVERED and attempt.outcome_at == now
    db.session.expire_all()
    assert db.session.get(Transmission, attempt.id).state is SdiState.DELIVERED
    attempt = db.session.get(Transmission, attempt.id)
    assert move(attempt, SdiState.SENT) is False
    assert db.session.get(Transmission, attempt.id).state is SdiState.DELIVERED


def test_move_never_overwrites_an_outcome_learnt_meanwhile(invoice, now):
    attempt = open_attempt(invoice, now)
    move(attempt, SdiState.SENT)
    _stale(attempt, SdiState.REJECTED)  # a webhook told the NS meanwhile
    assert move(attempt, SdiState.DELIVERED, outcome_at=now) is False
    db.session.expire_all()
    attempt = db.session.get(Transmission, attempt.id)
    assert attempt.state is SdiState.REJECTED and attempt.outcome_at is None


def test_move_gives_up_after_three_concurrent_changes(monkeypatch, invoice, now):
    attempt = open_attempt(invoice, now)
    _stale(attempt, SdiState.SENT)
    refresh = db.session.refresh
    changes = iter([SdiState.TO_SEND, SdiState.SENT])  # two more, one after each refresh

    def busy(instance, *args, **kwargs):
        refresh(instance, *args, **kwargs)
        for state in itertools.islice(changes, 1):
            _stale(instance, state)

    monkeypatch.setattr(db.session, "refresh", busy)
    assert move(attempt, SdiState.DELIVERED) is False  # three rounds, each beaten
    monkeypatch.undo()
    db.session.expire_all()
    assert db.session.get(Transmission, attempt.id).state is SdiState.SENT
    attempt = db.session.get(Transmission, attempt.id)
    _stale(attempt, SdiState.TO_SEND)
    changes = iter([SdiState.SENT])
    monkeypatch.setattr(db.session, "refresh", busy)
    assert move(attempt, SdiState.DELIVERED) is True  # beaten twice, the third round wins


def test_only_the_latest_attempt_moves_the_document(invoice, now):
    first = open_attempt(invoice, now)
    move(first, SdiState.REJECTED)
    second = open_attempt(invoice, now)
    assert latest_attempt(invoice.id).id == second.id
    invoice.sdi_state = SdiState.TO_SEND
    db.session.flush()
    sync_invoice(first)
    assert sdi_state(invoice.id) is SdiState.TO_SEND
    move(second, SdiState.DELIVERED)
    sync_invoice(second)
    assert sdi_state(invoice.id) is SdiState.DELIVERED
    assert latest_attempt(invoice.id + 1000) is None


def test_reinvia_is_refused_unless_the_latest_attempt_was_rejected(
    sdi, invoice, create_customer, products, now
):
    with pytest.raises(DomainError, match="non è da reinviare"):
        resend(invoice.id + 1000, now)  # no such document
    invoice.sdi_state = SdiState.REJECTED
    db.session.flush()
    with pytest.raises(DomainError, match="non è da reinviare"):
        resend(invoice.id, now)  # rejected, but never attempted
    first = open_attempt(invoice, now)
    invoice.sdi_state = SdiState.REJECTED
    db.session.flush()
    with pytest.raises(DomainError, match="già in corso"):
        resend(invoice.id, now)  # rejected on the document, its attempt still in flight
    move(first, SdiState.REJECTED, errors=[["00311", "codice"]])
    sync_invoice(first)
    second = resend(invoice.id, now + MINUTE)
    assert second.id != first.id and second.created_at == now + MINUTE
    assert sdi_state(invoice.id) is SdiState.TO_SEND
    with pytest.raises(DomainError, match="non è da reinviare"):
        resend(invoice.id, now)


@pytest.mark.parametrize("how", ["reconciled", "00404"])
def test_reinvia_never_sends_a_duplicate_number_again(invoice, now, how):
    attempt = open_attempt(invoice, now)
    move(attempt, SdiState.REJECTED, errors=[["00404", "duplicata"]] if how == "00404" else None)
    attempt.reconciled = how == "reconciled"
    sync_invoice(attempt)
    with pytest.raises(DomainError, match="00404"):
        resend(invoice.id, now)
    assert len(attempts(invoice.id)) == 1


def test_reinvia_takes_the_billing_data_of_now_and_refuses_without_it(invoice, now):
    from dataclasses import replace

    from tests.unit.invoicing_helpers import PROFILES
    from webapp.shop.billing import save_profile

    attempt = open_attempt(invoice, now)
    move(attempt, SdiState.REJECTED, errors=[["00311", "codice"]])
    sync_invoice(attempt)
    save_profile(invoice.customer_id, replace(PROFILES["business_code"], sdi_code="TESTMC1"))
    second = resend(invoice.id, now)
    assert invoice.customer["sdi_code"] == "TESTMC1" and b"TESTMC1" in second.xml
    move(second, SdiState.REJECTED, errors=[["00311", "codice"]])
    sync_invoice(second)
    db.session.query(BillingProfile).filter_by(customer_id=invoice.customer_id).delete()
    with pytest.raises(DomainError, match="Mancano i dati"):
        resend(invoice.id, now)
    assert len(attempts(invoice.id)) == 2


def test_billing_data_given_releases_only_that_customers_missing_documents(
    sdi, invoice, create_customer, products, now
):
    from tests.unit.invoicing_helpers import PROFILES
    from webapp.shop.billing import save_profile

    customer, held = _missing_data_invoice(create_customer, products, now, "m1@example.it")
    other, other_held = _missing_data_invoice(create_customer, products, now, "m2@example.it")
    copies(held, 2)  # two more of this customer's documents: one held, one delivered
    held_too, delivered = db.session.scalars(
        select(Invoice).where(Invoice.customer_id == customer.id, Invoice.id != held.id)
    ).all()
    delivered.sdi_state = SdiState.DELIVERED
    assert has_missing_data(customer.id) and has_missing_data(other.id)
    assert not has_missing_data(invoice.customer_id)
    old_xml = held.xml
    assert complete_missing_data(customer.id) == 0  # still no billing data: nothing moves
    assert held.sdi_state is SdiState.MISSING_DATA and held.xml == old_xml
    save_profile(customer.id, PROFILES["private"])
    assert complete_missing_data(customer.id) == 2
    db.session.commit()
    db.session.expire_all()
    held = db.session.get(Invoice, held.id)
    assert held.sdi_state is SdiState.TO_SEND and held.customer["tax_code"] == "RSSMRA85T10A562S"
    assert b"RSSMRA85T10A562S" in held.xml and held.xml != old_xml
    assert etree.fromstring(held.xml).findtext(".//ProgressivoInvio") == progressive(held.id)
    assert db.session.get(Invoice, held_too.id).sdi_state is SdiState.TO_SEND
    delivered = db.session.get(Invoice, delivered.id)
    assert delivered.sdi_state is SdiState.DELIVERED and delivered.xml == old_xml
    assert not has_missing_data(customer.id)
    assert db.session.get(Invoice, other_held.id).sdi_state is SdiState.MISSING_DATA
    assert has_missing_data(other.id)


# --- the intermediary's HTTP client ----------------------------------------------------------

SECRET = "gw-secret"
T0 = 1_800_000_000


class Intermediary:
    """A transport answering from a script; signs its answers unless told not to."""

    def __init__(self, status=200, data=None, body=None, signed=True, raises=None):
        self.status, self.data, self.body = status, data, body
        self.signed, self.raises = signed, raises
        self.requests: list[tuple] = []

    def __call__(self, method, url, body, headers, timeout):
        self.requests.append((method, url, body, dict(headers), timeout))
        if self.raises:
            raise self.raises
        answer = self.body if self.body is not None else json.dumps(self.data or {}).encode()
        path = urlsplit(url).path.removeprefix("/base")  # the API's path, as the client signs
        if self.signed is None:
            return HttpResponse(self.status, answer, None)
        secret = SECRET if self.signed else "another"
        signed = signing.sign_request(
            secret, "x", response_method(self.status, method), path, answer, T0
        )
        return HttpResponse(self.status, answer, signed)


def _client(transport, clock=lambda: T0):
    return HttpSdiGateway(
        api_url="https://int.example/base/",
        client_id="pec-shop",
        secret=SECRET,
        timeout=7.5,
        transport=transport,
        clock=clock,
    )


def test_send_file_posts_the_signed_base64_file_and_reads_the_receipt():
    answer = Intermediary(201, {"identificativo_sdi": 123, "nome_file": "IT1_00001.xml"})
    receipt = _client(answer).send_file("IT1_00001.xml", b"<Fattura/>")
    assert receipt == Receipt("123", "IT1_00001.xml")
    ((method, url, body, headers, timeout),) = answer.requests
    assert (method, url, timeout) == ("POST", "https://int.example/base/api/v1/fatture", 7.5)
    assert json.loads(body) == {
        "nome_file": "IT1_00001.xml",
        "file": base64.b64encode(b"<Fattura/>").decode(),
    }
    assert headers["Content-Type"] == "application/json"
    assert headers[signing.MERCHANT_HEADER] == "pec-shop"
    signing.verify_request(SECRET, "POST", "/api/v1/fatture", body, headers, T0)


def test_find_file_asks_by_the_quoted_name_and_a_404_is_nothing_found():
    found = Intermediary(200, {"identificativo_sdi": "9", "nome_file": "a b.xml"})
    assert _client(found).find_file("a b.xml") == Receipt("9", "a b.xml")
    ((method, url, body, headers, _),) = found.requests
    assert (method, url, body) == ("GET", "https://int.example/base/api/v1/fatture/a%20b.xml", b"")
    signing.verify_request(SECRET, "GET", "/api/v1/fatture/a%20b.xml", b"", headers, T0)
    assert _client(Intermediary(404, {"error": "sconosciuto"})).find_file("x.xml") is None
    with pytest.raises(SdiRefused):
        _client(Intermediary(201, {"error": "x"})).find_file("x.xml")


def test_the_feed_is_asked_after_the_cursor_and_decoded():
    items = [{"cursore": "4", "xml": base64.b64encode(b"<a/>").decode()}]
    feed = Intermediary(200, {"notifiche": items})
    assert _client(feed).notifications(3) == [FeedItem(4, b"<a/>")]
    ((method, url, _, headers, _),) = feed.requests
    assert method == "GET"
    assert url == "https://int.example/base/api/v1/notifiche?dopo=3"
    signing.verify_request(SECRET, "GET", "/api/v1/notifiche", b"", headers, T0)
    for data in (
        {},
        {"notifiche": [{"xml": "YQ=="}]},
        {"notifiche": [{"cursore": "x", "xml": ""}]},
    ):
        with pytest.raises(SdiUnavailable, match="^intermediary answered an unreadable feed$"):
            _client(Intermediary(200, data)).notifications(0)
    with pytest.raises(SdiRefused):
        _client(Intermediary(201, {"notifiche": []})).notifications(0)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Intermediary(raises=ConnectionError("refused")), "^refused$"),
        (
            Intermediary(500, {"identificativo_sdi": "1", "nome_file": "f"}),
            "^intermediary answered 500$",
        ),
        (Intermediary(200, body=b"not json"), "^intermediary answered garbage$"),
        (Intermediary(200, body=b"[1]"), "^intermediary answered garbage$"),
        (
            Intermediary(200, {"nome_file": "f"}),
            "^intermediary answered without an IdentificativoSdI$",
        ),
        (
            Intermediary(200, {"identificativo_sdi": "1", "nome_file": "f"}, signed=False),
            "^intermediary answer not trusted: wrong signature$",
        ),
    ],
)
def test_an_answer_the_shop_cannot_trust_or_read_is_an_unknown_outcome(answer, reason):
    with pytest.raises(SdiUnavailable, match=reason):
        _client(answer).send_file("f", b"x")


def test_an_answer_is_trusted_only_when_fresh_and_unsigned_only_from_a_headerless_transport():
    answer = Intermediary(201, {"identificativo_sdi": "1", "nome_file": "f"})
    assert _client(answer, clock=lambda: T0 + 300).send_file("f", b"x").sdi_id == "1"
    with pytest.raises(SdiUnavailable, match="stale"):
        _client(answer, clock=lambda: T0 + 301).send_file("f", b"x")
    headerless = Intermediary(201, {"identificativo_sdi": "2", "nome_file": "f"}, signed=None)
    assert _client(headerless).send_file("f", b"x").sdi_id == "2"


@pytest.mark.parametrize(
    ("data", "text", "code", "message"),
    [
        (
            {"error": "file_vuoto", "detail": "Il file è vuoto"},
            "file_vuoto: Il file è vuoto",
            "file_vuoto",
            "Il file è vuoto",
        ),
        ({"error": "nome", "detail": ["x"]}, "nome", "nome", None),
        ({}, "errore", "errore", None),
    ],
)
def test_a_refusal_carries_the_intermediarys_code_and_words(data, text, code, message):
    with pytest.raises(SdiRefused) as refused:
        _client(Intermediary(400, data)).send_file("f", b"")
    assert (str(refused.value), refused.value.code, refused.value.message) == (text, code, message)
    with pytest.raises(SdiRefused):
        _client(Intermediary(499, data)).send_file("f", b"")


def test_an_empty_answer_body_reads_as_an_empty_object():
    with pytest.raises(SdiRefused, match="errore"):
        _client(Intermediary(400, body=b"")).send_file("f", b"")


def test_the_webhook_is_verified_for_this_client_path_and_body():
    body = b"<RicevutaConsegna/>"
    headers = signing.sign_request(SECRET, "pec-shop", "POST", "/sdi/notifiche", body, T0)
    client = _client(Intermediary())
    client.verify_webhook("/sdi/notifiche", body, headers)
    for bad in (
        {**headers, signing.MERCHANT_HEADER: "other"},
        {k: v for k, v in headers.items() if k != signing.MERCHANT_HEADER},
    ):
        with pytest.raises(signing.BadSignature, match="^wrong client$"):
            client.verify_webhook("/sdi/notifiche", body, bad)
    with pytest.raises(signing.BadSignature):
        client.verify_webhook("/sdi/altro", body, headers)
    with pytest.raises(signing.BadSignature, match="stale"):
        _client(Intermediary(), clock=lambda: T0 + 301).verify_webhook(
            "/sdi/notifiche", body, headers
        )


# --- the pass ------------------------------------------------------------------------------------


class Outage:
    """The intermediary as a pass meets it: takes files, refuses some, its feed maybe down."""

    def __init__(self, refuse=0, feed_down=None):
        self.refuse = refuse  # how many sends it refuses first
        self.feed_down = feed_down
        self.sent: list[str] = []

    def find_file(self, file_name):
        return None

    def send_file(self, file_name, content):
        if self.refuse:
            self.refuse -= 1
            raise SdiUnavailable("503")
        self.sent.append(file_name)
        return Receipt(str(len(self.sent)), file_name)

    def notifications(self, since):
        if self.feed_down:
            raise SdiUnavailable(self.feed_down)
        return []


def _three(create_customer, products, now):
    buyer = buyer_with_code(create_customer, "TESTRC1", f"j{uuid.uuid4().hex[:8]}@example.it")
    return [paid_invoice(buyer, products, now) for _ in range(3)]


def test_a_pass_counts_what_it_prepared_sent_and_left_waiting(
    app, monkeypatch, create_customer, products, now
):
    docs = _three(create_customer, products, now) + _three(create_customer, products, now)
    open_attempt(docs[0], now - MINUTE)  # opened by an earlier pass
    db.session.commit()
    fake = Outage(refuse=2)  # the first two sends, in id order
    monkeypatch.setitem(app.extensions, "sdi_gateway", fake)
    report = transmit_pass(now)
    assert (report.prepared, report.sent, report.waiting, report.notifications) == (5, 4, 2, 0)
    assert report.feed_error is None
    assert str(report) == "5 preparate, 4 inviate, 2 in attesa, 0 notifiche"
    db.session.expire_all()
    assert [sdi_state(d.id) for d in docs] == [SdiState.TO_SEND] * 2 + [SdiState.SENT] * 4


def test_a_pass_counts_the_notifications_it_read_from_the_feed(sdi, create_customer, products, now):
    from tests.unit.sdi_helpers import run

    buyer = buyer_with_code(create_customer, "PAEC01", "pa@example.it")
    paid_invoice(buyer, products, now)
    paid_invoice(buyer, products, now)
    report = run(sdi, now, push=False)
    assert (report.sent, report.notifications) == (2, 4)  # an RC and an NE each
    assert str(report) == "2 preparate, 2 inviate, 0 in attesa, 4 notifiche"


def test_an_attempt_another_transmitter_claimed_is_skipped_and_the_pass_goes_on(
    app, monkeypatch, create_customer, products, now
):
    from webapp.invoicing import sdi_jobs

    docs = _three(create_customer, products, now)
    fake = Outage()
    monkeypatch.setitem(app.extensions, "sdi_gateway", fake)
    real_claim = sdi_jobs.claim

    def race(attempt_id, at):
        if attempt_id == attempts(docs[0].id)[0].id:
            real_claim(attempt_id, at)  # the other transmitter wins this one
        return real_claim(attempt_id, at)

    monkeypatch.setattr(sdi_jobs, "claim", race)
    report = transmit_pass(now)
    assert (report.prepared, report.sent, report.waiting) == (3, 2, 0)
    assert fake.sent == [attempts(d.id)[0].file_name for d in docs[1:]]


def test_the_feed_down_leaves_the_sends_done_and_says_why(
    app, monkeypatch, create_customer, products, now
):
    docs = _three(create_customer, products, now)
    monkeypatch.setitem(app.extensions, "sdi_gateway", Outage(feed_down="z" * 300))
    report = transmit_pass(now)
    assert report.sent == 3 and report.feed_error == "z" * 200
    assert str(report) == (
        f"3 preparate, 3 inviate, 0 in attesa, 0 notifiche (feed non disponibile: {'z' * 200})"
    )
    db.session.rollback()
    assert [sdi_state(d.id) for d in docs] == [SdiState.SENT] * 3


def test_the_client_waits_ten_seconds_and_signs_with_the_time_of_now():
    import time

    answer = Intermediary(signed=None, data={"identificativo_sdi": "1", "nome_file": "f"})
    gateway = HttpSdiGateway(
        api_url="https://sdi.example/X", client_id="c", secret=SECRET, transport=answer
    )
    gateway.send_file("f", b"x")
    ((_, url, _, headers, timeout),) = answer.requests
    assert url == "https://sdi.example/X/api/v1/fatture" and timeout == 10.0
    assert abs(int(headers[signing.TIMESTAMP_HEADER]) - time.time()) < 60
