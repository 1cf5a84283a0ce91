"""Each outcome of the SdI, forced through the sandbox's test recipient codes and its clock,
as the shop records it: states in the interface's words, issued or not, the courtesy e-mail,
the correction queue; every notification the sandbox emitted validates against the schema."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.sdi_helpers import (
    attempts,
    buyer_with_code,
    paid_invoice,
    run,
    sandbox_files,
    sandbox_messages,
)
from webapp.extensions import db
from webapp.invoicing.sdi_states import SdiState
from webapp.outbox.models import OutboxEmail
from webapp.sdi.messages import validate


@pytest.fixture
def products(catalogue):
    return catalogue["products"]


def _state(invoice) -> SdiState:
    db.session.refresh(invoice)
    return invoice.sdi_state


@pytest.fixture(autouse=True)
def notifications_are_valid(sdi):
    """After each test: every notification the sandbox emitted matches the vendored schema."""
    yield
    for xml in sandbox_messages(sdi):
        assert validate(xml) == [], xml


@pytest.mark.parametrize(
    ("code", "label", "issued"),
    [
        ("TESTRC1", "Consegnata", True),
        ("TESTMC1", "Non consegnata", True),
        (None, "Non consegnata", True),  # a consumer: 0000000
        ("TESTNS1", "Scartata", False),
        ("PAEC01", "Accettata", True),
        ("PAEC02", "Rifiutata", True),
    ],
)
def test_each_test_code_gives_its_outcome(sdi, create_customer, products, now, code, label, issued):
    customer = buyer_with_code(create_customer, code, "buyer@example.it")
    invoice = paid_invoice(customer, products, now)
    assert invoice.sdi_label == "Da inviare"
    report = run(sdi, now)
    assert report.sent == 1
    assert _state(invoice).label == label
    assert invoice.sdi_state.issued is issued
    (attempt,) = attempts(invoice.id)
    assert attempt.sdi_id and attempt.file_name.startswith("IT01234560157_")


def test_a_silent_office_gives_decorrenza_termini_after_15_days(
    sdi, create_customer, products, now
):
    invoice = paid_invoice(
        buyer_with_code(create_customer, "PADT15", "pa@example.it"), products, now
    )
    run(sdi, now)
    assert _state(invoice) is SdiState.DELIVERED
    sdi.clock.advance(14)
    run(sdi, now)
    assert _state(invoice) is SdiState.DELIVERED
    sdi.clock.advance(1)
    run(sdi, now + timedelta(days=15))
    assert _state(invoice).label == "Decorrenza termini"
    kinds = [n.kind for n in attempts(invoice.id)[0].notifications]
    assert kinds == ["RC", "DT"]


def test_an_unreachable_office_gives_the_attestation_after_10_days(
    sdi, create_customer, products, now
):
    invoice = paid_invoice(
        buyer_with_code(create_customer, "PAAT10", "pa@example.it"), products, now
    )
    run(sdi, now)
    assert _state(invoice) is SdiState.NOT_DELIVERED
    sdi.clock.advance(10)
    run(sdi, now + timedelta(days=10))
    assert _state(invoice).label == "Impossibile recapitare"
    # a public administration gets no courtesy e-mail: the AT is its channel
    assert db.session.query(OutboxEmail).filter(OutboxEmail.dedupe_key.like("sdi-%")).count() == 0


def test_mc_sends_the_courtesy_copy_once(sdi, create_customer, products, now):
    invoice = paid_invoice(
        buyer_with_code(create_customer, None, "privato@example.it"), products, now
    )
    run(sdi, now)
    run(sdi, now)  # the feed brings the MC again: no second e-mail
    emails = db.session.query(OutboxEmail).filter(OutboxEmail.dedupe_key.like("sdi-%")).all()
    assert [e.to_addr for e in emails] == ["privato@example.it"]
    assert "Agenzia delle Entrate" in emails[0].body_text
    assert invoice.number_label in emails[0].subject


def test_the_notifications_also_arrive_by_the_feed_alone(sdi, create_customer, products, now):
    invoice = paid_invoice(
        buyer_with_code(create_customer, "PAEC01", "pa@example.it"), products, now
    )
    run(sdi, now, push=False)  # no webhook: the same pass reads the feed
    assert _state(invoice) is SdiState.ACCEPTED
    sdi.push()  # the webhooks arrive late: stored once, nothing changes
    db.session.expire_all()
    (attempt,) = attempts(invoice.id)
    assert [n.kind for n in attempt.notifications] == ["RC", "NE"]
    assert set(sdi.webhook.answers) == {200}
    assert sandbox_files(sdi)[0][2] == ["RC", "NE"]


def test_flask_invoices_transmit_does_a_pass_now(app, sdi, create_customer, products, now):
    invoice = paid_invoice(
        buyer_with_code(create_customer, "TESTRC1", "cli@example.it"), products, now
    )
    result = app.test_cli_runner().invoke(args=["invoices", "transmit"])
    assert result.exit_code == 0, result.output
    assert "1 preparate, 1 inviate, 0 in attesa" in result.output
    assert _state(invoice) is SdiState.DELIVERED  # the same pass read the feed
