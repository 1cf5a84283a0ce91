"""Issue 26, e-mails: the payment confirmation lays out lines and totals as the order page does
(list prices, one "Sconto (CODE)" line, then the discounted taxable amount), and the refund
e-mail names the services it stopped and links its credit note."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.unit.backoffice_world import make_order, make_staff, paid_by_card, staff_session
from tests.unit.renewal_fakes import FakeGateway


@pytest.fixture(autouse=True)
def fake_bank(app) -> FakeGateway:
    gateway = FakeGateway()
    app.extensions["gateway"] = gateway
    return gateway


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _discounted_order(db, customer, product, now):
    from webapp.money import vat_cents

    order = make_order(customer, product, "card", now, years=2)
    line = order.lines[0]
    line.discount_cents = 500
    line.net_cents = line.list_cents - 500
    order.discount_code, order.discount_cents = "BENVENUTO10", 500
    order.net_cents = order.subtotal_cents - 500
    order.vat_cents = vat_cents(order.net_cents)
    order.total_cents = order.net_cents + order.vat_cents
    db.session.flush()
    return order


def test_the_confirmation_shows_list_prices_then_one_discount_line(
    app, db, catalogue, dummy_customer, now
):
    from flask import render_template

    from webapp.money import format_eur

    order = _discounted_order(db, dummy_customer, catalogue["products"]["PEC-PRO"], now)
    context = dict(
        customer=dummy_customer, order=order, card=None, services=[], renewing=[], invoice=None
    )
    with app.test_request_context():
        html = render_template("email/payment_confirmation.html", shop_url="", **context)
        text = render_template("email/payment_confirmation.txt", shop_url="", **context)
    for body in (_text(html), text):
        rows = [
            f"Imponibile prodotti {format_eur(order.subtotal_cents)}",
            f"Sconto (BENVENUTO10) − {format_eur(500)}",
            f"Imponibile scontato {format_eur(order.net_cents)}",
            f"IVA 22% {format_eur(order.vat_cents)}",
            f"Totale pagato {format_eur(order.total_cents)}",
        ]
        if body is text:
            rows = [r.replace(" − ", " - ").replace(" €", ": €", 1) for r in rows]
            rows[1] = f"Sconto (BENVENUTO10): - {format_eur(500)}"
        positions = [body.find(r) for r in rows]
        assert -1 not in positions, (rows, body)
        assert positions == sorted(positions)
        assert "(sconto BENVENUTO10" not in body  # no second discount beside the taxable amount
        assert format_eur(order.lines[0].list_cents) in body  # the line at its list price


def _refund(client, payment, cents: int):
    amount = f"{cents / 100:.2f}".replace(".", ",")
    url = f"/backoffice/pagamenti/{payment.id}/rimborso"
    response = client.post(url, data={"amount": amount, "reason": "Reclamo"})
    assert response.status_code == 200, response.text


def _refund_email(db, payment):
    from webapp.outbox.models import OutboxEmail
    from webapp.payments.models import Refund

    refund = db.session.scalars(
        select(Refund).where(Refund.payment_id == payment.id).order_by(Refund.id.desc())
    ).first()
    email = db.session.scalar(
        select(OutboxEmail).where(OutboxEmail.dedupe_key == f"refund-{refund.id}")
    )
    note = db.session.scalar(select_note(refund.id))
    return email, note


def select_note(refund_id: int):
    from webapp.invoicing.models import Invoice

    return select(Invoice).where(Invoice.refund_id == refund_id)


def test_a_full_refund_names_the_stopped_services_and_links_the_credit_note(
    client, db, catalogue, dummy_customer, now
):
    from webapp.renewals.cancellation import services_stopped_by
    from webapp.renewals.models import Service

    order, payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-PRO"], now)
    service = db.session.scalar(select(Service).where(Service.customer_id == dummy_customer.id))
    staff_session(client, make_staff())
    _refund(client, payment, payment.amount_cents)
    email, note = _refund_email(db, payment)
    link = f"/area-clienti/fatture/{note.id}"
    named = f"{service.product.name} (servizio n. {service.id})"
    assert named in email.body_html and named in email.body_text
    assert f'{link}">{note.number_label}</a>' in email.body_html
    assert (
        f"Nota di credito n. {note.number_label}: " in email.body_text and link in email.body_text
    )
    db.session.refresh(service)
    assert service.status.value == "cancelled"
    assert services_stopped_by(payment) == [service]  # the same after the cancellation


def test_a_partial_refund_stops_nothing_and_still_links_its_credit_note(
    client, db, catalogue, dummy_customer, now
):
    order, payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-PRO"], now)
    staff_session(client, make_staff())
    _refund(client, payment, 1000)
    email, note = _refund_email(db, payment)
    assert "disattivati" not in email.body_html and "disattivati" not in email.body_text
    assert f"/area-clienti/fatture/{note.id}" in email.body_html
