"""What an issued document says, field by field: the buyer's name on the pages, a credit note's
share and line, the numbers, the FatturaPA elements of each kind of buyer (mutation round 3)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from lxml import etree
from sqlalchemy import select

from tests.unit.invoicing_helpers import (
    confirmed_order,
    give_billing,
    pay,
    refund,
    xml_tree,
)
from webapp.extensions import db
from webapp.invoicing import fatturapa
from webapp.invoicing.fatturapa import unit_amount
from webapp.invoicing.models import DocumentKind, Invoice, InvoiceCounter
from webapp.invoicing.numbering import next_number, progressive, take_numbers
from webapp.invoicing.sdi_states import SdiState, advance
from webapp.invoicing.services import (
    display_name,
    invoice_of_order,
    issue_credit_note,
    lines_of,
)
from webapp.invoicing.transmission import backoff
from webapp.invoicing.xsd import schema_errors
from webapp.payments.models import Refund, RefundKind, RefundStatus
from webapp.shop.models import ServiceKind
from webapp.shop.order_models import OrderKind, OrderStatus

B = "FatturaElettronicaBody"


@pytest.mark.parametrize(
    ("snapshot", "name"),
    [
        ({"customer_type": "private", "first_name": "Mario", "last_name": "Rossi"}, "Mario Rossi"),
        ({"customer_type": "private", "last_name": "Rossi"}, "Rossi"),
        ({"customer_type": "private", "first_name": "Mario"}, "Mario"),
        ({"customer_type": "private"}, ""),
        ({"customer_type": "business", "company_name": "Rossi S.r.l."}, "Rossi S.r.l."),
        ({"customer_type": "public", "first_name": "Mario", "company_name": "Comune"}, "Comune"),
        ({"customer_type": "business"}, ""),
        ({}, ""),
    ],
)
def test_the_buyers_name_on_the_pages(snapshot, name):
    assert display_name(snapshot) == name


# --- credit notes --------------------------------------------------------------------------------


@pytest.fixture
def products(catalogue):
    return catalogue["products"]


@pytest.fixture
def buyer(create_customer):
    return create_customer(billing=False)


def _note_of(row) -> Invoice:
    return db.session.scalar(select(Invoice).where(Invoice.refund_id == row.id))


def test_a_partial_credit_note_has_one_line_of_its_net(db, buyer, products, now):
    give_billing(buyer, "private")
    order = confirmed_order(buyer, products, now, skus=("CONS-1",))
    payment = pay(order, now)
    invoice = invoice_of_order(order.id)
    note = _note_of(refund(payment, 1000, now))
    assert note.lines == [
        {
            "description": f"Rimborso parziale dell'ordine {order.number}, "
            f"fattura n. {invoice.number_label}",
            "quantity": 1,
            "unit": "",
            "unit_price_cents": 820,
            "discount_cents": 0,
            "net_cents": 820,
        }
    ]
    line = xml_tree(note.xml).find(f"{B}/DatiBeniServizi/DettaglioLinee")
    assert (line.findtext("Quantita"), line.findtext("PrezzoUnitario")) == ("1.00", "8.20")
    assert line.find("UnitaMisura") is None and line.find("ScontoMaggiorazione") is None


def test_another_invoices_credit_notes_do_not_count(db, buyer, products, now):
    """Each invoice's partial notes are rounded on its own running total, not another's."""
    give_billing(buyer, "private")
    first = confirmed_order(buyer, products, now, skus=("CONS-1",))
    second = confirmed_order(buyer, products, now, skus=("CONS-1",))
    first_payment, second_payment = pay(first, now), pay(second, now)
    refund(first_payment, 1000, now)
    note = _note_of(refund(second_payment, 1000, now))
    assert (note.net_cents, note.vat_cents, note.paid_cents) == (820, 180, 1000)
    again = _note_of(refund(second_payment, 1000, now))
    assert (again.net_cents, again.vat_cents) == (819, 181)  # 2000 -> 1639 + 361 in all


def test_a_credit_note_keeps_the_rate_of_its_invoice(db, buyer, products, now):
    """An invoice issued at another rate (the config's of its day) is credited at that rate."""
    give_billing(buyer, "public")
    order = confirmed_order(buyer, products, now, skus=("CONS-1",))
    payment = pay(order, now)
    invoice = invoice_of_order(order.id)
    invoice.vat_rate_percent = 10
    note = _note_of(refund(payment, 1000, now))
    assert (note.net_cents, note.vat_cents, note.vat_rate_percent) == (1000, 100, 10)


# --- the FatturaPA XML, element by element -------------------------------------------------------

SELLER_DATA = fatturapa.Seller(
    name="Shop S.r.l.",
    vat_number="01234560157",
    tax_code="01234560157",
    address="Via Roma 1",
    cap="20100",
    city="Milano",
    province="MI",
    rea_office="MI",
    rea_number="1234567",
    email="fatture@shop.it",
    phone="0212345678",
    iban="IT60X0542811101000000123456",
)
FOREIGN_BUYER = {
    "customer_type": "private",
    "first_name": "Hans",
    "last_name": "Müller",
    "tax_code": "",
    "address": "Hauptstr. 5",
    "postal_code": "10115",
    "city": "Berlin",
    "province": "BE",
    "country": "DE",
    "sdi_code": "",
    "pec": "hans@example.de",
}
PUBLIC_BUYER = {
    "customer_type": "public",
    "company_name": "Comune di Esempio",
    "tax_code": "00743110157",
    "vat_number": "00743110157",
    "sdi_code": "UF1234",
    "cig": "Z1A2B3C4D5",
    "cup": "J12B34000010005",
    "address": "Piazza del Municipio 1",
    "postal_code": "00184",
    "city": "Roma",
    "province": "RM",
    "country": "IT",
    "pec": "comune@pec.it",
}
RENEWAL_LINES = [
    {
        "description": "Rinnovo PEC",
        "quantity": 3,
        "unit": "anni",
        "unit_price_cents": 1000,
        "discount_cents": 100,
        "net_cents": 2900,
        "period_start": "2026-12-01",
        "period_end": "2029-11-30",
    },
    {
        "description": "Servizio Firma",
        "quantity": 1,
        "unit": "",
        "unit_price_cents": 500,
        "discount_cents": 0,
        "net_cents": 500,
    },
]

TRANSMITTER = [
    "H/DatiTrasmissione/IdTrasmittente/IdPaese=IT",
    "H/DatiTrasmissione/IdTrasmittente/IdCodice=01234560157",
]
SELLER = [
    "H/CedentePrestatore/DatiAnagrafici/IdFiscaleIVA/IdPaese=IT",
    "H/CedentePrestatore/DatiAnagrafici/IdFiscaleIVA/IdCodice=01234560157",
    "H/CedentePrestatore/DatiAnagrafici/CodiceFiscale=01234560157",
    "H/CedentePrestatore/DatiAnagrafici/Anagrafica/Denominazione=Shop S.r.l.",
    "H/CedentePrestatore/DatiAnagrafici/RegimeFiscale=RF01",
    "H/CedentePrestatore/Sede/Indirizzo=Via Roma 1",
    "H/CedentePrestatore/Sede/CAP=20100",
    "H/CedentePrestatore/Sede/Comune=Milano",
    "H/CedentePrestatore/Sede/Provincia=MI",
    "H/CedentePrestatore/Sede/Nazione=IT",
    "H/CedentePrestatore/IscrizioneREA/Ufficio=MI",
    "H/CedentePrestatore/IscrizioneREA/NumeroREA=1234567",
    "H/CedentePrestatore/IscrizioneREA/StatoLiquidazione=LN",
    "H/CedentePrestatore/Contatti/Telefono=0212345678",
    "H/CedentePrestatore/Contatti/Email=fatture@shop.it",
]
FOREIGN_RENEWAL = [
    "versione=FPR12",
    *TRANSMITTER,
    "H/DatiTrasmissione/ProgressivoInvio=0000A",
    "H/DatiTrasmissione/FormatoTrasmissione=FPR12",
    "H/DatiTrasmissione/CodiceDestinatario=XXXXXXX",
    *SELLER,
    "H/CessionarioCommittente/DatiAnagrafici/Anagrafica/Nome=Hans",
    "H/CessionarioCommittente/DatiAnagrafici/Anagrafica/Cognome=Müller",
    "H/CessionarioCommittente/Sede/Indirizzo=Hauptstr. 5",
    "H/CessionarioCommittente/Sede/CAP=00000",
    "H/CessionarioCommittente/Sede/Comune=Berlin",
    "H/CessionarioCommittente/Sede/Nazione=DE",
    "B/DatiGenerali/DatiGeneraliDocumento/TipoDocumento=TD01",
    "B/DatiGenerali/DatiGeneraliDocumento/Divisa=EUR",
    "B/DatiGenerali/DatiGeneraliDocumento/Data=2026-11-25",
    "B/DatiGenerali/DatiGeneraliDocumento/Numero=2026/000007",
    "B/DatiGenerali/DatiGeneraliDocumento/ImportoTotaleDocumento=41.48",
    "B/DatiGenerali/DatiGeneraliDocumento/Causale=Ordine ORD-1",
    "B/DatiBeniServizi/DettaglioLinee/NumeroLinea=1",
    "B/DatiBeniServizi/DettaglioLinee/Descrizione=Rinnovo PEC",
    "B/DatiBeniServizi/DettaglioLinee/Quantita=3.00",
    "B/DatiBeniServizi/DettaglioLinee/UnitaMisura=anni",
    "B/DatiBeniServizi/DettaglioLinee/DataInizioPeriodo=2026-12-01",
    "B/DatiBeniServizi/DettaglioLinee/DataFinePeriodo=2029-11-30",
    "B/DatiBeniServizi/DettaglioLinee/PrezzoUnitario=10.00",
    "B/DatiBeniServizi/DettaglioLinee/ScontoMaggiorazione/Tipo=SC",
    "B/DatiBeniServizi/DettaglioLinee/ScontoMaggiorazione/Importo=0.33333333",
    "B/DatiBeniServizi/DettaglioLinee/PrezzoTotale=29.00",
    "B/DatiBeniServizi/DettaglioLinee/AliquotaIVA=22.00",
    "B/DatiBeniServizi/DettaglioLinee/NumeroLinea=2",
    "B/DatiBeniServizi/DettaglioLinee/Descrizione=Servizio Firma",
    "B/DatiBeniServizi/DettaglioLinee/Quantita=1.00",
    "B/DatiBeniServizi/DettaglioLinee/PrezzoUnitario=5.00",
    "B/DatiBeniServizi/DettaglioLinee/PrezzoTotale=5.00",
    "B/DatiBeniServizi/DettaglioLinee/AliquotaIVA=22.00",
    "B/DatiBeniServizi/DatiRiepilogo/AliquotaIVA=22.00",
    "B/DatiBeniServizi/DatiRiepilogo/ImponibileImporto=34.00",
    "B/DatiBeniServizi/DatiRiepilogo/Imposta=7.48",
    "B/DatiBeniServizi/DatiRiepilogo/EsigibilitaIVA=I",
    "B/DatiPagamento/CondizioniPagamento=TP02",
    "B/DatiPagamento/DettaglioPagamento/ModalitaPagamento=MP08",
    "B/DatiPagamento/DettaglioPagamento/ImportoPagamento=41.48",
]
PUBLIC_CREDIT_NOTE = [
    "versione=FPA12",
    *TRANSMITTER,
    "H/DatiTrasmissione/ProgressivoInvio=0000C",
    "H/DatiTrasmissione/FormatoTrasmissione=FPA12",
    "H/DatiTrasmissione/CodiceDestinatario=UF1234",
    *SELLER,
    "H/CessionarioCommittente/DatiAnagrafici/IdFiscaleIVA/IdPaese=IT",
    "H/CessionarioCommittente/DatiAnagrafici/IdFiscaleIVA/IdCodice=00743110157",
    "H/CessionarioCommittente/DatiAnagrafici/CodiceFiscale=00743110157",
    "H/CessionarioCommittente/DatiAnagrafici/Anagrafica/Denominazione=Comune di Esempio",
    "H/CessionarioCommittente/Sede/Indirizzo=Piazza del Municipio 1",
    "H/CessionarioCommittente/Sede/CAP=00184",
    "H/CessionarioCommittente/Sede/Comune=Roma",
    "H/CessionarioCommittente/Sede/Provincia=RM",
    "H/CessionarioCommittente/Sede/Nazione=IT",
    "B/DatiGenerali/DatiGeneraliDocumento/TipoDocumento=TD04",
    "B/DatiGenerali/DatiGeneraliDocumento/Divisa=EUR",
    "B/DatiGenerali/DatiGeneraliDocumento/Data=2026-12-03",
    "B/DatiGenerali/DatiGeneraliDocumento/Numero=2026/000009",
    "B/DatiGenerali/DatiGeneraliDocumento/ImportoTotaleDocumento=12.20",
    "B/DatiGenerali/DatiGeneraliDocumento/Causale=Ordine ORD-2",
    "B/DatiGenerali/DatiGeneraliDocumento/Causale=Scissione dei pagamenti art. 17-ter DPR 633/1972",
    "B/DatiGenerali/DatiOrdineAcquisto/IdDocumento=ORD-2",
    "B/DatiGenerali/DatiOrdineAcquisto/CodiceCUP=J12B34000010005",
    "B/DatiGenerali/DatiOrdineAcquisto/CodiceCIG=Z1A2B3C4D5",
    "B/DatiGenerali/DatiFattureCollegate/IdDocumento=2026/000007",
    "B/DatiGenerali/DatiFattureCollegate/Data=2026-11-25",
    "B/DatiBeniServizi/DettaglioLinee/NumeroLinea=1",
    "B/DatiBeniServizi/DettaglioLinee/Descrizione=Rimborso",
    "B/DatiBeniServizi/DettaglioLinee/Quantita=1.00",
    "B/DatiBeniServizi/DettaglioLinee/PrezzoUnitario=10.00",
    "B/DatiBeniServizi/DettaglioLinee/PrezzoTotale=10.00",
    "B/DatiBeniServizi/DettaglioLinee/AliquotaIVA=22.00",
    "B/DatiBeniServizi/DatiRiepilogo/AliquotaIVA=22.00",
    "B/DatiBeniServizi/DatiRiepilogo/ImponibileImporto=10.00",
    "B/DatiBeniServizi/DatiRiepilogo/Imposta=2.20",
    "B/DatiBeniServizi/DatiRiepilogo/EsigibilitaIVA=S",
    "B/DatiPagamento/CondizioniPagamento=TP02",
    "B/DatiPagamento/DettaglioPagamento/ModalitaPagamento=MP05",
    "B/DatiPagamento/DettaglioPagamento/ImportoPagamento=10.00",
    "B/DatiPagamento/DettaglioPagamento/IBAN=IT60X0542811101000000123456",
]


def _leaves(xml: bytes) -> list[str]:
    """Each element without children as "path=text", in document order (H/ header, B/ body)."""
    root = etree.fromstring(xml)
    out = [f"versione={root.get('versione')}"]
    for element in root.iter():
        if len(element) == 0:
            path = "/".join(a.tag for a in reversed(list(element.iterancestors())) if a is not root)
            path = path.replace("FatturaElettronicaHeader", "H").replace(
                "FatturaElettronicaBody", "B"
            )
            out.append(f"{path}/{element.tag}={element.text}")
    return out


def test_a_foreign_buyers_renewal_invoice():
    """XXXXXXX and no PEC, CAP 00000 and no province abroad, the period, a unit discount."""
    doc = fatturapa.Document(
        kind="TD01",
        number="2026/000007",
        issued_on=date(2026, 11, 25),
        progressive="0000A",
        customer=FOREIGN_BUYER,
        lines=RENEWAL_LINES,
        net_cents=3400,
        vat_cents=748,
        vat_rate_percent=22,
        total_cents=4148,
        paid_cents=4148,
        split_payment=False,
        payment_method="MP08",
        order_number="ORD-1",
    )
    xml = fatturapa.build(doc, SELLER_DATA)
    assert schema_errors(xml) == []
    assert _leaves(xml) == FOREIGN_RENEWAL
    # Indented, one element a line: the back office shows the XML as it is.
    assert b"\n  <FatturaElettronicaHeader>\n    <DatiTrasmissione>\n" in xml
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<p:FatturaElettronica ")


def test_a_public_administrations_credit_note_by_bank_transfer():
    """Its code, CUP and CIG, the invoice it corrects, split payment (S and the note), the IBAN."""
    doc = fatturapa.Document(
        kind="TD04",
        number="2026/000009",
        issued_on=date(2026, 12, 3),
        progressive="0000C",
        customer=PUBLIC_BUYER,
        lines=[
            {
                **RENEWAL_LINES[1],
                "description": "Rimborso",
                "unit_price_cents": 1000,
                "net_cents": 1000,
            }
        ],
        net_cents=1000,
        vat_cents=220,
        vat_rate_percent=22,
        total_cents=1220,
        paid_cents=1000,
        split_payment=True,
        payment_method="MP05",
        order_number="ORD-2",
        related=fatturapa.Related("2026/000007", date(2026, 11, 25)),
    )
    xml = fatturapa.build(doc, SELLER_DATA)
    assert schema_errors(xml) == []
    assert _leaves(xml) == PUBLIC_CREDIT_NOTE


# --- numbers -------------------------------------------------------------------------------------


def test_a_run_of_numbers_is_taken_at_once_per_year(db):
    assert list(take_numbers(2026, 3)) == [1, 2, 3]
    assert next_number(2026) == 4
    assert list(take_numbers(2027, 2)) == [1, 2]  # each year its own series
    assert list(take_numbers(2026, 2)) == [5, 6]
    counters = dict(db.session.execute(select(InvoiceCounter.year, InvoiceCounter.last)).all())
    assert counters == {2026: 6, 2027: 2}


def test_progressive_in_base_36():
    assert [progressive(n) for n in (1, 9, 10, 35, 37, 36**2 + 11, 36**4)] == [
        "00001",
        "00009",
        "0000A",
        "0000Z",
        "00011",
        "0010B",
        "10000",
    ]


def test_a_failed_or_empty_refund_gets_no_credit_note(db, buyer, products, now):
    give_billing(buyer, "private")
    order = confirmed_order(buyer, products, now, skus=("CONS-1",))
    payment = pay(order, now)
    failed = Refund(
        payment_id=payment.id,
        kind=RefundKind.OPERATOR,
        status=RefundStatus.FAILED,
        amount_cents=1000,
        reason="test",
        idempotency_key="failed-1",
    )
    empty = Refund(
        payment_id=payment.id,
        kind=RefundKind.OPERATOR,
        status=RefundStatus.SUCCEEDED,
        amount_cents=0,
        reason="test",
        idempotency_key="empty-1",
    )
    db.session.add_all([failed, empty])
    db.session.flush()
    assert issue_credit_note(failed, now) is None
    assert issue_credit_note(empty, now) is None
    kinds = db.session.scalars(select(Invoice.kind)).all()
    assert kinds == [DocumentKind.INVOICE]


def test_a_unit_discount_has_two_decimals_when_exact_else_eight():
    assert [unit_amount(Decimal(v)) for v in ("1", "0.5", "12.345", "0.1")] == [
        "1.00",
        "0.50",
        "12.34500000",
        "0.10",
    ]
    assert unit_amount(Decimal(1) / 3) == "0.33333333"
    assert unit_amount(Decimal(2) / 3) == "0.66666667"


def test_a_public_administrations_credit_note_is_split_payment_and_dated_its_day(
    db, buyer, products, now
):
    give_billing(buyer, "public")
    order = confirmed_order(buyer, products, now, skus=("CONS-1",))
    payment = pay(order, now)
    invoice = invoice_of_order(order.id)
    later = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
    note = _note_of(refund(payment, 1000, later))
    assert note.split_payment is True
    assert (note.issued_at, note.year, note.number) == (later, 2027, 1)
    assert note.related_invoice_id == invoice.id
    tree = xml_tree(note.xml)
    assert tree.findtext(f"{B}/DatiGenerali/DatiGeneraliDocumento/Data") == "2027-01-04"
    assert tree.findtext(f"{B}/DatiBeniServizi/DatiRiepilogo/EsigibilitaIVA") == "S"
    assert tree.findtext(f"{B}/DatiGenerali/DatiFattureCollegate/Data") == "2026-11-25"


def test_an_order_without_the_buyers_copy_takes_the_billing_data_now(db, buyer, products, now):
    """Orders confirmed before the copy at confirm existed have no `buyer`."""
    give_billing(buyer, "private")
    order = confirmed_order(buyer, products, now)
    order.buyer = None
    give_billing(buyer, "business_code")
    pay(order, now)
    invoice = invoice_of_order(order.id)
    assert invoice.customer["customer_type"] == "business"
    assert invoice.customer["company_name"] == "Rossi Consulting S.r.l."
    assert invoice.customer["sdi_code"] == "M5UXCR1"


def test_the_invoice_lines_say_what_was_bought_for_how_long(db, buyer, products, catalogue, now):
    give_billing(buyer, "private")
    code = catalogue["codes"]["BENVENUTO10"]
    one_year = confirmed_order(buyer, products, now, skus=("PEC-STD", "FIRMA-R"), code=code)
    three_years = confirmed_order(buyer, products, now, skus=("PEC-STD",), years=3)
    pay(one_year, now)
    pay(three_years, now)
    assert invoice_of_order(one_year.id).lines == [
        {
            "description": "Servizio PEC Standard (PEC), 1 anno, codice sconto BENVENUTO10",
            "quantity": 1,
            "unit": "anni",
            "unit_price_cents": 500,
            "discount_cents": 50,
            "net_cents": 450,
        },
        {
            "description": "Servizio Firma Digitale Remota (Firma Digitale), 1 anno, "
            "codice sconto BENVENUTO10",
            "quantity": 1,
            "unit": "anni",
            "unit_price_cents": 3990,
            "discount_cents": 399,
            "net_cents": 3591,
        },
    ]
    assert invoice_of_order(three_years.id).lines == [
        {
            "description": "Servizio PEC Standard (PEC), 3 anni",
            "quantity": 3,
            "unit": "anni",
            "unit_price_cents": 500,
            "discount_cents": 0,
            "net_cents": 1500,
        }
    ]


def _line(**values):
    base = dict(
        product_name="PEC Standard",
        kind=ServiceKind.PEC,
        years=2,
        yearly_price_cents=500,
        discount_cents=0,
        net_cents=1000,
        renews_from=None,
        renews_to=None,
    )
    return SimpleNamespace(**{**base, **values})


def test_a_renewal_line_carries_its_period_from_the_day_after_the_expiry():
    """Valid through its expiry day: the period starts the next day, in Italy's calendar."""
    renewal = _line(
        renews_from=datetime(2026, 12, 31, 23, 30, tzinfo=UTC),  # 1 January 00:30 in Rome
        renews_to=datetime(2028, 12, 31, 23, 30, tzinfo=UTC),
        discount_cents=100,
        net_cents=900,
    )
    (line,) = lines_of(OrderKind.PURCHASE, None, [renewal])
    assert line == {
        "description": "Rinnovo PEC Standard (PEC), 2 anni, dal 02/01/2027 al 01/01/2029",
        "quantity": 2,
        "unit": "anni",
        "unit_price_cents": 500,
        "discount_cents": 100,
        "net_cents": 900,
        "period_start": "2027-01-02",
        "period_end": "2029-01-01",
    }
    # A renewal order's line without a period, and a period's end missing: no dates.
    assert lines_of(OrderKind.RENEWAL, "X", [_line()])[0]["description"] == (
        "Rinnovo PEC Standard (PEC), 2 anni"
    )
    half = _line(renews_from=datetime(2026, 12, 1, tzinfo=UTC))
    assert "period_start" not in lines_of(OrderKind.PURCHASE, None, [half])[0]
    assert (
        "period_start"
        not in lines_of(
            OrderKind.PURCHASE, None, [_line(renews_to=datetime(2026, 12, 1, tzinfo=UTC))]
        )[0]
    )


# --- the SdI's story -----------------------------------------------------------------------------


def test_a_state_moves_only_to_a_later_step_of_the_story():
    assert advance(SdiState.SENT, SdiState.DELIVERED) is SdiState.DELIVERED
    assert advance(SdiState.TO_SEND, SdiState.ACCEPTED) is SdiState.ACCEPTED  # NE before its RC
    assert advance(SdiState.NOT_DELIVERED, SdiState.UNDELIVERABLE) is SdiState.UNDELIVERABLE
    assert advance(SdiState.DELIVERED, SdiState.SENT) is None  # a late receipt
    assert advance(SdiState.ACCEPTED, SdiState.DELIVERED) is None  # a late RC after the NE
    assert advance(SdiState.NOT_DELIVERED, SdiState.NOT_DELIVERED) is None  # a replayed MC
    assert advance(SdiState.REJECTED, SdiState.DELIVERED) is None


def test_the_wait_after_a_failed_call_doubles_up_to_an_hour():
    assert [backoff(n) for n in (0, 1, 2, 3, 6, 7, 8, 20)] == [
        timedelta(minutes=m) for m in (1, 1, 2, 4, 32, 60, 60, 60)
    ]


def test_the_refund_that_completes_the_payment_credits_what_is_left(db, buyer, products, now):
    give_billing(buyer, "private")
    order = confirmed_order(buyer, products, now, skus=("CONS-1",))
    payment = pay(order, now)
    invoice = invoice_of_order(order.id)
    first = _note_of(refund(payment, 1, now))  # a cent is credited too
    assert (first.net_cents, first.vat_cents, first.paid_cents) == (1, 0, 1)
    second = _note_of(refund(payment, 1000, now))
    last = _note_of(refund(payment, order.total_cents - 1001, now))
    notes = (first, second, last)
    assert sum(n.net_cents for n in notes) == invoice.net_cents
    assert sum(n.vat_cents for n in notes) == invoice.vat_cents
    assert (second.net_cents, second.vat_cents) == (819, 181)  # rounded on 1001 in all
    assert (last.net_cents, last.vat_cents) == (invoice.net_cents - 820, invoice.vat_cents - 181)


def test_a_document_without_the_buyers_address_waits_for_it(db, buyer, products, now):
    give_billing(buyer, "private")
    with_address = confirmed_order(buyer, products, now)
    without = confirmed_order(buyer, products, now)
    without.buyer = {**without.buyer, "address": ""}
    pay(with_address, now)
    pay(without, now)
    assert invoice_of_order(with_address.id).sdi_state is SdiState.TO_SEND
    assert invoice_of_order(without.id).sdi_state is SdiState.MISSING_DATA


def test_a_document_off_the_schema_is_logged_and_the_payment_stands(
    db, buyer, products, now, caplog
):
    give_billing(buyer, "private")
    order = confirmed_order(buyer, products, now)
    order.buyer = {**order.buyer, "postal_code": "2O121"}  # a letter O: not a CAP
    with caplog.at_level(logging.ERROR, logger="webapp.invoicing.services"):
        pay(order, now)
    invoice = invoice_of_order(order.id)
    assert invoice.xml and schema_errors(invoice.xml)
    assert order.status is OrderStatus.PAID
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith(f"invoice {invoice.id} does not match the FatturaPA schema") for m in messages
    )
    assert not any("could not be loaded" in m for m in messages)


def test_a_broken_schema_install_is_logged_and_the_payment_stands(
    db, buyer, products, now, caplog, monkeypatch
):
    from webapp.invoicing import services

    def broken(xml):
        raise OSError("no schema")

    monkeypatch.setattr(services, "schema_errors", broken)
    give_billing(buyer, "private")
    order = confirmed_order(buyer, products, now)
    with caplog.at_level(logging.ERROR, logger="webapp.invoicing.services"):
        pay(order, now)
    invoice = invoice_of_order(order.id)
    assert invoice.xml and order.status is OrderStatus.PAID
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"invoice {invoice.id}: the FatturaPA schema could not be loaded"]


def test_the_sellers_tax_regime_comes_from_the_config(app, db, buyer, products, now):
    app.config["SELLER_REGIME_FISCALE"] = "RF19"  # the flat-rate regime
    give_billing(buyer, "private")
    order = confirmed_order(buyer, products, now)
    pay(order, now)
    tree = xml_tree(invoice_of_order(order.id).xml)
    assert tree.findtext(
        "FatturaElettronicaHeader/CedentePrestatore/DatiAnagrafici/RegimeFiscale"
    ) == ("RF19")


def test_progressive_past_five_characters_is_refused():
    with pytest.raises(ValueError, match="^invoice id beyond the 5-character progressivo$"):
        progressive(36**5)


def test_a_buyer_copied_before_countries_were_asked_is_italian():
    """Snapshots older than the country field have no "country": an Italian address."""
    buyer = {k: v for k, v in PUBLIC_BUYER.items() if k != "country"}
    buyer.update(customer_type="business", sdi_code="M5UXCR1", company_name="Rossi S.r.l.")
    doc = fatturapa.Document(
        kind="TD01",
        number="2026/000010",
        issued_on=date(2026, 11, 25),
        progressive="0000D",
        customer=buyer,
        lines=[RENEWAL_LINES[1]],
        net_cents=500,
        vat_cents=110,
        vat_rate_percent=22,
        total_cents=610,
        paid_cents=610,
        split_payment=False,
        payment_method="MP08",
        order_number="ORD-3",
    )
    leaves = _leaves(fatturapa.build(doc, SELLER_DATA))
    assert "H/DatiTrasmissione/CodiceDestinatario=M5UXCR1" in leaves
    assert not [leaf for leaf in leaves if "DatiOrdineAcquisto" in leaf]  # a business: no CIG
    buyer_leaves = [leaf for leaf in leaves if leaf.startswith("H/CessionarioCommittente")]
    assert buyer_leaves == [
        "H/CessionarioCommittente/DatiAnagrafici/IdFiscaleIVA/IdPaese=IT",
        "H/CessionarioCommittente/DatiAnagrafici/IdFiscaleIVA/IdCodice=00743110157",
        "H/CessionarioCommittente/DatiAnagrafici/CodiceFiscale=00743110157",
        "H/CessionarioCommittente/DatiAnagrafici/Anagrafica/Denominazione=Rossi S.r.l.",
        "H/CessionarioCommittente/Sede/Indirizzo=Piazza del Municipio 1",
        "H/CessionarioCommittente/Sede/CAP=00184",
        "H/CessionarioCommittente/Sede/Comune=Roma",
        "H/CessionarioCommittente/Sede/Provincia=RM",
        "H/CessionarioCommittente/Sede/Nazione=IT",
    ]


@pytest.mark.parametrize(
    ("cig", "cup", "order"),
    [
        ("Z1A2B3C4D5", "", ["IdDocumento=ORD-4", "CodiceCIG=Z1A2B3C4D5"]),
        ("", "J12B34000010005", ["IdDocumento=ORD-4", "CodiceCUP=J12B34000010005"]),
        ("", "", []),
    ],
)
def test_a_public_offices_purchase_order_data_when_it_has_a_cig_or_a_cup(cig, cup, order):
    doc = fatturapa.Document(
        kind="TD01",
        number="2026/000011",
        issued_on=date(2026, 11, 25),
        progressive="0000E",
        customer={**PUBLIC_BUYER, "cig": cig, "cup": cup},
        lines=[RENEWAL_LINES[1]],
        net_cents=500,
        vat_cents=110,
        vat_rate_percent=22,
        total_cents=610,
        paid_cents=500,
        split_payment=True,
        payment_method="MP08",
        order_number="ORD-4",
    )
    xml = fatturapa.build(doc, SELLER_DATA)
    prefix = "B/DatiGenerali/DatiOrdineAcquisto/"
    found = [leaf.removeprefix(prefix) for leaf in _leaves(xml) if leaf.startswith(prefix)]
    assert found == order
    assert schema_errors(xml) == []


def test_a_line_keeps_1000_characters_and_its_dates_only_in_pairs():
    long_line = {**RENEWAL_LINES[1], "description": "x" * 1200, "period_start": "2026-12-01"}
    only_end = {**RENEWAL_LINES[1], "period_end": "2027-11-30"}
    doc = fatturapa.Document(
        kind="TD01",
        number="2026/000012",
        issued_on=date(2026, 11, 25),
        progressive="0000F",
        customer=PUBLIC_BUYER,
        lines=[long_line, only_end],
        net_cents=1000,
        vat_cents=220,
        vat_rate_percent=22,
        total_cents=1220,
        paid_cents=1000,
        split_payment=True,
        payment_method="MP08",
        order_number="ORD-5",
    )
    xml = fatturapa.build(doc, SELLER_DATA)
    assert schema_errors(xml) == []
    lines = etree.fromstring(xml).findall(f"{B}/DatiBeniServizi/DettaglioLinee")
    assert len(lines[0].findtext("Descrizione")) == 1000
    for line in lines:
        assert line.find("DataInizioPeriodo") is None and line.find("DataFinePeriodo") is None
