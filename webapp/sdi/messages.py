"""The SdI's notifications as the official XML (MessaggiTypes 1.1, vendored under schema/).

Each message carries an enveloped `ds:Signature`, as the schema requires. The real SdI signs
with its certificate; the sandbox signs with HMAC-SHA256 under its shared secret (the XML-DSig
`hmac-sha256` method), which the schema accepts just the same.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from lxml import etree
from lxml.builder import ElementMaker

NS = "http://www.fatturapa.gov.it/sdi/messaggi/v1.0"
DS = "http://www.w3.org/2000/09/xmldsig#"
SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
MESSAGES_XSD = SCHEMA_DIR / "MessaggiTypes_v1.1.xsd"
FATTURAPA_XSD = SCHEMA_DIR / "Schema_del_file_xml_FatturaPA_v1.2.2.xsd"
_XMLDSIG_URL = "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

ROOTS = {
    "RC": "RicevutaConsegna",
    "NS": "NotificaScarto",
    "MC": "NotificaMancataConsegna",
    "NE": "NotificaEsito",
    "AT": "AttestazioneTrasmissioneFattura",
    "DT": "NotificaDecorrenzaTermini",
}
E = ElementMaker()  # the children of the root are unqualified
D = ElementMaker(namespace=DS, nsmap={"ds": DS})


class _LocalSchemas(etree.Resolver):
    """The schemas import xmldsig (by URL or file name): answer with the vendored copy."""

    def resolve(self, url, pubid, context):
        if url == _XMLDSIG_URL or url.endswith("xmldsig-core-schema.xsd"):
            return self.resolve_filename(str(SCHEMA_DIR / "xmldsig-core-schema.xsd"), context)
        return None


def _load(path: Path) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities="internal")
    parser.resolvers.add(_LocalSchemas())
    return etree.XMLSchema(etree.parse(str(path), parser))


@lru_cache(maxsize=1)
def messages_schema() -> etree.XMLSchema:
    return _load(MESSAGES_XSD)


@lru_cache(maxsize=1)
def fatturapa_schema() -> etree.XMLSchema:
    return _load(FATTURAPA_XSD)


def schema_errors(schema: etree.XMLSchema, document: etree._Element) -> list[str]:
    if schema.validate(document):
        return []
    return [f"riga {e.line}: {e.message}" for e in schema.error_log]


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _recipient(code: str) -> etree._Element:
    return E.Destinatario(E.Codice(code), E.Descrizione(f"Destinatario {code}"))


def build(
    kind: str,
    *,
    sdi_id: str,
    file_name: str,
    message_id: str,
    received_at: datetime,
    now: datetime,
    secret: str,
    recipient: str | None = None,
    errors: list[tuple[str, str]] | None = None,
    esito: str | None = None,
    file_hash: str | None = None,
    reference: tuple[str, int] | None = None,
) -> bytes:
    """The signed XML of one notification (kind: RC NS MC NE AT DT)."""
    parts: list = [E.IdentificativoSdI(sdi_id), E.NomeFile(file_name[:50])]
    if kind == "NE":
        parts.append(_esito(sdi_id, esito or "EC01", reference))
    elif kind == "DT":
        parts.insert(1, _reference(reference or ("0", now.year)))
        parts.append(E.Descrizione("Decorsi 15 giorni senza esito del committente"))
    else:
        parts.append(E.DataOraRicezione(_when(received_at)))
    parts += _body(kind, now, recipient, errors)
    parts.append(E.MessageId(message_id))
    if kind == "AT":
        parts.append(E.HashFileOriginale(file_hash or ""))
    root = etree.Element(f"{{{NS}}}{ROOTS[kind]}", nsmap={"types": NS, "ds": DS}, versione="1.0")
    for part in parts:
        root.append(part)
    _sign(root, secret)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _reference(reference: tuple[str, int]) -> etree._Element:
    return E.RiferimentoFattura(
        E.NumeroFattura(reference[0][:20]), E.AnnoFattura(str(reference[1]))
    )


def _esito(sdi_id: str, esito: str, reference: tuple[str, int] | None) -> etree._Element:
    """The office's answer (EsitoCommittente) that the SdI forwards in its NE."""
    outcome = [E.IdentificativoSdI(sdi_id)]
    if reference:
        outcome.append(_reference(reference))
    outcome.append(E.Esito(esito))
    if esito == "EC02":
        outcome.append(E.Descrizione("Fattura rifiutata dall'amministrazione destinataria"))
    return E.EsitoCommittente(*outcome, versione="1.0")


def _body(kind: str, now: datetime, recipient: str | None, errors) -> list:
    if kind == "RC":
        return [E.DataOraConsegna(_when(now)), _recipient(recipient or "0000000")]
    if kind == "NS":
        listed = [
            E.Errore(E.Codice(code), E.Descrizione(text[:255])) for code, text in errors or []
        ]
        return [E.ListaErrori(*listed)]
    if kind == "MC":
        text = (
            "Il destinatario non è raggiungibile: fattura a disposizione"
            " nell'area riservata del cessionario/committente"
        )
        return [E.Descrizione(text)]
    if kind == "AT":
        return [_recipient(recipient or "000000")]
    return []


def _sign(root: etree._Element, secret: str) -> None:
    """Append an enveloped XML-DSig signature (HMAC-SHA256) over the message."""
    digest = base64.b64encode(hashlib.sha256(etree.tostring(root, method="c14n")).digest())
    signed_info = D.SignedInfo(
        D.CanonicalizationMethod(Algorithm=C14N),
        D.SignatureMethod(Algorithm=HMAC_SHA256),
        D.Reference(
            D.Transforms(D.Transform(Algorithm=ENVELOPED)),
            D.DigestMethod(Algorithm=SHA256),
            D.DigestValue(digest.decode()),
            URI="",
        ),
    )
    mac = hmac.new(secret.encode(), etree.tostring(signed_info, method="c14n"), hashlib.sha256)
    root.append(D.Signature(signed_info, D.SignatureValue(base64.b64encode(mac.digest()).decode())))


def validate(xml: bytes) -> list[str]:
    """The schema violations of a notification (empty: valid)."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return schema_errors(messages_schema(), etree.fromstring(xml, parser))
