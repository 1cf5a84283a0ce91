"""FatturaPA 1.2 XML (FPR12 for private persons and businesses, FPA12 for public administrations).

Built with lxml's element builder from an issued document; the same document always gives the
same bytes. The element order follows Schema_del_file_xml_FatturaPA_v1.2.2.xsd.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from lxml import etree
from lxml.builder import ElementMaker

NS = "http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.2"
NSMAP = {
    "p": NS,
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
E = ElementMaker()  # the children of the root are unqualified (elementFormDefault)
NO_CODE = "0000000"  # no codice destinatario: the invoice waits in the buyer's cassetto fiscale
FOREIGN_CODE = "XXXXXXX"
SPLIT_PAYMENT_NOTE = "Scissione dei pagamenti art. 17-ter DPR 633/1972"


@dataclass(frozen=True)
class Seller:
    """CedentePrestatore, from the app config (SELLER_*)."""

    name: str
    vat_number: str
    tax_code: str
    address: str
    cap: str
    city: str
    province: str
    rea_office: str
    rea_number: str
    email: str
    phone: str
    iban: str
    regime: str = "RF01"


@dataclass(frozen=True)
class Related:
    """The invoice a credit note corrects (DatiFattureCollegate)."""

    number: str
    issued_on: date


@dataclass(frozen=True)
class Document:
    """What the XML says, read from an Invoice row (see services.document_of)."""

    kind: str  # TD01 / TD04
    number: str
    issued_on: date
    progressive: str  # ProgressivoInvio, also in the file name
    customer: dict
    lines: list[dict]
    net_cents: int
    vat_cents: int
    vat_rate_percent: int
    total_cents: int
    paid_cents: int
    split_payment: bool
    payment_method: str
    order_number: str
    related: Related | None = None


def amount(cents: int) -> str:
    """Cents as the XSD wants an amount: 1234 -> "12.34"."""
    return f"{Decimal(cents) / 100:.2f}"


def unit_amount(value: Decimal) -> str:
    """A unit amount with 2 decimals when exact, else up to 8 (Amount8DecimalType)."""
    two = value.quantize(Decimal("0.01"))
    return f"{two:.2f}" if two == value else f"{value.quantize(Decimal('0.00000001')):.8f}"


def is_public(customer: dict) -> bool:
    return customer.get("customer_type") == "public"


def file_name(seller: Seller, progressive: str) -> str:
    """IT<partita IVA>_<progressivo>.xml, as the SdI names files."""
    return f"IT{seller.vat_number}_{progressive}.xml"


def build(doc: Document, seller: Seller) -> bytes:
    """The FatturaPA XML of an issued document, UTF-8 with declaration."""
    version = "FPA12" if is_public(doc.customer) else "FPR12"
    root = etree.Element(f"{{{NS}}}FatturaElettronica", nsmap=NSMAP, versione=version)
    root.append(
        E.FatturaElettronicaHeader(
            _transmission(doc, seller, version),
            _seller(seller),
            _buyer(doc.customer),
        )
    )
    root.append(E.FatturaElettronicaBody(_general(doc), _goods(doc), _payment(doc, seller)))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _transmission(doc: Document, seller: Seller, version: str):
    c = doc.customer
    if is_public(c):
        code = c["sdi_code"]
    elif c.get("country", "IT") != "IT":
        code = FOREIGN_CODE
    else:
        code = c.get("sdi_code") or NO_CODE
    parts = [
        E.IdTrasmittente(E.IdPaese("IT"), E.IdCodice(seller.vat_number)),
        E.ProgressivoInvio(doc.progressive),
        E.FormatoTrasmissione(version),
        E.CodiceDestinatario(code),
    ]
    if code == NO_CODE and c.get("pec"):
        parts.append(E.PECDestinatario(c["pec"]))
    return E.DatiTrasmissione(*parts)


def _seller(seller: Seller):
    return E.CedentePrestatore(
        E.DatiAnagrafici(
            E.IdFiscaleIVA(E.IdPaese("IT"), E.IdCodice(seller.vat_number)),
            E.CodiceFiscale(seller.tax_code),
            E.Anagrafica(E.Denominazione(seller.name)),
            E.RegimeFiscale(seller.regime),
        ),
        E.Sede(
            E.Indirizzo(seller.address),
            E.CAP(seller.cap),
            E.Comune(seller.city),
            E.Provincia(seller.province),
            E.Nazione("IT"),
        ),
        E.IscrizioneREA(
            E.Ufficio(seller.rea_office),
            E.NumeroREA(seller.rea_number),
            E.StatoLiquidazione("LN"),
        ),
        E.Contatti(E.Telefono(seller.phone), E.Email(seller.email)),
    )


def _buyer(c: dict):
    country = c.get("country") or "IT"
    ids = []
    if c.get("vat_number"):
        ids.append(E.IdFiscaleIVA(E.IdPaese(country), E.IdCodice(c["vat_number"])))
    if c.get("tax_code"):
        ids.append(E.CodiceFiscale(c["tax_code"]))
    if c.get("customer_type") == "private":
        name = E.Anagrafica(E.Nome(c["first_name"]), E.Cognome(c["last_name"]))
    else:
        name = E.Anagrafica(E.Denominazione(c["company_name"]))
    address = [E.Indirizzo(c["address"])]
    # A foreign address has no Italian CAP: the SdI wants 00000 there.
    address.append(E.CAP(c["postal_code"] if country == "IT" else "00000"))
    address.append(E.Comune(c["city"]))
    if country == "IT" and c.get("province"):
        address.append(E.Provincia(c["province"]))
    address.append(E.Nazione(country))
    return E.CessionarioCommittente(E.DatiAnagrafici(*ids, name), E.Sede(*address))


def _general(doc: Document):
    causali = [E.Causale(f"Ordine {doc.order_number}")]
    if doc.split_payment:
        causali.append(E.Causale(SPLIT_PAYMENT_NOTE))
    parts = [
        E.DatiGeneraliDocumento(
            E.TipoDocumento(doc.kind),
            E.Divisa("EUR"),
            E.Data(doc.issued_on.isoformat()),
            E.Numero(doc.number),
            E.ImportoTotaleDocumento(amount(doc.total_cents)),
            *causali,
        )
    ]
    c = doc.customer
    if is_public(c) and (c.get("cig") or c.get("cup")):
        order = [E.IdDocumento(doc.order_number)]
        if c.get("cup"):
            order.append(E.CodiceCUP(c["cup"]))
        if c.get("cig"):
            order.append(E.CodiceCIG(c["cig"]))
        parts.append(E.DatiOrdineAcquisto(*order))
    if doc.related is not None:
        parts.append(
            E.DatiFattureCollegate(
                E.IdDocumento(doc.related.number), E.Data(doc.related.issued_on.isoformat())
            )
        )
    return E.DatiGenerali(*parts)


def _line(number: int, line: dict, rate: str):
    years = line["quantity"]
    parts = [
        E.NumeroLinea(str(number)),
        E.Descrizione(line["description"][:1000]),
        E.Quantita(f"{years:.2f}"),
    ]
    if line.get("unit"):
        parts.append(E.UnitaMisura(line["unit"]))
    if line.get("period_start") and line.get("period_end"):  # a renewal's period (issue 28)
        parts.append(E.DataInizioPeriodo(line["period_start"]))
        parts.append(E.DataFinePeriodo(line["period_end"]))
    parts += [
        E.PrezzoUnitario(amount(line["unit_price_cents"])),
    ]
    if line.get("discount_cents"):
        # The SdI checks PrezzoTotale = (PrezzoUnitario - sconto) x Quantita: a unit discount.
        per_unit = Decimal(line["discount_cents"]) / 100 / years
        parts.append(E.ScontoMaggiorazione(E.Tipo("SC"), E.Importo(unit_amount(per_unit))))
    parts += [E.PrezzoTotale(amount(line["net_cents"])), E.AliquotaIVA(rate)]
    return E.DettaglioLinee(*parts)


def _goods(doc: Document):
    rate = f"{doc.vat_rate_percent:.2f}"
    lines = [_line(i, line, rate) for i, line in enumerate(doc.lines, start=1)]
    summary = E.DatiRiepilogo(
        E.AliquotaIVA(rate),
        E.ImponibileImporto(amount(doc.net_cents)),
        E.Imposta(amount(doc.vat_cents)),
        E.EsigibilitaIVA("S" if doc.split_payment else "I"),
    )
    return E.DatiBeniServizi(*lines, summary)


def _payment(doc: Document, seller: Seller):
    detail = [E.ModalitaPagamento(doc.payment_method)]
    detail.append(E.ImportoPagamento(amount(doc.paid_cents)))
    if doc.payment_method == "MP05":
        detail.append(E.IBAN(seller.iban))
    return E.DatiPagamento(E.CondizioniPagamento("TP02"), E.DettaglioPagamento(*detail))
