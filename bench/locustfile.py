"""Virtual customers for `make loadtest` (Locust): register, fill the cart, check out and pay.

Each virtual customer registers (its own e-mail, tagged with the run's id), gives its billing
data, then buys again and again: the first order on the bank's hosted page with the frictionless
test card 4242 4242 4242 4242 (the card is saved), every later one with the saved card on the
payment portal ("Procedi"). Requests are named by step, so the report reads per step. After the
run, bench/loadtest_check.py checks the money (scripts/loadtest.sh runs both).

Settings (environment): LOAD_RUN_ID tags the customers (`load-<run>-<n>@example.it`);
SANDBOX_TOKEN lets a customer read its confirmation e-mail through the sandbox API (make run and
make cluster turn the sandbox on in development and keep its token in instance/).
"""

from __future__ import annotations

import html
import itertools
import os
import re
from urllib.parse import urlsplit

from locust import HttpUser, between, task

RUN_ID = os.environ.get("LOAD_RUN_ID", "run")
SANDBOX_TOKEN = os.environ.get("SANDBOX_TOKEN", "")  # to read the confirmation e-mail
PASSWORD = "carico-12345"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
HX_CSRF_RE = re.compile(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'')
PRODUCT_RE = re.compile(r"/carrello/aggiungi/(\d+)")
_numbers = itertools.count(1)


def _hidden(text: str, name: str) -> str | None:
    found = re.search(rf'name="{name}" value="([^"]*)"', text)
    return html.unescape(found.group(1)) if found else None


class Customer(HttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.csrf = ""
        self.email = f"load-{RUN_ID}-{next(_numbers)}@example.it"
        self.has_card = False
        self.products: list[str] = []
        self._register()

    # --- helpers
    def _get(self, path: str, name: str):
        response = self.client.get(path, name=name)
        found = HX_CSRF_RE.search(response.text) or CSRF_RE.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def _post(self, path: str, name: str, data: dict | None = None, htmx: bool = False, **kw):
        headers = {"X-CSRFToken": self.csrf, **({"HX-Request": "true"} if htmx else {})}
        return self.client.post(
            path,
            data={"csrf_token": self.csrf, **(data or {})},
            headers=headers,
            name=name,
            allow_redirects=False,
            **kw,
        )

    def _register(self) -> None:
        self._get("/registrati", "register: page")
        form = {
            "name": "Cliente Carico",
            "email": self.email,
            "tax_code": "RSSMRA85T10A562S",
            "password": PASSWORD,
            "password2": PASSWORD,
            "privacy": "y",
        }
        self._post("/registrati", "register", form)
        self._confirm_address()
        self._get("/area-clienti/fatturazione", "billing: page")
        billing = {
            "customer_type": "private",
            "first_name": "Cliente",
            "last_name": "Carico",
            "tax_code": "RSSMRA85T10A562S",
            "address": "Via Roma 1",
            "postal_code": "20121",
            "city": "Milano",
            "province": "MI",
            "country": "IT",
        }
        self._post("/area-clienti/fatturazione", "billing", billing)
        self.products = PRODUCT_RE.findall(self._get("/", "catalogue").text)[:4]

    def _confirm_address(self) -> None:
        """Orders need a confirmed address: the link of the e-mail, read through the sandbox."""
        mails = self.client.get(
            "/sandbox/email",
            params={"to": self.email},
            headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
            name="sandbox: e-mails",
        )
        links = [
            link
            for mail in (mails.json().get("emails", []) if mails.ok else [])
            for link in mail["links"]
            if "/conferma-email/" in link
        ]
        if links:
            self.client.get(links[-1], name="register: confirm address")

    # --- the journey
    @task
    def buy(self) -> None:
        if not self.products:
            return
        product = self.products[next(_numbers) % len(self.products)]
        self._post(f"/carrello/aggiungi/{product}", "cart: add", htmx=True)
        self._post("/checkout/metodo", "checkout: card", {"payment_method": "card"}, htmx=True)
        token = _hidden(self._get("/checkout", "checkout: page").text, "checkout_token")
        confirmed = self._post(
            "/checkout/conferma", "checkout: confirm", {"checkout_token": token, "terms": "1"}
        )
        if confirmed.status_code != 303:
            return
        order_path = urlsplit(confirmed.headers["Location"]).path
        if self.has_card:
            self._pay_with_saved_card(order_path.rsplit("/", 1)[1])
        else:
            self._pay_on_bank_page(order_path)

    def _pay_with_saved_card(self, order_id: str) -> None:
        page = self._get(f"/portale-pagamenti/ordini/{order_id}", "portal: page").text
        card = re.search(r'name="choice" value="(\d+)"', page)
        if card is None:
            return
        form = {
            "choice": card.group(1),
            "attempt": _hidden(page, "attempt"),
            "amount_cents": _hidden(page, "amount_cents"),
        }
        self._post(f"/portale-pagamenti/ordini/{order_id}/procedi", "portal: Procedi", form)

    def _pay_on_bank_page(self, order_path: str) -> None:
        to_bank = self._post(f"{order_path}/paga", "pay now: Paga ora su server sicuro")
        if to_bank.status_code != 303:
            return
        parts = urlsplit(to_bank.headers["Location"])
        page = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        bank = self.client  # the bank's pages: plain forms, their own CSRF token
        token = CSRF_RE.search(bank.get(page, name="bank: card page").text)
        csrf = token.group(1) if token else ""
        card = {
            "csrf_token": csrf,
            "holder": "Cliente Carico",
            "number": "4242424242424242",
            "exp_month": "12",
            "exp_year": "2030",
            "cvv": "123",
        }
        bank.post(page, data=card, name="bank: Procedi", allow_redirects=False)
        confirm = {"csrf_token": csrf}
        bank.post(page + "/confirm", data=confirm, name="bank: Invio dati", allow_redirects=False)
        result = bank.get(page + "/result", name="bank: result").text
        back = re.search(r'id="return-link"[^>]*href="([^"]+)"', result)
        if back is None:
            return
        returned = self.client.get(
            html.unescape(back.group(1)), name="bank: torna al negozio", allow_redirects=False
        )
        self.has_card = returned.status_code == 303
