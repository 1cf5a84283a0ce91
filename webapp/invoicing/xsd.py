"""Validation of FatturaPA documents against the official XSD (vendored under schema/)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lxml import etree

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
SCHEMA_FILE = SCHEMA_DIR / "Schema_del_file_xml_FatturaPA_v1.2.2.xsd"
_XMLDSIG_URL = "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd"


class _LocalSchemas(etree.Resolver):
    """The FatturaPA schema imports xmldsig from w3.org: answer with the vendored copy."""

    def resolve(self, url, pubid, context):
        if url == _XMLDSIG_URL or url.endswith("/xmldsig-core-schema.xsd"):
            return self.resolve_filename(str(SCHEMA_DIR / "xmldsig-core-schema.xsd"), context)
        return None


@lru_cache(maxsize=1)
def fatturapa_schema() -> etree.XMLSchema:
    """The compiled FatturaPA 1.2.2 schema (compiled once per process)."""
    # Internal entities only (xmldsig declares its namespace as one); nothing from the network.
    parser = etree.XMLParser(no_network=True, resolve_entities="internal")
    parser.resolvers.add(_LocalSchemas())
    return etree.XMLSchema(etree.parse(str(SCHEMA_FILE), parser))


def schema_errors(xml: bytes) -> list[str]:
    """The schema violations of a document (an empty list: the document is valid)."""
    schema = fatturapa_schema()
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    document = etree.fromstring(xml, parser)
    if schema.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]
