"""The checks the SdI runs on a received file, with its error codes, and the test recipients.

Codes (Specifiche tecniche SdI, allegato "Elenco controlli"): 00001 file name, 00002 duplicate
file, 00003 size, 00200 not conforming to the FatturaPA format, 00311 recipient code not valid,
00404 duplicate invoice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree
from sqlalchemy import or_, select

from .extensions import db
from .messages import fatturapa_schema, schema_errors
from .models import ReceivedFile

MAX_BYTES = 5 * 1024 * 1024
#: IT + the transmitter's identifier (partita IVA or codice fiscale) + _ + 5-char progressivo.
NAME_RE = re.compile(r"IT[A-Z0-9]{11,16}_[A-Za-z0-9]{5}\.(xml|XML|xml\.p7m)")
CREDIT_NOTES = {"TD04", "TD08"}

#: The sandbox's test recipients (README "Codici destinatario di prova").
DELIVERED = "TESTRC1"  # a business reachable by its channel: RC
UNREACHABLE = "TESTMC1"  # a business whose channel does not answer: MC
CONSUMER = "0000000"  # no channel: MC, the invoice waits in the buyer's area at the Agenzia
FOREIGN = "XXXXXXX"  # a foreign buyer: MC
REJECTED = {"TESTNS1", "PANS00"}  # forces an NS 00311
PA_ACCEPTS = "PAEC01"  # RC, then the office's NE EC01
PA_REFUSES = "PAEC02"  # RC, then the office's NE EC02
PA_SILENT = "PADT15"  # RC, then no answer: DT after 15 days (any other office code too)
PA_UNREACHABLE = "PAAT10"  # MC, then AT after 10 days
NOT_DELIVERED = {UNREACHABLE, CONSUMER, FOREIGN, PA_UNREACHABLE}
DT_DAYS = 15
AT_DAYS = 10


@dataclass
class Verdict:
    """What the checks found: errors (an NS) or the invoice's data for the outcome."""

    errors: list[tuple[str, str]] = field(default_factory=list)
    seller: str | None = None
    year: int | None = None
    number: str | None = None
    kind: str | None = None
    recipient: str | None = None


def check(file_name: str, content: bytes, sha256: str, before_id: int) -> Verdict:
    """Run the checks in the SdI's order; the first failing group stops them."""
    if not NAME_RE.fullmatch(file_name):
        return Verdict([("00001", "Nome file non valido")])
    if _duplicate_file(file_name, sha256, before_id):
        return Verdict([("00002", "File duplicato")])
    if len(content) > MAX_BYTES:
        return Verdict([("00003", "Le dimensioni del file superano quelle ammesse")])
    try:
        document = etree.fromstring(
            content, etree.XMLParser(no_network=True, resolve_entities=False)
        )
    except etree.XMLSyntaxError as exc:
        return Verdict([("00200", f"File non conforme al formato: {exc}"[:255])])
    problems = schema_errors(fatturapa_schema(), document)
    if problems:
        return Verdict([("00200", f"File non conforme al formato: {problems[0]}"[:255])])
    verdict = _read(document)
    if verdict.recipient in REJECTED:
        verdict.errors.append(("00311", "1.1.4 <CodiceDestinatario> non valido"))
    elif _duplicate_invoice(verdict, before_id):
        verdict.errors.append(("00404", "Fattura duplicata"))
    return verdict


def _duplicate_file(file_name: str, sha256: str, before_id: int) -> bool:
    """A file with this name, or with these very bytes, was received before."""
    return (
        db.session.scalar(
            select(ReceivedFile.id).where(
                ReceivedFile.id < before_id,
                or_(ReceivedFile.file_name == file_name, ReceivedFile.sha256 == sha256),
            )
        )
        is not None
    )


def _read(document: etree._Element) -> Verdict:
    def text(path: str) -> str | None:
        found = document.find(path)
        return found.text.strip() if found is not None and found.text else None

    header = "FatturaElettronicaHeader/"
    general = "FatturaElettronicaBody/DatiGenerali/DatiGeneraliDocumento/"
    country = text(header + "CedentePrestatore/DatiAnagrafici/IdFiscaleIVA/IdPaese") or ""
    code = text(header + "CedentePrestatore/DatiAnagrafici/IdFiscaleIVA/IdCodice") or ""
    day = text(general + "Data") or ""
    return Verdict(
        seller=country + code,
        year=int(day[:4]) if day[:4].isascii() and day[:4].isdigit() else None,
        number=text(general + "Numero"),
        kind=text(general + "TipoDocumento"),
        recipient=text(header + "DatiTrasmissione/CodiceDestinatario"),
    )


def _duplicate_invoice(verdict: Verdict, before_id: int) -> bool:
    """00404: this seller already sent this number in this year, and it was not rejected.

    Exceptions, as the SdI's: credit notes are apart (neither checked nor counted), and files
    rejected earlier (NS) are ignored, so a corrected invoice keeps its number.
    """
    if verdict.kind in CREDIT_NOTES or verdict.number is None:
        return False
    found = db.session.scalar(
        select(ReceivedFile.id).where(
            ReceivedFile.id < before_id,
            ReceivedFile.seller == verdict.seller,
            ReceivedFile.year == verdict.year,
            ReceivedFile.number == verdict.number,
            ReceivedFile.kind.not_in(CREDIT_NOTES),
            ReceivedFile.outcome.in_(("RC", "MC")),
        )
    )
    return found is not None
