"""The SdI states on the pages: the back office's list, invoice page (timeline, XML downloads),
"Da correggere" queue and "Reinvia"; the customer's Fatture page; missing billing data asked
at login and in the area, and the documents rebuilt once it is given."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.unit.backoffice_world import make_staff, staff_session
from tests.unit.invoicing_helpers import PROFILES, confirmed_order, pay
from tests.unit.sdi_helpers import attempts, buyer_with_code, paid_invoice, run
from webapp.clock import ROME, now_utc
from webapp.extensions import db
from webapp.invoicing.sdi_states import SdiState
from webapp.shop.billing import save_profile


@pytest.fixture
def products(catalogue):
    return catalogue["products"]


@pytest.fixture
def staff_client(client):
    staff_session(client, make_staff())
    return client


def test_the_back_office_list_and_page_show_state_timeline_and_xml(
    staff_client, sdi, create_customer, products
):
    now = now_utc()
    invoice = paid_invoice(
        buyer_with_code(create_customer, "PAEC01", "pa@example.it"), products, now
    )
    run(sdi, now)
    listing = staff_client.get("/backoffice/fatture/elenco").get_data(as_text=True)
    assert invoice.number_label in listing and "Accettata" in listing
    filtered = staff_client.get("/backoffice/fatture/elenco?stato=scartata").get_data(as_text=True)
    assert invoice.number_label not in filtered
    assert staff_client.get("/backoffice/fatture/elenco?stato=%00").status_code in (200, 400)
    page = staff_client.get(f"/backoffice/fatture/{invoice.id}").get_data(as_text=True)
    (attempt,) = attempts(invoice.id)
    assert attempt.file_name in page and "Ricevuta di consegna" in page
    assert "Notifica di esito" in page and "EC01" in page
    note = attempt.notifications[0]
    xml = staff_client.get(f"/backoffice/fatture/{invoice.id}/notifiche/{note.id}.xml")
    assert xml.status_code == 200 and xml.data == note.xml
    assert "attachment" in xml.headers["Content-Disposition"]
    sent = staff_client.get(f"/backoffice/fatture/{invoice.id}/invii/{attempt.id}.xml")
    assert sent.data == attempt.xml
    assert (
        staff_client.get(
            f"/backoffice/fatture/{invoice.id + 1}/notifiche/{note.id}.xml"
        ).status_code
        == 404
    )
    assert staff_client.get(f"/backoffice/fatture/{invoice.id}/invii/99999.xml").status_code == 404


def test_a_rejection_waits_in_the_queue_and_reinvia_sends_it_again(
    staff_client, sdi, create_customer, products
):
    now = now_utc()
    customer = buyer_with_code(create_customer, "TESTNS1", "ns@example.it")
    invoice = paid_invoice(customer, products, now)
    run(sdi, now)
    queue = staff_client.get("/backoffice/fatture/da-correggere").get_data(as_text=True)
    assert invoice.number_label in queue and "00311" in queue
    (attempt,) = attempts(invoice.id)
    deadline = (attempt.outcome_at + timedelta(days=5)).astimezone(ROME).strftime("%d/%m/%Y %H:%M")
    assert deadline in queue
    save_profile(customer.id, replace(PROFILES["business_code"], sdi_code="TESTRC1"))
    db.session.commit()
    answer = staff_client.post(f"/backoffice/fatture/{invoice.id}/reinvia")
    assert answer.status_code in (200, 303)
    twice = staff_client.post(f"/backoffice/fatture/{invoice.id}/reinvia")
    assert twice.status_code == 422 and "non è da reinviare" in twice.get_data(as_text=True)
    run(sdi, now_utc())
    db.session.refresh(invoice)
    assert invoice.sdi_label == "Consegnata"
    queue = staff_client.get("/backoffice/fatture/da-correggere").get_data(as_text=True)
    assert invoice.number_label not in queue


def test_a_pa_refusal_opens_a_task_and_an_outage_shows_what_waits(
    staff_client, sdi, create_customer, products
):
    now = now_utc()
    refused = paid_invoice(
        buyer_with_code(create_customer, "PAEC02", "pa@example.it"), products, now
    )
    run(sdi, now)
    later = paid_invoice(buyer_with_code(create_customer, "TESTRC1", "b@example.it"), products, now)
    sdi.transport.down = True
    run(sdi, now)
    queue = staff_client.get("/backoffice/fatture/da-correggere").get_data(as_text=True)
    assert refused.number_label in queue.split("sdi-refused")[1]
    assert attempts(later.id)[0].file_name in queue.split("sdi-waiting")[1]


def test_the_customer_sees_the_state_on_the_fatture_page(
    client, auth, sdi, create_customer, products
):
    now = now_utc()
    customer = buyer_with_code(create_customer, "TESTRC1", "mario@example.it")
    invoice = paid_invoice(customer, products, now)
    auth.login()
    assert "Da inviare" in client.get("/area-clienti/fatture").get_data(as_text=True)
    run(sdi, now)
    page = client.get("/area-clienti/fatture").get_data(as_text=True)
    assert "Consegnata" in page
    xml = client.get(f"/area-clienti/fatture/{invoice.id}/xml")
    assert xml.data == attempts(invoice.id)[0].xml  # the file the SdI took


def test_missing_billing_data_is_asked_and_the_invoice_rebuilt_with_its_number(
    client, auth, sdi, create_customer, products
):
    from webapp.shop.models import BillingProfile

    now = now_utc()
    customer = create_customer(billing=False)
    order = confirmed_order(customer, products, now)
    db.session.query(BillingProfile).filter_by(customer_id=customer.id).delete()
    pay(order, now)
    db.session.commit()
    login = auth.login()
    assert login.status_code == 303
    page = client.get("/area-clienti/fatture").get_data(as_text=True)
    assert "Dati mancanti" in page and "billing-missing" in page
    assert "Mancano i tuoi dati di fatturazione" in page  # the flash from the login
    form = {
        "customer_type": "private",
        "first_name": "Mario",
        "last_name": "Rossi",
        "tax_code": "RSSMRA85T10A562S",
        "address": "Via Garibaldi 10",
        "postal_code": "20121",
        "city": "Milano",
        "province": "MI",
        "country": "IT",
    }
    assert client.post("/area-clienti/fatturazione", data=form).status_code in (200, 303)
    page = client.get("/area-clienti/fatture").get_data(as_text=True)
    assert "Da inviare" in page and "billing-missing" not in page
    run(sdi, now)
    from webapp.invoicing.services import invoice_of_order

    assert invoice_of_order(order.id).sdi_state is SdiState.NOT_DELIVERED
