"""How the browser tests reach a deployment besides the browser: its pages over HTTP and the
sandbox APIs of the shop and of the bank (webapp.sandbox, webapp.bank.sandbox).

The same for a staging (make qa BASE_URL=… BANK_URL=… SANDBOX_TOKEN=…) and for the servers
`make test` starts: no test opens a database file or a mail folder. Customers are created in
one place, `register_customer`, as a person would, through "Registrati".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests

DEMO = ("demo@pecshop.test", "demo12345", "Mario Rossi")
TAX_CODE = "RSSMRA85T10A562S"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
HTTP_TIMEOUT = 60  # a renewal pass answers after the bank has been asked


class SandboxError(AssertionError):
    """The sandbox refused a call: its status and Italian message say why."""


@dataclass(frozen=True)
class Sandbox:
    """The sandbox APIs of the shop and the bank, with the deployment's bearer token."""

    shop_url: str
    bank_url: str
    token: str

    def _call(self, method: str, url: str, **kw) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        response = requests.request(method, url, headers=headers, timeout=HTTP_TIMEOUT, **kw)
        if response.status_code != 200:
            raise SandboxError(f"{method} {url}: {response.status_code} {response.text[:300]}")
        return response.json()

    def shop(self, method: str, path: str, **kw) -> Any:
        return self._call(method, f"{self.shop_url}/sandbox{path}", **kw)

    def check(self) -> None:
        """Both sandboxes answer with this token (else the deployment is not set up for QA)."""
        self.shop("GET", "/")
        self.movements(order_ref="ORD-0")

    def order(self, order_id: int) -> dict[str, Any]:
        return self.shop("GET", f"/ordini/{order_id}")

    def customer(self, email: str) -> dict[str, Any]:
        return self.shop("GET", "/clienti", params={"email": email})

    def emails(self, to: str) -> list[dict[str, Any]]:
        return self.shop("GET", "/email", params={"to": to})["emails"]

    def renewal_pass(self, as_of: str | None = None) -> dict[str, Any]:
        return self.shop("POST", "/orologio/passata", json={"as_of": as_of} if as_of else {})

    def move(self, email: str, days: int) -> dict[str, Any]:
        return self.shop("POST", "/orologio/sposta", json={"email": email, "days": days})

    def transmit_invoices(self) -> dict[str, Any]:
        return self.shop("POST", "/fatture/trasmetti")

    def staff(self, role: str = "operatore") -> dict[str, Any]:
        return self.shop("POST", "/staff", json={"role": role})

    def movements(self, order_ref: str | None = None, payment: str | None = None) -> dict:
        params = {"ordine": order_ref} if order_ref else {"pagamento": payment}
        return self._call("GET", f"{self.bank_url}/sandbox/api/movimenti", params=params)


def register_customer(
    sandbox: Sandbox, name: str, email: str, password: str, billing: bool
) -> None:
    """Create a fresh customer through "Registrati" (and "Dati di fatturazione" if asked).

    The one place the tests register. Orders need a confirmed address: the customer follows
    the confirmation link of the e-mail the sandbox shows, as a person would.
    """
    shop_url = sandbox.shop_url
    with requests.Session() as http:
        _post_form(
            http,
            f"{shop_url}/registrati",
            {
                "name": name,
                "email": email,
                "tax_code": TAX_CODE,
                "password": password,
                "password2": password,
            },
        )
        confirm_address(sandbox, email)
        if billing:  # past the checkout's billing step, as most tests want
            first, _, last = name.partition(" ")
            _post_form(
                http,
                f"{shop_url}/area-clienti/fatturazione",
                {
                    "customer_type": "private",
                    "first_name": first,
                    "last_name": last or first,
                    "tax_code": TAX_CODE,
                    "address": "Via Garibaldi 10",
                    "postal_code": "20121",
                    "city": "Milano",
                    "province": "MI",
                    "country": "IT",
                },
            )


CONFIRM_LINK = re.compile(r"/conferma-email/[A-Za-z0-9_-]+$")


def confirm_address(sandbox: Sandbox, email: str) -> None:
    """Follow the confirmation link e-mailed at registration (the newest one to `email`)."""
    links = [link for mail in sandbox.emails(email) for link in mail["links"]]
    found = [link for link in links if CONFIRM_LINK.search(link)]
    assert found, f"no confirmation link e-mailed to {email}: {links}"
    with requests.Session() as http:
        done = http.get(found[-1], timeout=HTTP_TIMEOUT)
    assert "Indirizzo confermato" in done.text, done.text[:300]


def _post_form(http: requests.Session, url: str, data: dict[str, str]) -> None:
    form = http.get(url, timeout=HTTP_TIMEOUT)
    form.raise_for_status()
    token = CSRF.search(form.text)
    data = {**data, "csrf_token": token.group(1) if token else ""}
    done = http.post(url, data=data, timeout=HTTP_TIMEOUT, allow_redirects=False)
    assert done.status_code in (302, 303), f"{url} refused: {done.status_code} {done.text[:300]}"
