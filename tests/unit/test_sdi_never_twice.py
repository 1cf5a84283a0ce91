"""Never twice, never lost, on the way to the SdI: a lost answer is settled by the file name,
the intermediary down makes attempts wait, one attempt in flight per document, a webhook
replayed, out of order, unknown or forged changes nothing; NS is corrected and resent with the
same number, 00404 is reconciled, missing billing data holds the document back."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest
from lxml import etree
from sqlalchemy import select

from tests.conftest import PG_URL
from tests.unit.invoicing_helpers import PROFILES
from tests.unit.sdi_helpers import attempts, buyer_with_code, paid_invoice, run, sandbox_files
from webapp.extensions import db
from webapp.invoicing.sdi_gateway import SdiUnavailable
from webapp.invoicing.sdi_inbox import receive
from webapp.invoicing.sdi_states import SdiState
from webapp.invoicing.transmission import (
    complete_missing_data,
    open_attempt,
    resend,
    sdi_state,
)
from webapp.shop.billing import save_profile
from webapp.signing import sign_request


@pytest.fixture
def products(catalogue):
    return catalogue["products"]


def _invoice(create_customer, products, now, code="TESTRC1", email="b@example.it"):
    return paid_invoice(buyer_with_code(create_customer, code, email), products, now)


def test_a_lost_answer_is_settled_by_the_file_name_never_by_a_second_file(
    app, sdi, create_customer, products, now
):
    invoice = _invoice(create_customer, products, now)
    transport = sdi.transport

    def lose_the_answer(method, url, body, headers, timeout):
        transport(method, url, body, headers, timeout)  # the intermediary took it ...
        raise SdiUnavailable("read timeout")  # ... and the answer never came back

    db_gateway = app.extensions["sdi_gateway"]
    db_gateway.transport = lose_the_answer
    report = run(sdi, now, push=False)
    assert report.waiting == 1 and sdi_state(invoice.id) is SdiState.TO_SEND
    db_gateway.transport = transport
    run(sdi, now + timedelta(minutes=5))
    assert sdi_state(invoice.id) is SdiState.DELIVERED
    (attempt,) = attempts(invoice.id)
    assert attempt.tries == 2 and attempt.sdi_id
    assert [f[:2] for f in sandbox_files(sdi)] == [(attempt.file_name, "RC")]
    assert ("GET", f"/api/v1/fatture/{attempt.file_name}") in transport.calls


def test_the_intermediary_down_makes_the_attempt_wait_with_backoff(
    sdi, create_customer, products, now
):
    invoice = _invoice(create_customer, products, now)
    sdi.transport.down = True
    assert run(sdi, now).waiting == 1
    (attempt,) = attempts(invoice.id)
    assert attempt.next_try_at > now and attempt.last_error
    sdi.transport.down = False
    assert run(sdi, now).sent == 0  # not due yet: backoff
    assert run(sdi, attempt.next_try_at).sent == 1
    assert sdi_state(invoice.id) is SdiState.DELIVERED
    assert len(sandbox_files(sdi)) == 1


def test_one_attempt_in_flight_per_document(sdi, create_customer, products, now):
    invoice = _invoice(create_customer, products, now)
    first = open_attempt(invoice, now)
    assert first is not None
    assert open_attempt(invoice, now) is None  # the partial unique index refused it
    db.session.commit()
    assert len(attempts(invoice.id)) == 1


def test_the_progressivo_never_repeats_across_years(sdi, create_customer, products, now):
    one = _invoice(create_customer, products, now)
    two = _invoice(create_customer, products, now.replace(year=2027), email="c@example.it")
    run(sdi, now.replace(year=2027))
    names = [attempts(i.id)[0].file_name for i in (one, two)]
    assert len(set(names)) == 2
    for invoice in (one, two):
        attempt = attempts(invoice.id)[0]
        progr = etree.fromstring(attempt.xml).findtext(".//ProgressivoInvio")
        assert attempt.file_name.endswith(f"_{progr}.xml")


def _signed(app, body: bytes, secret: str | None = None) -> dict:
    secret = secret or app.config["SDI_SHARED_SECRET"]
    headers = sign_request(secret, "pec-shop", "POST", "/sdi/notifiche", body, int(time.time()))
    return {**headers, "Content-Type": "application/xml"}


def test_the_webhook_refuses_bad_signatures_and_bodies_and_ignores_replays(
    app, client, sdi, create_customer, products, now
):
    invoice = _invoice(create_customer, products, now)
    run(sdi, now, push=False)
    (attempt,) = attempts(invoice.id)
    rc = attempt.notifications[0].xml
    assert client.post("/sdi/notifiche", data=rc, headers=_signed(app, rc, "x")).status_code == 400
    assert client.post("/sdi/notifiche", data=rc).status_code == 400
    for garbage in (b"", b"<a>", b"<a/>", b"\xff\xfe", b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'):
        answer = client.post("/sdi/notifiche", data=garbage, headers=_signed(app, garbage))
        assert answer.status_code == 400
    answer = client.post("/sdi/notifiche", data=rc, headers=_signed(app, rc))
    assert answer.status_code == 200 and answer.get_data(as_text=True) == "duplicata"
    unknown = rc.replace(attempt.sdi_id.encode(), b"999999999999").replace(
        attempt.file_name.encode(), b"IT01234560157_ZZZZZ.xml"
    )
    answer = client.post("/sdi/notifiche", data=unknown, headers=_signed(app, unknown))
    assert answer.status_code == 200 and answer.get_data(as_text=True) == "sconosciuta"
    db.session.expire_all()
    assert len(attempts(invoice.id)[0].notifications) == 1
    assert sdi_state(invoice.id) is SdiState.DELIVERED


def test_a_notification_out_of_order_never_moves_back(sdi, create_customer, products, now):
    invoice = _invoice(create_customer, products, now, code="PAEC02")
    run(sdi, now, push=False)
    (attempt,) = attempts(invoice.id)
    rc, ne = (n.xml for n in attempt.notifications)
    # a fresh shop learns them the other way round: NE first, then the late RC
    db.session.query(type(attempt.notifications[0])).delete()
    db.session.flush()
    db.session.execute(
        type(attempt)
        .__table__.update()
        .values(state="inviata")
        .where(type(attempt).__table__.c.id == attempt.id)
    )
    db.session.expire_all()
    assert receive(ne, now) == "applicata"
    assert receive(rc, now) == "applicata"  # stored, but it changes nothing
    db.session.commit()
    assert sdi_state(invoice.id) is SdiState.REFUSED


def test_a_rejection_is_corrected_and_resent_with_the_same_number(
    sdi, create_customer, products, now
):
    customer = buyer_with_code(create_customer, "TESTNS1", "ns@example.it")
    invoice = paid_invoice(customer, products, now)
    run(sdi, now)
    assert sdi_state(invoice.id) is SdiState.REJECTED
    (first,) = attempts(invoice.id)
    assert first.error_codes == {"00311"}
    save_profile(customer.id, replace(PROFILES["business_code"], sdi_code="TESTRC1"))
    resend(invoice.id, now + timedelta(days=1))
    db.session.commit()
    run(sdi, now + timedelta(days=1))
    first, second = attempts(invoice.id)
    assert second.file_name != first.file_name
    number = etree.fromstring(first.xml).findtext(".//DatiGeneraliDocumento/Numero")
    assert etree.fromstring(second.xml).findtext(".//DatiGeneraliDocumento/Numero") == number
    assert b"TESTRC1" in second.xml
    assert sdi_state(invoice.id) is SdiState.DELIVERED
    with pytest.raises(Exception, match="non è da reinviare"):
        resend(invoice.id, now)


def test_a_duplicate_number_is_reconciled_never_resent(sdi, create_customer, products, now):
    invoice = _invoice(create_customer, products, now)
    run(sdi, now)
    assert sdi_state(invoice.id) is SdiState.DELIVERED
    invoice.sdi_state = SdiState.TO_SEND  # as if the shop had lost track of the delivery
    open_attempt(invoice, now)
    db.session.commit()
    run(sdi, now)
    delivered, duplicate = attempts(invoice.id)
    assert duplicate.error_codes == {"00404"} and duplicate.reconciled
    assert sdi_state(invoice.id) is SdiState.DELIVERED
    with pytest.raises(Exception, match="00404"):
        invoice.sdi_state = SdiState.REJECTED
        resend(invoice.id, now)


def test_missing_billing_data_holds_the_document_until_given(sdi, create_customer, products, now):
    from tests.unit.invoicing_helpers import confirmed_order, pay
    from webapp.invoicing.services import invoice_of_order

    customer = create_customer(email="old@example.it", billing=False)
    order = confirmed_order(customer, products, now)
    # a customer from before billing data was asked: the profile vanished since the checkout
    from webapp.shop.models import BillingProfile

    db.session.query(BillingProfile).filter_by(customer_id=customer.id).delete()
    pay(order, now)
    db.session.commit()
    invoice = invoice_of_order(order.id)
    assert invoice.sdi_label == "Dati mancanti"
    run(sdi, now)
    assert attempts(invoice.id) == [] and sandbox_files(sdi) == []
    number = invoice.number_label
    save_profile(customer.id, PROFILES["private"])
    assert complete_missing_data(customer.id) == 1
    db.session.commit()
    run(sdi, now)
    db.session.refresh(invoice)
    assert invoice.number_label == number
    assert invoice.sdi_state is SdiState.NOT_DELIVERED


def test_the_sandbox_retries_its_webhook_with_backoff(sdi, create_customer, products, now):
    from webapp.sdi.extensions import db as sdi_db
    from webapp.sdi.models import Notification

    invoice = _invoice(create_customer, products, now)
    transmit_pass_only = run(sdi, now, push=False)
    assert transmit_pass_only.sent == 1
    sdi.webhook.down = True
    assert sdi.push() == 0
    with sdi.app_context():
        note = sdi_db.session.scalars(sdi_db.select(Notification)).one()
        assert note.attempts == 1 and note.next_attempt_at > sdi.clock()
        first_retry = note.next_attempt_at
    sdi.clock.now = first_retry
    assert sdi.push() == 0  # still down: the next wait is longer
    with sdi.app_context():
        note = sdi_db.session.scalars(sdi_db.select(Notification)).one()
        assert note.attempts == 2 and note.next_attempt_at - first_retry > first_retry - now
        sdi.clock.now = note.next_attempt_at
    sdi.webhook.down = False
    assert sdi.push() == 1
    db.session.expire_all()
    assert sdi_state(invoice.id) is SdiState.DELIVERED


@pytest.mark.skipif(not PG_URL, reason="the set-based batch issue is PostgreSQL's")
def test_the_batch_renewals_invoices_go_the_same_way(sdi, create_customer, products, now):
    from tests.unit.invoicing_helpers import confirmed_order, hosted_payment
    from webapp.invoicing.batch import issue_invoices
    from webapp.invoicing.models import Invoice
    from webapp.payments.events import PaidOrder

    paid = []
    for i, code in enumerate(("TESTRC1", None)):
        customer = buyer_with_code(create_customer, code, f"batch{i}@example.it")
        order = confirmed_order(customer, products, now)
        paid.append(PaidOrder(order.id, hosted_payment(order).id))
    old = create_customer(email="old-batch@example.it", billing=False)
    order = confirmed_order(old, products, now)
    from webapp.shop.models import BillingProfile

    db.session.query(BillingProfile).filter_by(customer_id=old.id).delete()
    paid.append(PaidOrder(order.id, hosted_payment(order).id))
    assert issue_invoices(paid, now) == 3
    db.session.commit()
    run(sdi, now)
    states = db.session.scalars(select(Invoice.sdi_state).order_by(Invoice.order_id)).all()
    assert [s.label for s in states] == ["Consegnata", "Non consegnata", "Dati mancanti"]
