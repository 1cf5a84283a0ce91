"""Area clienti › Profilo (issue 21): password, e-mail, Scarica i miei dati, Chiudi il mio account;
and the back office's confirmation and reset links."""

from __future__ import annotations

import html
import io
import json
import re
import zipfile

import pytest
from sqlalchemy import func, select

from tests.conftest import FIXED_NOW
from tests.unit.backoffice_world import make_staff, paid_by_card, staff_session
from tests.unit.helpers import login
from webapp.account.closure import close_account, closed_email
from webapp.backoffice.models import AuditEntry
from webapp.errors import DomainError
from webapp.invoicing.models import Invoice
from webapp.invoicing.xsd import schema_errors
from webapp.outbox.models import OutboxEmail
from webapp.payments.models import Payment, PaymentChannel, SavedCard
from webapp.renewals.models import Service
from webapp.shop.models import BillingProfile, Customer

CONFIRM_LINK = re.compile(r"/conferma-email/([A-Za-z0-9_-]+)")


def subjects(db, to: str) -> list[str]:
    stmt = select(OutboxEmail.subject).where(OutboxEmail.to_addr == to).order_by(OutboxEmail.id)
    return list(db.session.scalars(stmt))


def link_to(db, to: str) -> str:
    stmt = select(OutboxEmail.body_text).where(OutboxEmail.to_addr == to)
    for body in reversed(db.session.scalars(stmt).all()):
        found = CONFIRM_LINK.search(body)
        if found:
            return found.group(0)
    raise AssertionError(f"no link to {to}")


@pytest.fixture
def mario(client, dummy_customer):
    login(client)
    return dummy_customer


# --- password ------------------------------------------------------------------------------------


def test_change_password_needs_the_current_one(app, client, db, mario):
    other = app.test_client()
    login(other)
    wrong = client.post(
        "/area-clienti/profilo/password",
        data={"current": "sbagliata", "password": "nuova-pass-1", "password2": "nuova-pass-1"},
    )
    assert wrong.status_code == 422
    assert "La password attuale non è corretta." in html.unescape(wrong.text)
    done = client.post(
        "/area-clienti/profilo/password",
        data={"current": "password123", "password": "nuova-pass-1", "password2": "nuova-pass-1"},
    )
    assert done.status_code == 303
    assert client.get("/area-clienti/").status_code == 200  # this session goes on
    assert other.get("/area-clienti/").status_code in (302, 303)  # the others end
    assert "La tua password è stata cambiata" in subjects(db, "mario@example.it")


# --- e-mail --------------------------------------------------------------------------------------


def test_change_email_by_link_and_the_old_address_is_told(client, db, mario):
    asked = client.post(
        "/area-clienti/profilo/email",
        data={"email": "Mario.Nuovo@example.it", "current": "password123"},
    )
    assert asked.status_code == 303
    db.session.expire_all()
    assert db.session.get(Customer, mario.id).email == "mario@example.it"  # not yet
    assert "Richiesta di cambio dell'indirizzo e-mail" in subjects(db, "mario@example.it")
    followed = client.get(link_to(db, "mario.nuovo@example.it"), follow_redirects=True)
    assert "Indirizzo cambiato" in followed.text
    db.session.expire_all()
    customer = db.session.get(Customer, mario.id)
    assert customer.email == "mario.nuovo@example.it" and customer.email_confirmed_at is not None
    assert "Il tuo indirizzo e-mail è stato cambiato" in subjects(db, "mario@example.it")
    client.post("/esci")
    login(client, email="mario.nuovo@example.it")


def test_a_new_address_taken_meanwhile_changes_nothing(client, db, mario, create_customer):
    client.post(
        "/area-clienti/profilo/email", data={"email": "giulia@example.it", "current": "password123"}
    )
    create_customer(email="giulia@example.it", name="Giulia Bianchi")
    followed = client.get(link_to(db, "giulia@example.it"), follow_redirects=True)
    assert followed.status_code == 409
    db.session.expire_all()
    assert db.session.get(Customer, mario.id).email == "mario@example.it"


# --- Scarica i miei dati ----------------------------------------------------------------------


def test_the_export_holds_every_kind_of_data(client, db, mario, catalogue, now):
    order, payment, card = paid_by_card(mario, catalogue["products"]["PEC-STD"], now)
    response = client.get("/area-clienti/profilo/dati.zip")
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    names = set(archive.namelist())
    expected = {
        "profilo.json",
        "dati_fatturazione.json",
        "consensi.json",
        "ordini.json",
        "pagamenti.json",
        "carte.json",
        "servizi.json",
        "email.json",
    }
    assert expected <= names

    def read(name):
        return json.loads(archive.read(name))

    assert read("profilo.json")["email"] == "mario@example.it"
    assert read("dati_fatturazione.json")["tax_code"] == "RSSMRA85T10A562S"
    assert [o["number"] for o in read("ordini.json")] == [order.number]
    [paid] = read("pagamenti.json")
    assert paid["carta"] == "Visa •••• 4242" and paid["amount_cents"] == order.total_cents
    assert "4111" not in archive.read("pagamenti.json").decode()
    assert read("servizi.json")[0]["prodotto"] == order.lines[0].product_name
    assert {c["consenso"] for c in read("consensi.json")} >= {"condizioni generali di contratto"}
    assert any(e["subject"] for e in read("email.json"))
    invoice = db.session.scalar(select(Invoice).where(Invoice.order_id == order.id))
    assert archive.read(f"fatture/{invoice.file_name}") == invoice.xml


# --- Chiudi il mio account -----------------------------------------------------------------------


def test_closing_anonymises_the_person_and_keeps_orders_payments_invoices(
    client, db, mario, catalogue, now, bank
):
    order, payment, card = paid_by_card(mario, catalogue["products"]["PEC-STD"], now)
    invoice = db.session.scalar(select(Invoice).where(Invoice.order_id == order.id))
    invoice_copy = dict(invoice.customer)
    wrong = client.post("/area-clienti/profilo/chiudi", data={"current": "sbagliata"})
    assert wrong.status_code == 422

    closed = client.post("/area-clienti/profilo/chiudi", data={"current": "password123"})
    assert closed.status_code == 303 and closed.headers["Location"] == "/"
    db.session.expire_all()
    customer = db.session.get(Customer, mario.id)
    assert customer.closed_at is not None
    assert customer.email == closed_email(mario.id) and customer.name == "Cliente cancellato"
    assert customer.tax_code == ""
    assert (
        db.session.scalar(select(BillingProfile).where(BillingProfile.customer_id == mario.id))
        is None
    )
    assert not db.session.scalar(select(func.count(Service.id)).where(Service.auto_renew))
    saved = db.session.get(SavedCard, card.id)
    assert saved.removed_at is not None and saved.holder == ""
    assert ("DELETE", f"/api/tokens/{card.gateway_token}") in bank.transport.calls
    # What the law keeps stays, and the invoice is still a valid FatturaPA with its own copy.
    assert db.session.get(Payment, payment.id) is not None
    invoice = db.session.get(Invoice, invoice.id)
    assert invoice.customer == invoice_copy
    assert schema_errors(invoice.xml) == []
    assert b"RSSMRA85T10A562S" in invoice.xml
    # Every session ended; one final e-mail; nothing more to the old address from here.
    assert client.get("/area-clienti/").status_code in (302, 303)
    assert subjects(db, "mario@example.it") == ["Il tuo account PEC Shop è stato chiuso"]
    assert (
        client.post(
            "/accedi", data={"email": "mario@example.it", "password": "password123"}
        ).status_code
        == 422
    )


def test_the_address_can_register_again_as_a_new_customer(client, db, mario):
    client.post("/area-clienti/profilo/chiudi", data={"current": "password123"})
    again = client.post(
        "/registrati",
        data={
            "name": "Mario Rossi",
            "email": "mario@example.it",
            "tax_code": "RSSMRA85T10A562S",
            "password": "password456",
            "password2": "password456",
        },
    )
    assert again.status_code == 303
    new = db.session.scalar(select(Customer).where(Customer.email == "mario@example.it"))
    assert new is not None and new.id != mario.id and new.closed_at is None


def test_a_payment_under_way_blocks_the_closure(client, db, mario, catalogue, now):
    from tests.unit.backoffice_world import make_order

    order = make_order(mario, catalogue["products"]["PEC-STD"], "card", now)
    db.session.add(
        Payment(
            order_id=order.id,
            channel=PaymentChannel.HOSTED_PAGE,
            amount_cents=order.total_cents,
            idempotency_key="in-flight",
        )
    )
    db.session.commit()
    refused = client.post("/area-clienti/profilo/chiudi", data={"current": "password123"})
    assert refused.status_code == 409
    assert "Un pagamento è in corso" in html.unescape(refused.text)
    db.session.expire_all()
    assert db.session.get(Customer, mario.id).closed_at is None
    with pytest.raises(DomainError):
        close_account(mario.id, FIXED_NOW)


def test_a_second_closure_does_nothing(db, mario):
    assert close_account(mario.id, FIXED_NOW) == []
    db.session.commit()
    assert close_account(mario.id, FIXED_NOW) is None
    sent = select(func.count(OutboxEmail.id)).where(OutboxEmail.dedupe_key.like("account-closed:%"))
    assert db.session.scalar(sent) == 1


# --- back office ---------------------------------------------------------------------------------


def test_the_back_office_shows_and_sends_links_audited(app, db, create_customer, now):
    customer = create_customer(email="giulia@example.it", name="Giulia Bianchi")
    customer.email_confirmed_at = None
    db.session.commit()
    staff = make_staff(email="operatore@pecshop.test", role="operatore")
    client = app.test_client()
    staff_session(client, staff)
    page = client.get(f"/backoffice/clienti/{customer.id}")
    assert "non confermato" in page.text
    sent = client.post(f"/backoffice/clienti/{customer.id}/conferma-email")
    assert sent.status_code == 200 and "Link di conferma inviato" in sent.text
    reset = client.post(f"/backoffice/clienti/{customer.id}/reimposta-password")
    assert "Link per reimpostare la password inviato" in reset.text
    assert subjects(db, "giulia@example.it") == [
        "Conferma il tuo indirizzo e-mail",
        "Reimposta la tua password",
    ]
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.object_type == "customer")
    ).all()
    assert actions == [
        "link di conferma e-mail inviato",
        "link di reimpostazione password inviato",
    ]
    # The operator's page never shows a link or a token.
    assert "/password/nuova/" not in reset.text and "/conferma-email/" not in sent.text
