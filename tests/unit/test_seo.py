"""Issue 26: a meta description on every page and the catalogue as schema.org Product/Offer."""

from __future__ import annotations

import html
import json
import re

from tests.unit.helpers import add, login
from webapp.shop.structured import catalogue_jsonld

DESCRIPTION = re.compile(r'<meta name="description" content="([^"]*)">')
JSONLD = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)


def description(page: str) -> str:
    [found] = DESCRIPTION.findall(page)
    return html.unescape(found)


def test_every_public_page_has_its_own_description(client, catalogue, dummy_customer):
    paths = ["/", "/carrello", "/sconti", "/condizioni-generali", "/privacy", "/cookie"]
    paths += ["/accedi", "/registrati", "/password-dimenticata"]
    seen = {path: description(client.get(path).text) for path in paths}
    add(client, catalogue["products"]["PEC-STD"])
    login(client)
    seen["/checkout"] = description(client.get("/checkout").text)
    seen["/area-clienti/ordini"] = description(client.get("/area-clienti/ordini").text)
    for path, text in seen.items():
        assert 50 <= len(text) <= 200, (path, text)  # what a search result shows
    assert len(set(seen.values())) == len(seen), seen  # one per page, none shared
    assert seen["/area-clienti/ordini"].startswith("Ordini e ricevute · PEC Shop")


def test_the_catalogue_is_a_list_of_products_with_their_offers(client, catalogue):
    page = client.get("/").text
    [block] = JSONLD.findall(page)
    data = json.loads(block)
    assert data["@context"] == "https://schema.org"
    assert data["@type"] == "ItemList"
    items = {i["item"]["sku"]: i["item"] for i in data["itemListElement"]}
    assert set(items) == set(catalogue["products"])
    pec = items["PEC-STD"]
    assert pec["@type"] == "Product"
    assert pec["name"] == "PEC Standard"
    assert pec["offers"]["@type"] == "Offer"
    assert pec["offers"]["price"] == "5.00"  # € 5,00 a year, as the page shows it
    assert pec["offers"]["priceCurrency"] == "EUR"
    assert pec["offers"]["priceSpecification"]["unitCode"] == "ANN"
    assert pec["offers"]["priceSpecification"]["valueAddedTaxIncluded"] is False
    assert pec["offers"]["url"].endswith("/#product-pec-std")
    # Time stamps are a pack, not a year: no yearly unit, and the page says "+ IVA" alone.
    assert "unitCode" not in items["MARCHE-50"]["offers"]["priceSpecification"]
    marche = page[page.index('id="product-marche-50"') :]
    assert "/ anno" not in marche[: marche.index("</article>")]


def test_a_name_cannot_close_the_script_element(catalogue, app):
    product = catalogue["products"]["PEC-STD"]
    product.name = "</script><script>alert(1)</script> & <!--"
    text = str(catalogue_jsonld([product], {product.id: 1234}, lambda p: "https://x/"))
    assert "<" not in text and ">" not in text
    item = json.loads(text)["itemListElement"][0]["item"]
    assert item["name"] == product.name  # the escapes are JSON's: the name reads the same
    assert item["offers"]["price"] == "12.34"
