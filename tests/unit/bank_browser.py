"""A customer on the bank's hosted pages, driven with the bank app's test client."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit


class BankBrowser:
    """Fills the card page, confirms, passes 3-D Secure and reads the return link."""

    def __init__(self, bank_app):
        self.client = bank_app.test_client()
        self.token = None

    def _get(self, path: str):
        response = self.client.get(path)
        found = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
        if found:
            self.token = found.group(1)
        return response

    def _post(self, path: str, data: dict | None = None):
        return self.client.post(path, data={"csrf_token": self.token, **(data or {})})

    def cancel(self, redirect_url: str) -> str:
        """ "Annulla e torna al negozio" on the card page; returns the shop return URL."""
        path = urlsplit(redirect_url).path
        pid = path.rstrip("/").split("/")[-1]
        self._get(path)
        response = self._post(f"/pay/{pid}/cancel")
        assert response.status_code == 303, response.text
        return response.headers["Location"]

    def pay(
        self,
        redirect_url: str,
        number: str,
        otp: str | None = "auto",
        approve: bool = True,
        cvv: str = "123",
    ) -> str:
        """Pay on the hosted page; returns the shop return URL of "torna al negozio"."""
        path = urlsplit(redirect_url).path
        pid = path.rstrip("/").split("/")[-1]
        self._get(path)
        response = self._post(
            path,
            {
                "holder": "Mario Rossi",
                "number": number,
                "exp_month": "12",
                "exp_year": "2030",
                "cvv": cvv,
            },
        )
        assert response.status_code == 303, response.text
        self._post(f"/pay/{pid}/confirm")
        page = self._get(f"/pay/{pid}").text
        code = re.search(r'id="otp-code">(\d{6})<', page)
        if code and otp is not None:
            for _ in range(1 if otp == "auto" else 3):
                self._post(f"/pay/{pid}/otp", {"otp": code.group(1) if otp == "auto" else otp})
        elif "/app/" in page:
            self._get(f"/app/{pid}")
            self._post(f"/app/{pid}/{'approve' if approve else 'refuse'}")
        found = re.search(
            r'id="return-link"[^>]*href="([^"]+)"', self._get(f"/pay/{pid}/result").text
        )
        assert found, "no return link on the result page"
        return html.unescape(found.group(1))
