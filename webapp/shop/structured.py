"""The catalogue as schema.org data (JSON-LD): each product a `Product` with its `Offer`.

Search engines read it from the catalogue page's `<script type="application/ld+json">`; the
prices are the yearly prices net of VAT, as the page shows them, so the offer says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

from markupsafe import Markup

from webapp.shop.models import Product, ServiceKind

# What a price buys: a year of service, or a pack of time stamps.
_YEARLY = "ANN"


def product_offer(product: Product, price_cents: int, url: str) -> dict:
    """One product and its offer, in schema.org's vocabulary."""
    price = f"{price_cents // 100}.{price_cents % 100:02d}"
    specification = {
        "@type": "UnitPriceSpecification",
        "price": price,
        "priceCurrency": "EUR",
        "valueAddedTaxIncluded": False,
    }
    if product.kind is not ServiceKind.MARCA_TEMPORALE:
        specification["unitCode"] = _YEARLY
    return {
        "@type": "Product",
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "category": product.kind.label,
        "offers": {
            "@type": "Offer",
            "url": url,
            "price": price,
            "priceCurrency": "EUR",
            "availability": "https://schema.org/InStock",
            "priceSpecification": specification,
        },
    }


def catalogue_jsonld(
    products: Iterable[Product], prices: Mapping[int, int], url_of: Callable[[Product], str]
) -> Markup:
    """The catalogue as an ItemList of products, safe to put inside a `<script>` element."""
    items = [
        {"@type": "ListItem", "position": n, "item": product_offer(p, prices[p.id], url_of(p))}
        for n, p in enumerate(products, start=1)
    ]
    data = {"@context": "https://schema.org", "@type": "ItemList", "itemListElement": items}
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    # "</script>" or "<!--" in a name must not end the element: escape the angle brackets.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # nosec B704 # JSON with <, > and & escaped, inside a data block
