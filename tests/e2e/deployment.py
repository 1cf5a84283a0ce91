"""Running the browser tests against a deployment: registration over HTTP, e-mails from a folder."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
import requests

from webapp.mailsink import MailSink

DEMO = ("demo@pecshop.test", "demo12345", "Mario Rossi")
TAX_CODE = "RSSMRA85T10A562S"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def register_customer(shop_url: str, name: str, email: str, password: str) -> None:
    """Create a fresh customer through the deployment's "Registrati" form."""
    with requests.Session() as http:
        form = http.get(f"{shop_url}/registrati", timeout=10)
        form.raise_for_status()
        token = CSRF.search(form.text)
        data = {
            "name": name,
            "email": email,
            "tax_code": TAX_CODE,
            "password": password,
            "password2": password,
            "csrf_token": token.group(1) if token else "",
        }
        done = http.post(f"{shop_url}/registrati", data=data, timeout=10, allow_redirects=False)
        assert done.status_code in (302, 303), f"registration refused: {done.status_code}"


LINK = re.compile(r"https?://\S+/conferma-email/[A-Za-z0-9_-]+")


def wait_for_link(sink, email: str, pattern: re.Pattern = LINK, seen: int = 0) -> str:
    """The newest link matching `pattern` in the e-mails to `email` after the first `seen`."""
    from tests.e2e.helpers import wait_until

    def newest() -> str | None:
        for message in reversed(sink.to(email)[seen:]):
            found = pattern.search(sink.text(message))
            if found:
                return found.group(0)
        return None

    return wait_until(newest, what=f"a link e-mailed to {email}")


def confirm_address(sink, email: str) -> None:
    """Follow the confirmation link the shop e-mailed at registration."""
    link = wait_for_link(sink, email)
    with requests.Session() as http:
        done = http.get(link, timeout=10)
    assert "Indirizzo confermato" in done.text, done.text[:300]


class DirSink:
    """The e-mails that `make run` saves as .eml files (instance/mail), read like MailSink."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def messages(self) -> list[EmailMessage]:
        files = sorted(self.folder.glob("*.eml"), key=lambda f: f.stat().st_mtime)
        parser = BytesParser(policy=policy.default)
        return [parser.parsebytes(f.read_bytes()) for f in files]  # type: ignore[misc]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]

    @staticmethod
    def text(message: EmailMessage) -> str:
        return MailSink.text(message)


class NoSink:
    """No way to read the deployment's e-mails: a test that checks one is skipped."""

    messages: list[EmailMessage] = []

    def to(self, address: str) -> list[EmailMessage]:
        pytest.skip(
            "against a deployment, e-mail checks need MAIL_DIR (make run saves to instance/mail)"
        )
