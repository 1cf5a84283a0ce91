"""Every back-office route, from the URL map: customers get 404, anonymous visitors the staff
login, every POST needs the CSRF token and leaves an audit row."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.unit.backoffice_world import make_order, make_staff, paid_by_card, staff_session
from tests.unit.helpers import login

LOGIN_URL = "/backoffice/accesso"
PUBLIC = {
    "backoffice.login",
    "backoffice.login_code",
    "backoffice.open_link",
    "backoffice.use_link",
}
TOKEN = re.compile(r"""hx-headers='\{"X-CSRFToken": "([^"]+)"\}'""")


@pytest.fixture
def ids(db, catalogue, dummy_customer, now):
    """One object of each kind a back-office URL names."""
    from webapp.outbox.models import OutboxEmail
    from webapp.renewals.models import Renewal, RenewalStatus, Service

    products = catalogue["products"]
    transfer = make_order(dummy_customer, products["PEC-STD"], "bank_transfer", now)
    order, payment, _ = paid_by_card(dummy_customer, products["PEC-PRO"], now)
    service = db.session.scalar(select(Service).where(Service.customer_id == dummy_customer.id))
    renewal = Renewal(
        service_id=service.id,
        period_expires_at=service.expires_at,
        status=RenewalStatus.FAILED,
        failure_code="insufficient_funds",
        next_attempt_at=now + timedelta(days=1),
    )
    db.session.add(renewal)
    email = db.session.scalar(select(OutboxEmail))
    invoice, attempt, note = _sdi_rows(db, order.id, now)
    admin = make_staff()
    other = make_staff("altro@pecshop.test", "operatore")
    db.session.commit()
    return {
        "order_id": transfer.id,
        "payment_id": payment.id,
        "email_id": email.id,
        "renewal_id": renewal.id,
        "product_id": products["PEC-STD"].id,
        "code_id": catalogue["codes"]["PEC5"].id,
        "staff_id": other.id,
        "customer_id": dummy_customer.id,
        "service_id": service.id,
        "invoice_id": invoice.id,
        "attempt_id": attempt.id,
        "notification_id": note.id,
        "token": "not-a-real-token",
        "_admin": admin,
    }


def _sdi_rows(db, order_id: int, now):
    """The paid order's invoice, an attempt to send it and a notification about it."""
    from webapp.invoicing.models import SdiNotification
    from webapp.invoicing.services import invoice_of_order
    from webapp.invoicing.transmission import open_attempt

    invoice = invoice_of_order(order_id)
    attempt = open_attempt(invoice, now)
    note = SdiNotification(
        transmission_id=attempt.id, sdi_id="1", message_id="1", kind="RC", xml=b"<x/>"
    )
    db.session.add(note)
    db.session.flush()
    return invoice, attempt, note


def backoffice_requests(app, ids) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every back-office rule, path parameters filled in."""
    found = []
    with app.test_request_context():
        from flask import url_for

        for rule in app.url_map.iter_rules():
            if not rule.endpoint.startswith("backoffice."):
                continue
            values = {arg: ids[arg] for arg in rule.arguments}
            url = url_for(rule.endpoint, **values)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                found.append((rule.endpoint, method, url))
    assert len({e for e, _, _ in found}) > 20
    return found


def test_customers_get_404_on_every_back_office_url(app, client, ids):
    login(client)
    for endpoint, method, url in backoffice_requests(app, ids):
        response = client.open(url, method=method)
        assert response.status_code == 404, (endpoint, method, response.status_code)


def test_anonymous_visitors_are_sent_to_the_staff_login(app, client, ids):
    for endpoint, method, url in backoffice_requests(app, ids):
        if endpoint in PUBLIC:
            continue
        response = client.open(url, method=method)
        assert response.status_code == 303, (endpoint, method)
        assert response.headers["Location"].endswith(LOGIN_URL), endpoint
    assert client.get(LOGIN_URL).status_code == 200
    htmx = client.get("/backoffice/cerca", headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"].endswith(LOGIN_URL)


def test_every_post_needs_csrf_and_writes_an_audit_row(app, client, db, ids):
    from webapp.backoffice.models import AuditEntry

    staff_session(client, ids["_admin"])
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        token = TOKEN.search(client.get("/backoffice/").text).group(1)
        posts = [(e, u) for e, m, u in backoffice_requests(app, ids) if m == "POST"]
        assert len(posts) > 15
        for endpoint, url in posts:
            if endpoint == "backoffice.logout":
                continue  # last: it ends the session
            assert client.post(url).status_code == 400, endpoint
            before = db.session.scalar(select(func.count(AuditEntry.id)))
            staff_session(client, ids["_admin"])
            response = client.post(url, headers={"X-CSRFToken": token})
            assert response.status_code < 500, (endpoint, response.status_code)
            db.session.expire_all()
            after = db.session.scalar(select(func.count(AuditEntry.id)))
            assert after > before, f"{endpoint} wrote no audit row"
        assert client.post("/backoffice/esci").status_code == 400
        response = client.post("/backoffice/esci", headers={"X-CSRFToken": token})
        assert response.status_code == 303
        assert db.session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc())).action == (
            "uscita"
        )
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_no_route_edits_or_deletes_the_audit_log(app):
    from pathlib import Path

    audit_rules = [r for r in app.url_map.iter_rules() if "registro" in r.rule]
    assert audit_rules and all(r.methods <= {"GET", "HEAD", "OPTIONS"} for r in audit_rules)
    source = "\n".join(p.read_text() for p in Path("webapp").rglob("*.py"))
    assert not re.search(r"(update|delete)\(AuditEntry", source)
    assert "session.delete(entry" not in source
