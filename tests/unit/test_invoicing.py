"""Invoices and credit notes: FatturaPA XML valid against the official XSD for every kind of
buyer, totals equal to the order's to the cent, split payment, numbering, export."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from tests.unit.invoicing_helpers import (
    cents,
    confirmed_order,
    duplicate_payment,
    give_billing,
    pay,
    refund,
    text,
    xml_tree,
)
from webapp.extensions import db as _db
from webapp.invoicing.archive import export_zip
from webapp.invoicing.models import DocumentKind, Invoice, InvoiceCounter
from webapp.invoicing.numbering import next_number, progressive
from webapp.invoicing.services import invoice_of_order, issue_invoice
from webapp.invoicing.xsd import schema_errors
from webapp.shop.order_models import OrderStatus

H = "FatturaElettronicaHeader"
B = "FatturaElettronicaBody"


@pytest.fixture
def products(catalogue):
    return catalogue["products"]


@pytest.fixture
def buyer(create_customer):
    return create_customer(billing=False)


def _assert_totals_match(invoice: Invoice, order) -> None:
    tree = xml_tree(invoice.xml)
    general = f"{B}/DatiGenerali/DatiGeneraliDocumento"
    summary = f"{B}/DatiBeniServizi/DatiRiepilogo"
    assert cents(text(tree, f"{general}/ImportoTotaleDocumento")) == order.net_cents + (
        order.vat_cents
    )
    assert cents(text(tree, f"{summary}/ImponibileImporto")) == order.net_cents
    assert cents(text(tree, f"{summary}/Imposta")) == order.vat_cents
    paid = text(tree, f"{B}/DatiPagamento/DettaglioPagamento/ImportoPagamento")
    assert cents(paid) == order.total_cents
    line_totals = [
        cents(e.text)
        for e in tree.iterfind(f"{B}/DatiBeniServizi/DettaglioLinee")
        for e in e.iterfind("PrezzoTotale")
    ]
    assert sum(line_totals) == order.net_cents
    # The SdI's line check: (PrezzoUnitario - unit discount) x Quantita = PrezzoTotale (± 1 cent).
    for line in tree.iterfind(f"{B}/DatiBeniServizi/DettaglioLinee"):
        unit = Decimal(line.findtext("PrezzoUnitario"))
        discount = Decimal(line.findtext("ScontoMaggiorazione/Importo") or "0")
        quantity = Decimal(line.findtext("Quantita"))
        assert abs((unit - discount) * quantity - Decimal(line.findtext("PrezzoTotale"))) <= (
            Decimal("0.01")
        )
    assert (invoice.net_cents, invoice.vat_cents, invoice.paid_cents) == (
        order.net_cents,
        order.vat_cents,
        order.total_cents,
    )


@pytest.mark.parametrize(
    ("kind", "version", "code", "pec", "esigibilita"),
    [
        ("private", "FPR12", "0000000", None, "I"),
        ("business_code", "FPR12", "M5UXCR1", None, "I"),
        ("business_pec", "FPR12", "0000000", "fatture@pec.studiobianchi.it", "I"),
        ("public", "FPA12", "UF1234", None, "S"),
    ],
)
def test_each_kind_of_buyer_gets_a_valid_invoice(
    db, buyer, products, now, kind, version, code, pec, esigibilita
):
    give_billing(buyer, kind)
    order = confirmed_order(buyer, products, now, skus=("PEC-STD", "FIRMA-R"), years=2)
    payment = pay(order, now)
    db.session.commit()

    invoice = invoice_of_order(order.id)
    assert schema_errors(invoice.xml) == []
    tree = xml_tree(invoice.xml)
    assert tree.get("versione") == version
    assert text(tree, f"{H}/DatiTrasmissione/FormatoTrasmissione") == version
    assert text(tree, f"{H}/DatiTrasmissione/CodiceDestinatario") == code
    assert text(tree, f"{H}/DatiTrasmissione/PECDestinatario") == pec
    assert text(tree, f"{B}/DatiBeniServizi/DatiRiepilogo/EsigibilitaIVA") == esigibilita
    assert text(tree, f"{B}/DatiBeniServizi/DatiRiepilogo/AliquotaIVA") == "22.00"
    assert text(tree, f"{B}/DatiGenerali/DatiGeneraliDocumento/TipoDocumento") == "TD01"
    assert text(tree, f"{B}/DatiGenerali/DatiGeneraliDocumento/Numero") == "2026/000001"
    assert text(tree, f"{B}/DatiPagamento/DettaglioPagamento/ModalitaPagamento") == "MP08"
    assert invoice.file_name == f"IT01234560157_{progressive(invoice.id)}.xml"
    assert text(tree, f"{H}/DatiTrasmissione/ProgressivoInvio") == progressive(invoice.id)
    assert (invoice.payment_id, invoice.customer_id) == (payment.id, buyer.id)
    _assert_totals_match(invoice, order)


def test_public_administration_pays_the_net_only(db, buyer, products, now):
    give_billing(buyer, "public")
    order = confirmed_order(buyer, products, now, skus=("CONS-1",), years=1)
    assert order.split_payment
    assert (order.net_cents, order.vat_cents, order.total_cents) == (5000, 1100, 5000)
    payment = pay(order, now)
    assert payment.amount_cents == 5000
    invoice = invoice_of_order(order.id)
    tree = xml_tree(invoice.xml)
    assert text(tree, f"{B}/DatiGenerali/DatiGeneraliDocumento/ImportoTotaleDocumento") == ("61.00")
    assert text(tree, f"{B}/DatiPagamento/DettaglioPagamento/ImportoPagamento") == "50.00"
    assert text(tree, f"{B}/DatiGenerali/DatiOrdineAcquisto/CodiceCIG") == "Z1A2B3C4D5"
    assert text(tree, f"{B}/DatiGenerali/DatiOrdineAcquisto/CodiceCUP") == "J12B34000010005"
    assert text(tree, f"{B}/DatiGenerali/DatiOrdineAcquisto/IdDocumento") == order.number


def test_a_discount_is_shown_per_line_and_totals_still_match(db, buyer, products, catalogue, now):
    give_billing(buyer, "private")
    code = catalogue["codes"]["BENVENUTO10"]  # 10% on everything
    order = confirmed_order(
        buyer, products, now, skus=("PEC-PRO", "SPID-PF", "FIRMA-R"), years=3, code=code
    )
    assert order.discount_cents > 0
    pay(order, now)
    invoice = invoice_of_order(order.id)
    assert schema_errors(invoice.xml) == []
    tree = xml_tree(invoice.xml)
    assert tree.find(f"{B}/DatiBeniServizi/DettaglioLinee/ScontoMaggiorazione/Tipo").text == "SC"
    _assert_totals_match(invoice, order)


def test_bank_transfer_is_mp05_with_the_iban(db, buyer, products, now):
    give_billing(buyer, "business_code")
    order = confirmed_order(buyer, products, now, skus=("SPID-PF",), method="bank_transfer")
    pay(order, now)
    invoice = invoice_of_order(order.id)
    assert schema_errors(invoice.xml) == []
    tree = xml_tree(invoice.xml)
    assert text(tree, f"{B}/DatiPagamento/DettaglioPagamento/ModalitaPagamento") == "MP05"
    assert text(tree, f"{B}/DatiPagamento/DettaglioPagamento/IBAN") == (
        "IT60X0542811101000000123456"
    )


def test_a_replayed_order_paid_issues_nothing_more(db, buyer, products, now):
    give_billing(buyer, "private")
    order = confirmed_order(buyer, products, now)
    payment = pay(order, now)
    first = invoice_of_order(order.id)
    assert issue_invoice(order, payment, now) is first
    assert db.session.scalar(select(InvoiceCounter.last)) == 1


def test_the_invoice_keeps_the_billing_data_of_its_day(db, buyer, products, now):
    give_billing(buyer, "private")
    order = confirmed_order(buyer, products, now)
    pay(order, now)
    db.session.commit()
    give_billing(buyer, "business_code")  # edited later: for future documents only
    invoice = invoice_of_order(order.id)
    assert invoice.customer["customer_type"] == "private"
    assert invoice.customer["last_name"] == "Rossi"
    assert b"<Nome>Mario</Nome>" in invoice.xml


# --- credit notes --------------------------------------------------------------------------------


def test_a_full_refund_gets_a_credit_note_that_mirrors_the_invoice(db, buyer, products, now):
    give_billing(buyer, "business_pec")
    order = confirmed_order(buyer, products, now, skus=("PEC-STD", "SPID-PF"), years=1)
    payment = pay(order, now)
    invoice = invoice_of_order(order.id)
    later = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    row = refund(payment, order.total_cents, later)

    note = db.session.scalar(select(Invoice).where(Invoice.refund_id == row.id))
    assert note.kind is DocumentKind.CREDIT_NOTE
    assert note.number_label == "2026/000002"  # one series for invoices and credit notes
    assert schema_errors(note.xml) == []
    tree = xml_tree(note.xml)
    assert text(tree, f"{B}/DatiGenerali/DatiGeneraliDocumento/TipoDocumento") == "TD04"
    assert text(tree, f"{B}/DatiGenerali/DatiFattureCollegate/IdDocumento") == "2026/000001"
    assert text(tree, f"{B}/DatiGenerali/DatiFattureCollegate/Data") == "2026-11-25"
    assert (note.net_cents, note.vat_cents, note.total_cents) == (
        invoice.net_cents,
        invoice.vat_cents,
        invoice.total_cents,
    )
    assert note.lines == invoice.lines
    # A replayed signal: the same credit note.
    from webapp.payments.events import payment_refunded

    payment_refunded.send(row, payment=payment, now=later)
    assert db.session.scalar(select(InvoiceCounter.last)) == 2


@pytest.mark.parametrize("kind", ["private", "public"])
def test_a_partial_refund_credits_its_share(db, buyer, products, now, kind):
    give_billing(buyer, kind)
    order = confirmed_order(buyer, products, now, skus=("CONS-1",))
    payment = pay(order, now)
    row = refund(payment, 1000, now)
    note = db.session.scalar(select(Invoice).where(Invoice.refund_id == row.id))
    assert schema_errors(note.xml) == []
    assert note.paid_cents == 1000
    if kind == "public":  # the administration paid the net: € 10 net, VAT on top
        assert (note.net_cents, note.vat_cents) == (1000, 220)
    else:  # € 10 VAT included
        assert (note.net_cents, note.vat_cents) == (820, 180)
    tree = xml_tree(note.xml)
    assert cents(text(tree, f"{B}/DatiBeniServizi/DatiRiepilogo/ImponibileImporto")) == (
        note.net_cents
    )


def test_a_refunded_duplicate_capture_gets_no_credit_note(db, buyer, products, now):
    give_billing(buyer, "private")
    order = confirmed_order(buyer, products, now)
    pay(order, now)
    duplicate = duplicate_payment(order, now)
    refund(duplicate, duplicate.amount_cents, now)
    kinds = db.session.scalars(select(Invoice.kind)).all()
    assert kinds == [DocumentKind.INVOICE]


# --- numbering -----------------------------------------------------------------------------------


def test_numbers_follow_each_other_and_a_rollback_gives_its_number_back(db, buyer, products, now):
    give_billing(buyer, "private")
    assert next_number(2026) == 1
    db.session.rollback()
    orders = [confirmed_order(buyer, products, now) for _ in range(3)]
    for order in orders:
        pay(order, now)
        db.session.commit()
    doomed = confirmed_order(buyer, products, now)
    pay(doomed, now)
    db.session.rollback()  # the payment's transaction failed: its invoice number too
    last = confirmed_order(buyer, products, now)
    pay(last, now)
    db.session.commit()
    numbers = db.session.scalars(select(Invoice.number).order_by(Invoice.number)).all()
    assert numbers == [1, 2, 3, 4]
    db.session.expire_all()
    assert doomed.status is OrderStatus.PENDING_PAYMENT


def test_the_series_restarts_on_new_years_day_in_italy(db, buyer, products, now):
    give_billing(buyer, "private")
    december = confirmed_order(buyer, products, now)
    pay(december, datetime(2026, 12, 31, 22, 30, tzinfo=UTC))  # 23:30 in Rome: still 2026
    january = confirmed_order(buyer, products, now)
    pay(january, datetime(2026, 12, 31, 23, 30, tzinfo=UTC))  # 00:30 of 1 January in Rome
    assert invoice_of_order(december.id).number_label == "2026/000001"
    assert invoice_of_order(january.id).number_label == "2027/000001"
    assert b"<Data>2027-01-01</Data>" in invoice_of_order(january.id).xml


def test_progressive_is_five_alphanumeric_characters():
    assert progressive(1) == "00001"
    assert progressive(36) == "00010"
    assert progressive(36**5 - 1) == "ZZZZZ"
    with pytest.raises(ValueError):
        progressive(36**5)


# --- renewals ------------------------------------------------------------------------------------


def test_a_renewal_gets_an_invoice_and_a_public_administration_pays_it_net(
    app, db, dummy_customer, catalogue
):
    from tests.unit.renewal_fakes import FakeGateway, make_card, make_service
    from webapp.renewals.engine import run_renewals

    fake = FakeGateway()
    app.extensions["gateway"] = fake
    give_billing(dummy_customer, "public")
    pec = catalogue["products"]["PEC-STD"]
    expires = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
    make_service(dummy_customer, pec, expires_at=expires, card=make_card(dummy_customer))
    db.session.commit()

    run_renewals(datetime(2027, 1, 5, 10, 0, tzinfo=UTC))

    invoice = db.session.scalar(select(Invoice))
    assert invoice is not None and invoice.kind is DocumentKind.INVOICE
    assert [c.amount_cents for c in fake.succeeded] == [pec.yearly_price_cents]
    assert (invoice.net_cents, invoice.paid_cents) == (500, 500)
    assert invoice.vat_cents == 110 and invoice.split_payment
    assert schema_errors(invoice.xml) == []
    assert "Rinnovo" in invoice.lines[0]["description"]
    assert invoice.number_label == "2027/000001"


# --- export --------------------------------------------------------------------------------------


def test_export_zips_the_xml_of_the_period(app, db, buyer, products, now):
    give_billing(buyer, "private")
    inside = confirmed_order(buyer, products, now)
    pay(inside, now)
    outside = confirmed_order(buyer, products, now)
    pay(outside, datetime(2027, 2, 1, 9, 0, tzinfo=UTC))
    db.session.commit()

    archive = zipfile.ZipFile(io.BytesIO(export_zip(date(2026, 1, 1), date(2026, 12, 31))))
    first = invoice_of_order(inside.id)
    assert archive.namelist() == [first.file_name]
    assert archive.read(first.file_name) == first.xml

    out = app.instance_path + "/test-export.zip"
    result = app.test_cli_runner().invoke(
        args=["invoices", "export", "--from", "2026-01-01", "--to", "2027-12-31", "--out", out]
    )
    assert result.exit_code == 0, result.output
    assert "2 documents exported" in result.output
    assert len(zipfile.ZipFile(out).namelist()) == 2


def test_quote_with_split_payment_pays_the_net_only():
    from webapp.renewals.services import RenewalPrice
    from webapp.shop.pricing import DiscountTerms, PriceLine, quote

    lines = [PriceLine(1, 1000, 3), PriceLine(2, 333, 1)]
    normal = quote(lines, DiscountTerms(percent=10))
    split = quote(lines, DiscountTerms(percent=10), split_payment=True)
    assert (split.net_cents, split.vat_cents) == (normal.net_cents, normal.vat_cents)
    assert split.total_cents == split.net_cents == 3000
    assert split.document_total_cents == normal.total_cents == 3000 + 660
    assert RenewalPrice(1, 500, 110, split_payment=True).total_cents == 500
    assert RenewalPrice(1, 500, 110).total_cents == 610
    assert "scissione" in RenewalPrice(1, 500, 110, split_payment=True).vat_note


# --- the archive: a customer's documents, the legal copy, the period -----------------------------


def _issued(buyer, products, when) -> Invoice:
    order = confirmed_order(buyer, products, when)
    pay(order, when)
    _db.session.commit()
    return invoice_of_order(order.id)


def test_a_customers_documents_newest_first_and_nobody_elses(
    db, buyer, create_customer, products, now
):
    from webapp.errors import NotFound
    from webapp.invoicing.archive import get_invoice, list_invoices

    give_billing(buyer, "private")
    other = create_customer(email="altro@example.it")
    old, new, same_time = (
        _issued(buyer, products, when) for when in (now, now.replace(hour=12), now)
    )
    theirs = _issued(other, products, now)
    assert [i.id for i in list_invoices(buyer.id)] == [new.id, same_time.id, old.id]
    assert get_invoice(old.id, buyer.id) is old
    for invoice_id in (theirs.id, theirs.id + 100):
        with pytest.raises(NotFound, match=r"^Documento non trovato\.$"):
            get_invoice(invoice_id, buyer.id)


def test_the_legal_copy_is_the_latest_file_the_sdi_took(db, buyer, products, now):
    from webapp.invoicing.archive import legal_copy
    from webapp.invoicing.sdi_states import SdiState
    from webapp.invoicing.transmission import move, open_attempt

    give_billing(buyer, "private")
    invoice = _issued(buyer, products, now)
    assert legal_copy(invoice) == (invoice.file_name, invoice.xml)
    states = (SdiState.DELIVERED, SdiState.NOT_DELIVERED, SdiState.REJECTED, None)
    made = []
    for state in states:
        attempt = open_attempt(invoice, now)
        if state is not None:
            move(attempt, state)
        made.append(attempt)
    assert legal_copy(invoice) == (made[1].file_name, made[1].xml)
    assert made[1].xml != invoice.xml and made[1].file_name != made[0].file_name


def test_the_period_is_counted_in_italian_days_and_listed_in_number_order(app, db, buyer, products):
    from webapp.invoicing.archive import documents_between

    give_billing(buyer, "private")
    # 1 December 2026 begins at 23:00 UTC on 30 November (CET, UTC+1)
    last_of_november = _issued(buyer, products, datetime(2026, 11, 30, 22, 59, 59, tzinfo=UTC))
    first_of_december = _issued(buyer, products, datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    last_of_december = _issued(buyer, products, datetime(2026, 12, 31, 22, 59, 59, tzinfo=UTC))
    new_year = _issued(buyer, products, datetime(2026, 12, 31, 23, 0, tzinfo=UTC))
    assert (new_year.year, new_year.number) == (2027, 1)
    november, december = date(2026, 11, 30), date(2026, 12, 1)
    assert documents_between(november, november) == [last_of_november]
    assert documents_between(december, december) == [first_of_december]
    assert documents_between(date(2026, 12, 31), date(2027, 1, 1)) == [last_of_december, new_year]
    # the number's order, not the id's: the series of 2026 before 2027's
    last_of_november.number, first_of_december.number = 90, 91
    db.session.flush()
    last_of_november.number = 92
    db.session.flush()
    everything = documents_between(november, date(2027, 1, 1))
    assert everything == [last_of_december, first_of_december, last_of_november, new_year]


def test_the_export_dates_each_file_on_its_italian_day_and_time(db, buyer, products):
    give_billing(buyer, "private")
    summer = _issued(buyer, products, datetime(2026, 7, 1, 22, 30, 5, tzinfo=UTC))  # CEST
    winter = _issued(buyer, products, datetime(2026, 12, 31, 23, 30, 7, tzinfo=UTC))  # CET
    archive = zipfile.ZipFile(io.BytesIO(export_zip(date(2026, 7, 2), date(2027, 1, 1))))
    infos = archive.infolist()
    assert [i.filename for i in infos] == [summer.file_name, winter.file_name]
    assert [i.date_time for i in infos] == [(2026, 7, 2, 0, 30, 4), (2027, 1, 1, 0, 30, 6)]
    assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}
    assert archive.read(winter.file_name) == winter.xml
