"""Back office: staff login with TOTP, roles, bank transfers, refunds, withdrawal, prices,
grace extension, search, dashboard."""

from __future__ import annotations

from datetime import date, timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from tests.unit.backoffice_world import (
    STAFF_PASSWORD,
    make_order,
    make_staff,
    paid_by_card,
    staff_session,
)
from tests.unit.helpers import HX, login
from tests.unit.renewal_fakes import FakeGateway


@pytest.fixture(autouse=True)
def fake_bank(app) -> FakeGateway:
    """The gateway in memory: refunds and charges answered at once, by idempotency key."""
    gateway = FakeGateway()
    app.extensions["gateway"] = gateway
    return gateway


def outbox_count(db) -> int:
    from webapp.outbox.models import OutboxEmail

    return db.session.scalar(select(func.count(OutboxEmail.id)))


# --- login ------------------------------------------------------------------------------------


def test_login_needs_password_then_totp_and_never_shows_the_secret(client, db):
    staff = make_staff()
    assert (
        client.post("/backoffice/accesso", data={"email": staff.email, "password": "x"}).status_code
        == 422
    )
    response = client.post(
        "/backoffice/accesso", data={"email": staff.email, "password": STAFF_PASSWORD}
    )
    assert response.headers["Location"].endswith("/backoffice/accesso/codice")
    page = client.get("/backoffice/accesso/codice").text
    assert "data:image/svg+xml" not in page and staff.totp_secret not in page
    assert client.get("/backoffice/").status_code == 303  # not yet
    assert client.post("/backoffice/accesso/codice", data={"code": "000000"}).status_code == 422
    code = pyotp.TOTP(staff.totp_secret).now()
    response = client.post("/backoffice/accesso/codice", data={"code": code})
    assert response.headers["Location"].endswith("/backoffice/")
    assert client.get("/backoffice/").status_code == 200

    client.post("/backoffice/esci")
    client.post("/backoffice/accesso", data={"email": staff.email, "password": STAFF_PASSWORD})
    # The same code a second time is refused (replay).
    assert client.post("/backoffice/accesso/codice", data={"code": code}).status_code == 422


def test_the_session_ends_after_30_minutes_idle(client, now):
    from webapp.clock import now_utc

    staff = make_staff()
    staff_session(client, staff, now_utc() - timedelta(minutes=29))
    assert client.get("/backoffice/").status_code == 200
    staff_session(client, staff, now_utc() - timedelta(minutes=31))
    response = client.get("/backoffice/")
    assert response.headers["Location"].endswith("/backoffice/accesso")


def test_operators_are_refused_admin_pages(client):
    staff_session(client, make_staff("op@pecshop.test", "operatore"))
    for url in ("/backoffice/catalogo", "/backoffice/sconti", "/backoffice/staff"):
        response = client.get(url)
        assert response.status_code == 403 and "riservata agli amministratori" in response.text
    assert client.post("/backoffice/catalogo/nuovo", data={}).status_code == 403
    assert client.get("/backoffice/cerca").status_code == 200


def test_staff_create_command_prints_a_one_time_link_not_the_secret(app, db):
    from webapp.backoffice.models import StaffUser

    with app.app_context():
        result = app.test_cli_runner().invoke(
            args=[
                "staff",
                "create",
                "--email",
                "capo@pecshop.test",
                "--name",
                "Capo",
                "--role",
                "amministratore",
                "--password",
                "unapasswordlunga",
            ]
        )
    assert result.exit_code == 0, result.output
    assert "/backoffice/link/" in result.output and "Link monouso" in result.output
    staff = db.session.scalar(select(StaffUser).where(StaffUser.email == "capo@pecshop.test"))
    assert staff.totp_secret not in result.output and "otpauth://" not in result.output
    assert not staff.totp_confirmed


# --- bank transfers ---------------------------------------------------------------------------


def test_a_transfer_pays_the_order_once_with_one_email(
    app, client, db, catalogue, dummy_customer, now
):
    from webapp.renewals.models import Service

    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "bank_transfer", now)
    db.session.commit()
    staff_session(client, make_staff("op@pecshop.test", "operatore"))
    url = f"/backoffice/ordini/{order.id}/bonifico"
    wrong = client.post(
        url, data={"amount": "5,00", "value_date": "2026-11-20", "reference": "CRO123456"}
    )
    assert wrong.status_code == 422
    assert "Importo del bonifico € 5,00 diverso dal totale dell&#39;ordine € 6,10" in wrong.text
    emails = outbox_count(db)
    ok = client.post(
        url,
        data={"amount": "6,10", "value_date": "2026-11-20", "reference": "cro 123456"},
        headers=HX,
    )
    assert ok.status_code == 200 and 'id="order-file"' in ok.text and "<html" not in ok.text
    db.session.expire_all()
    assert order.status.value == "paid"
    services = db.session.scalars(
        select(Service).where(Service.customer_id == dummy_customer.id)
    ).all()
    assert [s.status.value for s in services] == ["active"] and not services[0].auto_renew
    assert outbox_count(db) == emails + 1
    again = client.post(
        url, data={"amount": "6,10", "value_date": "2026-11-20", "reference": "CRO123456"}
    )
    assert again.status_code == 422
    assert outbox_count(db) == emails + 1


def test_the_same_cro_is_refused_by_the_database(db, catalogue, dummy_customer, now):
    from sqlalchemy.exc import IntegrityError

    from webapp.payments.models import Payment, PaymentChannel

    order = make_order(dummy_customer, catalogue["products"]["PEC-STD"], "bank_transfer", now)
    for i in range(2):
        db.session.add(
            Payment(
                order_id=order.id,
                channel=PaymentChannel.BANK_TRANSFER,
                amount_cents=1,
                idempotency_key=f"k{i}",
                transfer_reference="CRO1",
            )
        )
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


# --- refunds and withdrawal -------------------------------------------------------------------


def test_a_full_refund_cancels_the_services_a_partial_one_does_not(
    client, db, catalogue, dummy_customer, now
):
    from webapp.renewals.models import Service

    order, payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-PRO"], now)
    staff_session(client, make_staff())
    url = f"/backoffice/pagamenti/{payment.id}/rimborso"
    assert client.post(url, data={"amount": "10,00", "reason": ""}).status_code == 422
    assert client.post(url, data={"amount": "10,00", "reason": "Reclamo"}).status_code == 200
    service = db.session.scalar(select(Service).where(Service.customer_id == dummy_customer.id))
    db.session.refresh(service)
    assert service.status.value == "active"
    too_much = client.post(url, data={"amount": "100,00", "reason": "Reclamo"})
    assert too_much.status_code == 422
    rest = (payment.amount_cents - 1000) / 100
    response = client.post(
        url, data={"amount": f"{rest:.2f}".replace(".", ","), "reason": "Reclamo"}
    )
    assert response.status_code == 200, response.text
    db.session.refresh(service)
    assert service.status.value == "cancelled" and not service.auto_renew
    page = client.get(f"/backoffice/ordini/{order.id}").text
    assert "rimborso richiesto" in page and "Rimborso operator (succeeded)" in page


def test_a_refunded_duplicate_leaves_the_services_alone(db, catalogue, dummy_customer, now):
    from webapp.payments.models import Payment, PaymentChannel, PaymentStatus, RefundKind
    from webapp.payments.refunds import execute_refund, refund_payment
    from webapp.renewals.models import Service

    order, _, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-PRO"], now)
    twin = Payment(
        order_id=order.id,
        channel=PaymentChannel.HOSTED_PAGE,
        status=PaymentStatus.DUPLICATE,
        amount_cents=order.total_cents,
        idempotency_key="twin",
    )
    db.session.add(twin)
    db.session.flush()
    refund = refund_payment(
        twin,
        twin.amount_cents,
        kind=RefundKind.DUPLICATE,
        reason="doppio",
        now=now,
        requested_by=None,
    )
    execute_refund(refund, now)
    service = db.session.scalar(select(Service).where(Service.customer_id == dummy_customer.id))
    assert service.status.value == "active"


def test_a_consumer_withdraws_within_14_days(
    app, client, db, catalogue, dummy_customer, now, monkeypatch
):
    import webapp.account.withdrawal as views
    from webapp.renewals.models import Service

    order, payment, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    monkeypatch.setattr(views, "now_utc", lambda: now + timedelta(days=13))
    login(client)
    assert "Recesso" in client.get("/area-clienti/ordini").text
    assert (
        "Esercita il diritto di recesso"
        in client.get(f"/area-clienti/ordini/{order.id}/recesso").text
    )
    response = client.post(f"/area-clienti/ordini/{order.id}/recesso")
    assert response.status_code == 303, response.text
    db.session.expire_all()
    assert payment.refunded_cents == payment.amount_cents
    service = db.session.scalar(select(Service).where(Service.customer_id == dummy_customer.id))
    assert service.status.value == "cancelled" and not service.auto_renew
    again = client.post(f"/area-clienti/ordini/{order.id}/recesso")
    assert again.status_code == 422


def test_withdrawal_is_refused_late_for_businesses_and_after_immediate_start(
    db, catalogue, dummy_customer, now
):
    from webapp.payments.withdrawal import withdrawal_refusal

    order, _, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    assert withdrawal_refusal(order, dummy_customer, now + timedelta(days=14)) is None
    assert "scaduto" in withdrawal_refusal(order, dummy_customer, now + timedelta(days=15))
    order.immediate_start_at = now
    assert "attivazione immediata" in withdrawal_refusal(order, dummy_customer, now)
    order.immediate_start_at = None
    from webapp.shop.models import CustomerType

    order.buyer_type = CustomerType.BUSINESS  # invoiced to a business (copied at confirm)
    assert "consumatori" in withdrawal_refusal(order, dummy_customer, now)


def test_checkout_records_the_immediate_start_text_and_time(
    client, db, catalogue, dummy_customer, now, monkeypatch
):
    from tests.unit.helpers import (
        add,
        checkout_token,
        choose_method,
        confirm,
        freeze_views,
        orders_of,
    )
    from webapp.shop.checkout import IMMEDIATE_START_TEXT

    freeze_views(monkeypatch, now)
    login(client)
    add(client, catalogue["products"]["PEC-STD"])
    choose_method(client)
    assert "perdo il diritto di recesso" in client.get("/checkout").text
    confirm(client, checkout_token(client), immediate_start="1")
    order = orders_of(dummy_customer.id)[0]
    assert order.immediate_start_text == IMMEDIATE_START_TEXT and order.immediate_start_at == now


# --- prices -----------------------------------------------------------------------------------


def test_a_price_change_applies_from_its_day_to_carts_and_renewals(app, client, db, catalogue, now):
    from webapp.renewals.models import Service
    from webapp.renewals.services import renewal_price
    from webapp.shop.catalogue import price_on

    pec = catalogue["products"]["PEC-STD"]
    staff_session(client, make_staff())
    response = client.post(
        f"/backoffice/catalogo/{pec.id}/prezzi",
        data={"price": "7,00", "effective_from": "2099-01-01"},
    )
    assert response.status_code == 303
    db.session.expire_all()
    assert price_on(pec, date(2098, 12, 31)) == 500
    assert price_on(pec, date(2099, 1, 1)) == 700
    service = Service(product=pec, customer_id=1, frequency_years=2)
    assert renewal_price(service, 22, date(2099, 3, 1)).net_cents == 1400
    assert renewal_price(service, 22, date(2098, 3, 1)).net_cents == 1000
    past = client.post(
        f"/backoffice/catalogo/{pec.id}/prezzi",
        data={"price": "7,00", "effective_from": "2000-01-01"},
    )
    assert past.status_code == 422


# --- dunning, search, dashboard ---------------------------------------------------------------


def test_extending_the_grace_moves_expiry_and_renewal_period(
    client, db, catalogue, dummy_customer, now
):
    from webapp.backoffice.models import AuditEntry
    from webapp.renewals.models import Renewal, RenewalStatus, Service

    paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    service = db.session.scalar(select(Service))
    old = service.expires_at
    renewal = Renewal(service_id=service.id, period_expires_at=old, status=RenewalStatus.FAILED)
    db.session.add(renewal)
    db.session.commit()
    staff_session(client, make_staff())
    assert "Riprova ora" in client.get("/backoffice/solleciti").text
    url = f"/backoffice/rinnovi/{renewal.id}/tolleranza"
    assert client.post(url, data={"days": "7"}).status_code == 422  # no reason
    assert (
        client.post(url, data={"days": "7", "reason": "Cliente in ferie"}, headers=HX).status_code
        == 200
    )
    db.session.expire_all()
    assert service.expires_at == old + timedelta(days=7)
    assert renewal.period_expires_at == old + timedelta(days=7)
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action.like("tolleranza%")))
    assert entry.reason == "Cliente in ferie" and entry.object_id == str(service.id)


def test_search_by_number_tax_code_and_last_four(client, db, catalogue, dummy_customer, now):
    order, _, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now, last4="1881")
    staff_session(client, make_staff())
    page = client.get(f"/backoffice/cerca?q={order.number}&tipo=ordini")
    assert order.number in page.text and "<html" in page.text
    fragment = client.get("/backoffice/cerca?q=RSSMRA85T10A562S", headers=HX)
    assert "HX-Request" in fragment.headers["Vary"] and "<html" not in fragment.text
    assert 'id="search-results"' in fragment.text and order.number in fragment.text
    assert "•••• 1881" in client.get("/backoffice/cerca?q=1881&tipo=pagamenti").text


def test_dashboard_and_order_timeline(client, db, catalogue, dummy_customer, now):
    from webapp.clock import now_utc

    order, _, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now_utc())
    staff_session(client, make_staff())
    page = client.get("/backoffice/").text
    assert "<svg" in page and "<rect" in page and "€ 6,10" in page
    timeline = client.get(f"/backoffice/ordini/{order.id}").text
    for text in (
        "Ordine creato",
        "Pagamento n.",
        "riuscito",
        "Conferma pagamento ordine",
        "Reinvia",
    ):
        assert text in timeline, text


def test_operators_download_the_invoices_of_a_period_as_a_zip(
    client, db, catalogue, dummy_customer, now
):
    import io
    import zipfile

    from webapp.invoicing.models import Invoice

    paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    invoice = db.session.scalar(select(Invoice))
    staff_session(client, make_staff(role="operatore"))
    page = client.get("/backoffice/fatture")
    assert page.status_code == 200 and "Scarica lo zip" in page.text
    day = invoice.issued_at.date().isoformat()
    response = client.get(f"/backoffice/fatture?dal={day}&al={day}")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.data)).namelist()
    assert names == [invoice.file_name]
    refused = client.get(f"/backoffice/fatture?dal={day}&al=2000-01-01")
    assert refused.status_code == 422 and "viene dopo" in refused.text
