"""A first walk through cart and checkout with the test client."""

import re


def test_catalogue_to_order(client, auth, dummy_customer, catalogue, db):
    products = catalogue["products"]
    page = client.get("/")
    assert page.status_code == 200
    assert "PEC Standard" in page.text
    client.post(f"/carrello/aggiungi/{products['PEC-STD'].id}")
    client.post(f"/carrello/aggiungi/{products['FIRMA-R'].id}")
    auth.login()
    page = client.get("/checkout")
    assert page.status_code == 200, page.text
    r = client.post("/checkout/metodo", data={"payment_method": "card"}, headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert "Rinnovo automatico attivato" in r.text
    assert "Il rinnovo automatico non è disponibile per Firma Digitale" in r.text
    token = re.search(r'name="checkout_token" value="([^"]+)"', client.get("/checkout").text).group(1)
    r = client.post("/checkout/conferma", data={"checkout_token": token, "terms": "1"})
    assert r.status_code == 303, r.text
    order_page = client.get(r.headers["Location"])
    assert "Paga ora su server sicuro" in order_page.text
    # 5,00 + 39,90 = 44,90 net; VAT 9,88; total 54,78
    assert "€ 54,78" in order_page.text
