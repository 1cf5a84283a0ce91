"""The twin harness: the shop under gunicorn, customers driven over HTTP, N requests at once.

A "twin" is the same request sent again before the first one has answered: a double click,
a reload, a second tab, the bank's notification racing the customer's return. `fire` sends N
of them at the same instant (threads released together by a barrier), each with its own copy
of the customer's cookies, and collects every answer; the tests then count what the shop's and
the bank's databases recorded. `TALLY` adds up what every test saw, for the run's summary.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from tests.reliability.conftest import MERCHANT, ROOT, SECRET, _env, free_port, wait_until
from webapp.signing import sign_request

WORKERS = 3
THREADS = 4
TWINS = 8  # requests fired at the same instant per action
HTTP_TIMEOUT = 30
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
HX_CSRF_RE = re.compile(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'')
# The line that ends a logged traceback: the exception.
TRACEBACK_RE = re.compile(r"^Traceback \(most recent call last\):\n(?:[ \t].*\n)+(\S.*)$", re.M)
FLASH_BOX_RE = re.compile(r'<div id="flash">(.*?)</div>', re.S)  # the page's flashed messages
FLASH_RE = re.compile(r'<p class="flash flash-(\w+)"[^>]*>(.*?)</p>', re.S)


@dataclass
class Tally:
    """What every twin test fired and saw, printed at the end of the run."""

    actions: int = 0
    fired: int = 0
    answers: int = 0
    five_xx: int = 0
    charges: int = 0
    hosted_captures: int = 0
    refunds: int = 0
    emails: int = 0
    lines: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"[twins] {self.actions} actions, {self.fired} twins fired, {self.answers} answers, "
            f"5xx seen = {self.five_xx}; at the bank: {self.charges} card charges, "
            f"{self.hosted_captures} hosted captures, {self.refunds} refunds; "
            f"{self.emails} e-mails in the outbox"
        )


TALLY = Tally()


@dataclass(frozen=True)
class Answer:
    """One twin's answer, and (for a 303) the flashes of the page it lands on."""

    status: int
    location: str = ""
    hx_redirect: str = ""
    text: str = ""
    landed: str = ""  # path of the page a redirect lands on
    flashes: tuple[tuple[str, str], ...] = ()
    error: str = ""

    @property
    def target(self) -> str:
        return urlsplit(self.location or self.hx_redirect).path


# --- processes ------------------------------------------------------------------------------


class ShopServer:
    """The shop under gunicorn (`wsgi:app`, gthread workers), reaching the bank process."""

    def __init__(self, database_url: str, bank_url: str, log: Path, **extra_env: object):
        self.extra_env = extra_env  # e.g. a cluster node's NODE_NAME and shared limits
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.bank_url = bank_url
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> ShopServer:
        env = _env(
            DATABASE_URL=self.database_url,
            BANK_API_URL=self.bank_url,
            BANK_SHARED_SECRET=SECRET,
            BANK_MERCHANT_ID=MERCHANT,
            BANK_TIMEOUT_SECONDS=10,
            SHOP_BASE_URL=self.url,
            SECRET_KEY="twins-secret-key",
            RATELIMIT_ENABLED=0,
            MAIL_SUPPRESS_SEND=1,
            GUNICORN_ACCESSLOG=str(self.log.with_suffix(".access.log")),
        )
        env.update((k, str(v)) for k, v in self.extra_env.items())
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-w",
                    str(WORKERS),
                    "--threads",
                    str(THREADS),
                    "-b",
                    f"127.0.0.1:{self.port}",
                    "wsgi:app",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # kill() takes the master and its workers
            )
        wait_until(self._ready, 60, f"gunicorn on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited {self.proc.returncode}:\n{self.log.read_text()}")
        try:
            return requests.get(self.url + "/condizioni-generali", timeout=10).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: workers finish their requests
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL to gunicorn's master and workers at once: a server that dies."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def errors_in_log(self) -> list[str]:
        """The exceptions gunicorn's workers logged (a 500 always leaves a traceback)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return TRACEBACK_RE.findall(text)


# --- a customer's browser -------------------------------------------------------------------


class Browser:
    """One customer's browser on the shop: a cookie jar and the page's CSRF token."""

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()
        self.csrf = ""

    def close(self) -> None:
        self.http.close()

    def _remember_token(self, text: str) -> None:
        found = HX_CSRF_RE.search(text) or CSRF_RE.search(text)
        if found:
            self.csrf = found.group(1)

    def get(self, path: str, **kw) -> requests.Response:
        response = self.http.get(self._url(path), timeout=HTTP_TIMEOUT, **kw)
        assert response.status_code < 500, f"GET {path}: {response.status_code}"
        self._remember_token(response.text)
        return response

    def post(self, path: str, data: dict | None = None, htmx: bool = False) -> requests.Response:
        headers = {"X-CSRFToken": self.csrf}
        if htmx:
            headers["HX-Request"] = "true"
        response = self.http.post(
            self._url(path),
            data={"csrf_token": self.csrf, **(data or {})},
            headers=headers,
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
        assert response.status_code < 500, f"POST {path}: {response.status_code}"
        return response

    def _url(self, path: str) -> str:
        return path if path.startswith("http") else self.base + path

    def login(self, email: str, password: str) -> Browser:
        self.get("/accedi")
        response = self.post("/accedi", {"email": email, "password": password})
        assert response.status_code == 303, response.text[:500]
        self.get("/")  # the token of the logged-in session
        return self

    def token_of(self, path: str, name: str) -> str:
        """A hidden field's value on a page (e.g. the checkout token, the portal's attempt)."""
        text = self.get(path).text
        found = re.search(rf'name="{name}" value="([^"]*)"', text)
        assert found, f"no {name} on {path}"
        return html.unescape(found.group(1))

    def twin_session(self) -> requests.Session:
        """A second browser window: the same cookies, its own connection and cookie jar."""
        return window_of(self.http)


def window_of(http: requests.Session) -> requests.Session:
    """Another window of a browser: its cookies copied, its own connection and cookie jar."""
    session = requests.Session()
    session.cookies.update(http.cookies)
    return session


class BankPage:
    """The bank's hosted page driven over HTTP: card form, Invio dati, result, return link."""

    def __init__(self):
        self.http = requests.Session()
        self.csrf = ""

    def close(self) -> None:
        self.http.close()

    def _get(self, url: str) -> requests.Response:
        response = self.http.get(url, timeout=HTTP_TIMEOUT, allow_redirects=False)
        found = CSRF_RE.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def _post(self, url: str, data: dict | None = None) -> requests.Response:
        return self.http.post(
            url,
            data={"csrf_token": self.csrf, **(data or {})},
            timeout=HTTP_TIMEOUT,
            allow_redirects=False,
        )

    def twin_session(self) -> requests.Session:
        """A second tab of the bank's page: the same cookies, its own connection."""
        return window_of(self.http)

    def fill(self, redirect_url: str, number: str = "4242424242424242") -> str:
        """Type a card and Procedi, up to the summary with "Invio dati"; the page's URL."""
        parts = urlsplit(redirect_url)
        page = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        assert self._get(page).status_code == 200
        card = {
            "holder": "Mario Rossi",
            "number": number,
            "exp_month": "12",
            "exp_year": "2030",
            "cvv": "123",
        }
        response = self._post(page, card)
        assert response.status_code == 303, response.text[:500]
        return page

    def pay(self, redirect_url: str, number: str = "4242424242424242") -> str:
        """Pay with a frictionless card; the signed "torna al negozio" URL."""
        page = self.fill(redirect_url, number)
        response = self._post(page + "/confirm")
        assert response.status_code == 303, response.text[:500]
        return self.return_link(page)

    def return_link(self, page: str) -> str:
        """The signed "torna al negozio" URL on the result page of a finished payment."""
        result = self._get(page + "/result").text
        found = re.search(r'id="return-link"[^>]*href="([^"]+)"', result)
        assert found, "no return link on the bank's result page"
        return html.unescape(found.group(1))


def signed_notification(shop_url: str, body: dict) -> tuple[str, bytes, dict[str, str]]:
    """The bank's notification POST as its notifier signs it: (url, body, headers)."""
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    path = "/pagamenti/notifica"
    headers = sign_request(SECRET, MERCHANT, "POST", path, raw, int(time.time()))
    headers["Content-Type"] = "application/json"
    return shop_url + path, raw, headers


# --- firing twins ---------------------------------------------------------------------------

# A twin's request: given its own session, send one request (no redirects followed).
Send = Callable[[requests.Session], requests.Response]


def get(url: str, **kw) -> Send:
    return lambda s: s.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT, **kw)


def post(url: str, data: dict | None = None, headers: dict | None = None, body=None) -> Send:
    def send(s: requests.Session) -> requests.Response:
        return s.post(
            url,
            data=body if body is not None else data,
            headers=headers,
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )

    return send


def fire(
    sends: list[tuple[Callable[[], requests.Session], Send]], follow: str | None = None
) -> list[Answer]:
    """Send every request at the same instant, each from its own session; all the answers.

    `follow`: the shop's base URL; a twin answered 303 (or HX-Redirect) to a shop page then
    loads that page with its own cookies, and the answer records the flashes shown there.
    """
    n = len(sends)
    barrier = threading.Barrier(n, timeout=HTTP_TIMEOUT)
    answers: list[Answer | None] = [None] * n

    def run(i: int) -> None:
        make_session, send = sends[i]
        with make_session() as session:
            try:
                barrier.wait()
                response = send(session)
                answers[i] = _answer(session, response, follow)
            except Exception as exc:  # a timeout or a reset is an answer too: a wrong one
                answers[i] = Answer(status=0, error=f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HTTP_TIMEOUT * 3)
    assert all(not t.is_alive() for t in threads), "a twin never answered"
    result = [a for a in answers if a is not None]
    TALLY.actions += 1
    TALLY.fired += n
    TALLY.answers += len(result)
    TALLY.five_xx += sum(1 for a in result if a.status >= 500)
    return result


def _answer(session: requests.Session, response: requests.Response, follow: str | None) -> Answer:
    answer = Answer(
        status=response.status_code,
        location=response.headers.get("Location", ""),
        hx_redirect=response.headers.get("HX-Redirect", ""),
        text=response.text,
    )
    target = answer.location or answer.hx_redirect
    if follow and target and (target.startswith("/") or target.startswith(follow)):
        page = session.get(
            target if target.startswith("http") else follow + target, timeout=HTTP_TIMEOUT
        )
        box = FLASH_BOX_RE.search(page.text)
        found = FLASH_RE.findall(box.group(1)) if box else []
        flashes = tuple((c, html.unescape(m).strip()) for c, m in found)
        return Answer(
            status=response.status_code,
            location=answer.location,
            hx_redirect=answer.hx_redirect,
            text=answer.text,
            landed=urlsplit(page.url).path if page.status_code < 500 else f"{page.status_code}",
            flashes=flashes,
        )
    return answer


def twins_of(browser: Browser, send: Send, n: int = TWINS) -> list[tuple[Callable, Send]]:
    """n copies of one request from one customer's browser (each in its own window)."""
    return [(browser.twin_session, send)] * n


def assert_no_5xx(answers: list[Answer]) -> None:
    bad = [(a.status, a.error, a.text[:300]) for a in answers if a.status >= 500 or a.status == 0]
    assert not bad, f"{len(bad)} of {len(answers)} twins failed: {bad}"
