"""The SdI's notifications as the shop reads them: each field parsed and each malformed one
refused, stored once, applied to the right attempt only forward, the feed's cursor; and what
the back office reads from them (the correction queue, the refusals, what waits)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import current_app
from lxml import etree
from sqlalchemy import func, select, update

from tests.unit.sdi_helpers import buyer_with_code, copies, paid_invoice
from webapp.extensions import db
from webapp.invoicing import sdi_queue
from webapp.invoicing.models import Invoice, SdiCursor, SdiNotification, Transmission
from webapp.invoicing.sdi_gateway import FeedItem
from webapp.invoicing.sdi_inbox import BadNotification, fetch_feed, parse, receive
from webapp.invoicing.sdi_states import SdiState
from webapp.invoicing.transmission import move, open_attempt, sdi_state, sync_invoice
from webapp.outbox.models import OutboxEmail
from webapp.sdi.messages import build

SECOND = timedelta(seconds=1)


def note(kind: str, now, **fields) -> bytes:
    values = dict(
        sdi_id="123456",
        file_name="IT01234560157_00001.xml",
        message_id="900",
        received_at=now,
        now=now,
        secret="s",
    )
    values.update(fields)
    return build(kind, **values)


def test_each_kind_is_parsed_with_its_fields(now):
    rc = parse(note("RC", now, sdi_id="000000000012", message_id="12345678901234"))
    assert (rc.kind, rc.sdi_id, rc.file_name, rc.message_id) == (
        "RC",
        "000000000012",
        "IT01234560157_00001.xml",
        "12345678901234",
    )
    assert rc.outcome is None and rc.errors == [] and rc.state is SdiState.DELIVERED
    ns = parse(note("NS", now, errors=[("00311", "Codice " + "x" * 300), ("00404", "dup")]))
    assert ns.state is SdiState.REJECTED
    assert ns.errors == [["00311", ("Codice " + "x" * 300)[:255]], ["00404", "dup"]]
    assert parse(note("NE", now, esito="EC02")).state is SdiState.REFUSED
    ne = parse(note("NE", now, esito="EC01"))
    assert (ne.kind, ne.outcome, ne.state) == ("NE", "EC01", SdiState.ACCEPTED)
    kinds = {k: parse(note(k, now)).state for k in ("MC", "AT", "DT")}
    assert kinds == {
        "MC": SdiState.NOT_DELIVERED,
        "AT": SdiState.UNDELIVERABLE,
        "DT": SdiState.EXPIRED,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"sdi_id": ""},
        {"sdi_id": "12a"},
        {"sdi_id": "1234567890123"},
        {"message_id": ""},
        {"message_id": "123456789012345"},
        {"file_name": ""},
    ],
)
def test_a_notification_with_a_malformed_field_is_refused(now, fields):
    with pytest.raises(BadNotification):
        parse(note("RC", now, **fields))


def test_an_esito_other_than_ec01_or_ec02_and_a_scarto_without_errors_are_refused(now):
    with pytest.raises(BadNotification):
        parse(note("NE", now, esito="EC03"))
    with pytest.raises(BadNotification):
        parse(note("NS", now, errors=[]))


# --- stored once, applied to the right attempt -------------------------------------------------


@pytest.fixture
def products(catalogue):
    return catalogue["products"]


def _attempt(create_customer, products, now, code="TESTRC1", email="b@example.it", sdi_id=None):
    invoice = paid_invoice(buyer_with_code(create_customer, code, email), products, now)
    attempt = open_attempt(invoice, now)
    attempt.sdi_id = sdi_id
    db.session.flush()
    return invoice, attempt


def _for(attempt, kind, now, **fields) -> bytes:
    return note(kind, now, sdi_id=attempt.sdi_id or "777", file_name=attempt.file_name, **fields)


def test_a_notification_is_stored_with_its_fields_and_applied_once(
    sdi, create_customer, products, now
):
    invoice, attempt = _attempt(create_customer, products, now, sdi_id="4321")
    attempt.claimed_until = now + timedelta(minutes=5)
    xml = _for(attempt, "RC", now, message_id="77")
    assert receive(xml, now + SECOND) == "applicata"
    (stored,) = db.session.scalars(select(SdiNotification)).all()
    assert (stored.transmission_id, stored.sdi_id, stored.message_id, stored.kind) == (
        attempt.id,
        "4321",
        "77",
        "RC",
    )
    assert stored.outcome is None and stored.xml == xml and stored.received_at == now + SECOND
    db.session.expire_all()
    attempt = db.session.get(Transmission, attempt.id)
    assert attempt.state is SdiState.DELIVERED and attempt.outcome_at == now + SECOND
    assert attempt.claimed_until is None and attempt.errors is None
    assert sdi_state(invoice.id) is SdiState.DELIVERED
    assert receive(xml, now + timedelta(days=1)) == "duplicata"
    assert db.session.get(Transmission, attempt.id).outcome_at == now + SECOND
    ne = _for(attempt, "NE", now, esito="EC02", message_id="78")
    assert receive(ne, now) == "applicata"
    assert db.session.scalars(select(SdiNotification.outcome)).all() == [None, "EC02"]


def test_a_notification_finds_its_attempt_by_file_name_when_the_answer_was_lost(
    sdi, create_customer, products, now
):
    invoice, attempt = _attempt(create_customer, products, now)
    _, other = _attempt(create_customer, products, now, email="o@example.it")
    xml = note("MC", now, sdi_id="9090", file_name=attempt.file_name)
    assert receive(xml, now) == "applicata"
    db.session.expire_all()
    assert db.session.get(Transmission, attempt.id).sdi_id == "9090"
    assert db.session.get(Transmission, other.id).sdi_id is None
    assert sdi_state(invoice.id) is SdiState.NOT_DELIVERED
    # an attempt whose answer was recorded is not taken over by its file name
    again = note("RC", now, sdi_id="9191", file_name=attempt.file_name)
    assert receive(again, now) == "sconosciuta"
    assert receive(note("RC", now, sdi_id="9292", file_name="IT0_ZZZZZ.xml"), now) == "sconosciuta"


def test_a_scarto_00002_is_another_file_under_our_name_never_our_attempt(
    sdi, create_customer, products, now
):
    invoice, attempt = _attempt(create_customer, products, now)
    xml = note("NS", now, sdi_id="5555", file_name=attempt.file_name, errors=[("00002", "nome")])
    assert receive(xml, now) == "sconosciuta"
    db.session.expire_all()
    attempt = db.session.get(Transmission, attempt.id)
    assert attempt.sdi_id is None and attempt.state is SdiState.TO_SEND
    xml = note("NS", now, sdi_id="5555", file_name=attempt.file_name, errors=[("00311", "x")])
    assert receive(xml, now) == "applicata"  # the same name, a real rejection of ours
    db.session.expire_all()
    attempt = db.session.get(Transmission, attempt.id)
    assert attempt.errors == [["00311", "x"]] and attempt.error_codes == {"00311"}
    assert sdi_state(invoice.id) is SdiState.REJECTED


def test_a_notification_that_changes_nothing_moves_neither_document_nor_mail(
    sdi, create_customer, products, now
):
    invoice, attempt = _attempt(create_customer, products, now, code=None, sdi_id="31")
    move(attempt, SdiState.REJECTED)
    invoice.sdi_state = SdiState.MISSING_DATA  # a marker: not touched by what follows
    db.session.flush()
    assert receive(_for(attempt, "MC", now), now + SECOND) == "applicata"  # stored only
    db.session.expire_all()
    attempt = db.session.get(Transmission, attempt.id)
    assert attempt.state is SdiState.REJECTED and attempt.outcome_at is None
    assert sdi_state(invoice.id) is SdiState.MISSING_DATA
    assert (
        db.session.scalar(
            select(func.count(OutboxEmail.id)).where(OutboxEmail.dedupe_key.like("sdi-%"))
        )
        == 0
    )


def test_mc_sends_the_courtesy_copy_to_the_buyer_of_the_document(
    sdi, create_customer, products, now
):
    invoice, attempt = _attempt(create_customer, products, now, code=None, sdi_id="41")
    receive(_for(attempt, "MC", now), now)
    (email,) = db.session.scalars(
        select(OutboxEmail).where(OutboxEmail.dedupe_key.like("sdi-%"))
    ).all()
    assert email.to_addr == "b@example.it" and email.dedupe_key == f"sdi-courtesy-{invoice.id}"
    assert email.subject == f"Fattura n. {invoice.number_label}: copia di cortesia"
    assert "Mario Rossi" in email.body_text
    link = f"{current_app.config['SHOP_BASE_URL']}/area-clienti/fatture/{invoice.id}"
    assert link in email.body_text


@pytest.mark.parametrize("who", ["public", "no e-mail"])
def test_mc_sends_no_courtesy_copy_to_an_office_or_without_an_address(
    sdi, create_customer, products, now, who
):
    code = "PAAT10" if who == "public" else None
    invoice, attempt = _attempt(create_customer, products, now, code=code, sdi_id="51")
    if who == "no e-mail":
        invoice.customer = {**invoice.customer, "email": ""}
        db.session.flush()
    receive(_for(attempt, "MC", now), now)
    assert sdi_state(invoice.id) is SdiState.NOT_DELIVERED
    assert (
        db.session.scalar(
            select(func.count(OutboxEmail.id)).where(OutboxEmail.dedupe_key.like("sdi-%"))
        )
        == 0
    )


def test_00404_shows_the_latest_delivered_attempt_and_is_never_resent(
    sdi, create_customer, products, now
):
    invoice, first = _attempt(create_customer, products, now, sdi_id="61")
    move(first, SdiState.DELIVERED)
    second = open_attempt(invoice, now)
    second.sdi_id = "62"
    move(second, SdiState.NOT_DELIVERED)
    third = open_attempt(invoice, now)
    third.sdi_id = "63"
    db.session.flush()
    assert receive(_for(third, "NS", now, errors=[("00404", "duplicata")]), now) == "applicata"
    db.session.expire_all()
    assert db.session.get(Transmission, third.id).reconciled is True
    assert sdi_state(invoice.id) is SdiState.NOT_DELIVERED  # the second, the latest issued


def test_00404_without_a_delivered_attempt_stays_rejected_for_an_operator(
    sdi, create_customer, products, now
):
    invoice, first = _attempt(create_customer, products, now, sdi_id="71")
    move(first, SdiState.REJECTED)
    second = open_attempt(invoice, now)
    second.sdi_id = "72"
    db.session.flush()
    receive(_for(second, "NS", now, errors=[("00311", "x"), ("00404", "duplicata")]), now)
    db.session.expire_all()
    assert db.session.get(Transmission, second.id).reconciled is True
    assert db.session.get(Transmission, first.id).reconciled is False
    assert sdi_state(invoice.id) is SdiState.REJECTED


# --- the feed ------------------------------------------------------------------------------------


class Feed:
    """An intermediary's feed in pages of two; records the cursors asked."""

    def __init__(self, items):
        self.items = items
        self.asked: list[int] = []

    def notifications(self, since):
        self.asked.append(since)
        return [item for item in self.items if item.cursor > since][:2]


def test_the_feed_is_read_from_the_stored_cursor_skipping_what_it_cannot_read(
    sdi, create_customer, products, now
):
    _, one = _attempt(create_customer, products, now, sdi_id="81")
    _, two = _attempt(create_customer, products, now, email="t@example.it", sdi_id="82")
    feed = Feed(
        [
            FeedItem(3, _for(one, "RC", now)),
            FeedItem(5, b"<garbage/>"),
            FeedItem(8, _for(two, "MC", now)),
            FeedItem(9, _for(one, "RC", now)),  # again: stored once
        ]
    )
    assert fetch_feed(now, feed) == 2
    assert feed.asked == [0, 5, 9]
    assert db.session.get(SdiCursor, "feed").position == 9
    assert fetch_feed(now, feed) == 0 and feed.asked[-1] == 9
    assert db.session.scalar(select(func.count(SdiNotification.id))) == 2


def test_the_feed_reads_at_most_the_pages_asked_and_keeps_the_highest_cursor(
    sdi, create_customer, products, now
):
    _, one = _attempt(create_customer, products, now, sdi_id="91")
    items = [FeedItem(c, _for(one, "RC", now, message_id=str(c))) for c in (4, 2, 6, 7, 8)]
    feed = Feed(items)
    assert fetch_feed(now, feed, pages=1) == 2  # 4, then 2: the cursor stays at 4
    assert feed.asked == [0] and db.session.get(SdiCursor, "feed").position == 4
    assert fetch_feed(now, feed, pages=2) == 3
    assert feed.asked == [0, 4, 7] and db.session.get(SdiCursor, "feed").position == 8
    assert fetch_feed(now, feed) == 0 and feed.asked[-1] == 8


# --- what the back office reads --------------------------------------------------------------


def _docs(create_customer, products, now, n):
    return [
        paid_invoice(buyer_with_code(create_customer, "TESTRC1", f"q{i}@example.it"), products, now)
        for i in range(n)
    ]


def test_the_list_is_newest_first_up_to_its_limit_and_filters_one_state(
    sdi, create_customer, products, now
):
    one, two, three = _docs(create_customer, products, now, 3)
    two.sdi_state = SdiState.REJECTED
    db.session.flush()
    assert [d.id for d in sdi_queue.list_documents()] == [three.id, two.id, one.id]
    assert [d.id for d in sdi_queue.list_documents(limit=2)] == [three.id, two.id]
    assert [d.id for d in sdi_queue.list_documents(SdiState.REJECTED)] == [two.id]
    assert [d.id for d in sdi_queue.list_documents(SdiState.TO_SEND, limit=1)] == [three.id]


def test_a_documents_timeline_and_downloads_belong_to_it_only(sdi, create_customer, products, now):
    invoice, first = _attempt(create_customer, products, now, sdi_id="101")
    move(first, SdiState.REJECTED)
    second = open_attempt(invoice, now)
    other, foreign = _attempt(create_customer, products, now, email="x@example.it", sdi_id="102")
    receive(_for(first, "RC", now, message_id="1"), now)
    receive(_for(foreign, "RC", now, message_id="2"), now)
    timeline = sdi_queue.timeline(invoice.id)
    assert [a.id for a in timeline] == [first.id, second.id]
    assert [n.kind for n in timeline[0].notifications] == ["RC"]
    (mine,) = timeline[0].notifications
    (theirs,) = db.session.get(Transmission, foreign.id).notifications
    assert sdi_queue.notification_of(invoice.id, mine.id) is mine
    assert sdi_queue.notification_of(invoice.id, theirs.id) is None
    assert sdi_queue.notification_of(invoice.id, theirs.id + 100) is None
    assert sdi_queue.attempt_of(invoice.id, second.id) is second
    assert sdi_queue.attempt_of(invoice.id, foreign.id) is None
    assert sdi_queue.attempt_of(other.id, foreign.id) is foreign
    assert sdi_queue.attempt_of(invoice.id, foreign.id + 100) is None


def test_the_correction_queue_counts_five_days_from_the_rejection_soonest_first(
    sdi, create_customer, products, now
):
    early, late, never, duplicate = _docs(create_customer, products, now, 4)
    rows = {}
    for invoice, outcome_at, errors in (
        (late, now + timedelta(days=1), [["00311", "x"]]),
        (early, None, [["00311", "x"]]),  # no outcome time recorded: from the attempt's
        (duplicate, now + timedelta(days=2), [["00404", "dup"]]),
    ):
        attempt = open_attempt(invoice, now)
        move(attempt, SdiState.REJECTED, outcome_at=outcome_at, errors=errors)
        sync_invoice(attempt)
        rows[invoice.id] = attempt
    never.sdi_state = SdiState.REJECTED  # rejected on the document, never attempted: not listed
    db.session.flush()
    deadline = now + timedelta(days=5)
    queue = sdi_queue.to_correct(deadline)
    assert [r.invoice.id for r in queue] == [early.id, late.id, duplicate.id]
    assert [r.attempt.id for r in queue] == [rows[i].id for i in (early.id, late.id, duplicate.id)]
    assert [r.deadline for r in queue] == [
        deadline,
        deadline + timedelta(days=1),
        deadline + timedelta(days=2),
    ]
    assert [r.overdue for r in queue] == [False, False, False]  # the deadline's own instant
    assert [r.duplicate for r in queue] == [False, False, True]
    assert [r.overdue for r in sdi_queue.to_correct(deadline + timedelta(days=1))] == [
        True,
        False,
        False,
    ]


def test_refusals_wait_until_a_credit_note_settles_them(sdi, create_customer, products, now):
    from tests.unit.invoicing_helpers import refund
    from webapp.payments.models import Payment

    one, two, three = _docs(create_customer, products, now, 3)
    for invoice in (one, two):
        invoice.sdi_state = SdiState.REFUSED
    db.session.flush()
    assert [d.id for d in sdi_queue.refused_tasks()] == [one.id, two.id]
    refund(db.session.get(Payment, two.payment_id), 100, now)
    db.session.flush()
    assert [d.id for d in sdi_queue.refused_tasks()] == [one.id]
    assert three.sdi_state is SdiState.TO_SEND


def test_what_waits_is_an_attempt_tried_and_not_taken(sdi, create_customer, products, now):
    docs = _docs(create_customer, products, now, 4)
    tried = []
    for invoice, tries, state in zip(
        docs,
        (1, 0, 3, 2),
        (SdiState.TO_SEND, SdiState.TO_SEND, SdiState.TO_SEND, SdiState.SENT),
        strict=True,
    ):
        attempt = open_attempt(invoice, now)
        attempt.tries, attempt.state = tries, state
        tried.append(attempt)
    db.session.flush()
    assert [a.id for a in sdi_queue.waiting()] == [tried[0].id, tried[2].id]


def test_each_list_of_the_back_office_stops_at_its_limit(sdi, create_customer, products, now):
    (invoice,) = _docs(create_customer, products, now, 1)
    copies(invoice, 200)
    assert len(sdi_queue.list_documents()) == 200
    assert len(sdi_queue.list_documents(limit=300)) == 201


def test_the_correction_queue_shows_five_hundred(sdi, create_customer, products, now):
    (invoice,) = _docs(create_customer, products, now, 1)
    ids = copies(invoice, 501, state="scartata", errors=[["00311", "x"]])
    db.session.execute(update(Invoice).where(Invoice.id.in_(ids)).values(sdi_state="scartata"))
    assert len(sdi_queue.to_correct(now)) == 500


def test_what_waits_shows_five_hundred(sdi, create_customer, products, now):
    (invoice,) = _docs(create_customer, products, now, 1)
    copies(invoice, 501, state="da_inviare", tries=1)
    assert len(sdi_queue.waiting()) == 500


def _errors_as_sent(now, *descriptions) -> bytes:
    """An NS whose Errore elements carry these Descrizione: None leaves the element out, "" sends
    it empty (the builder cuts at 255, the SdI's own limit; a wire message need not)."""
    root = etree.fromstring(note("NS", now, errors=[("00311", "x")] * len(descriptions)))
    for error, text in zip(root.iter("Errore"), descriptions, strict=True):
        element = error.find("Descrizione")
        if text is None:
            error.remove(element)
        else:
            element.text = text or None
    return etree.tostring(root)


def test_an_error_without_words_reads_empty_and_long_words_are_cut_at_255(now):
    parsed = parse(_errors_as_sent(now, None, "", "  " + "y" * 300 + "  "))
    assert parsed.errors == [["00311", ""], ["00311", ""], ["00311", "y" * 255]]


def test_00404_never_takes_another_documents_delivered_attempt(sdi, create_customer, products, now):
    invoice, mine = _attempt(create_customer, products, now, sdi_id="111")
    _, theirs = _attempt(create_customer, products, now, email="z@example.it", sdi_id="112")
    move(theirs, SdiState.DELIVERED)
    receive(_for(mine, "NS", now, errors=[("00404", "duplicata")]), now)
    assert sdi_state(invoice.id) is SdiState.REJECTED


def test_one_reading_of_the_feed_takes_ten_pages(sdi, now):
    feed = Feed([FeedItem(c, b"<unreadable/>") for c in range(1, 23)])  # 11 pages of 2
    assert fetch_feed(now, feed) == 0
    assert len(feed.asked) == 10 and db.session.get(SdiCursor, "feed").position == 20
    assert fetch_feed(now, feed) == 0
    assert feed.asked[10:] == [20, 22] and db.session.get(SdiCursor, "feed").position == 22


def test_a_notification_of_up_to_a_million_bytes_is_read_and_a_larger_one_refused(now):
    xml = note("RC", now)
    padded = xml + b" " * (1_000_000 - len(xml))  # whitespace after the root element
    assert len(padded) == 1_000_000 and parse(padded).kind == "RC"
    with pytest.raises(BadNotification, match="^empty or too large$"):
        parse(padded + b" ")
    with pytest.raises(BadNotification, match="^empty or too large$"):
        parse(b"")


def test_the_attempt_found_by_file_name_shows_its_identifier_in_the_same_transaction(
    sdi, create_customer, products, now
):
    _, attempt = _attempt(create_customer, products, now)
    assert attempt.sdi_id is None  # loaded in this session, before the notification
    assert receive(note("RC", now, sdi_id="8080", file_name=attempt.file_name), now) == "applicata"
    assert attempt.sdi_id == "8080" and attempt.state is SdiState.DELIVERED


def test_entities_are_never_expanded_and_garbage_is_not_xml(now):
    xml = note("RC", now, sdi_id="424242").decode()
    head, _, body = xml.partition("?>")
    with_entity = (
        head + '?><!DOCTYPE r [<!ENTITY id "424242">]>' + body.replace(">424242<", ">&id;<", 1)
    )
    with pytest.raises(BadNotification, match="^missing or malformed fields$"):
        parse(with_entity.encode())  # expanded, it would read as a valid IdentificativoSdI
    with pytest.raises(BadNotification, match="^not XML$"):
        parse(b"<RicevutaConsegna")


def test_only_the_sdi_namespace_and_its_six_messages_are_read(now):
    xml = note("RC", now)
    other_namespace = xml.replace(b"http://www.fatturapa.gov.it/sdi/messaggi/v1.0", b"urn:x")
    other_message = xml.replace(b"RicevutaConsegna", b"RicevutaIgnota")
    for wrong in (other_namespace, other_message):
        with pytest.raises(BadNotification, match="^not an SdI notification$"):
            parse(wrong)


def _with_file_name(now, name: str) -> bytes:
    root = etree.fromstring(note("RC", now))
    root.find("NomeFile").text = name
    return etree.tostring(root)


def test_a_file_name_of_one_to_fifty_characters_and_a_message_id_are_required(now):
    for name in ("a", "b" * 50):
        assert parse(_with_file_name(now, name)).file_name == name
    for name in ("", "c" * 51):
        with pytest.raises(BadNotification, match="^missing or malformed fields$"):
            parse(_with_file_name(now, name))
    root = etree.fromstring(note("RC", now))
    root.remove(root.find("MessageId"))
    with pytest.raises(BadNotification, match="^missing or malformed fields$"):
        parse(etree.tostring(root))
