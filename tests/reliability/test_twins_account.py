"""Twins of the account lifecycle (issue 21): each fired 8 times at the same instant over HTTP.

Reset request, reset POST, confirmation link, account closure; the shop under gunicorn on
PostgreSQL as in test_twins.py (same world). Counted in the database: one link, one e-mail, one
change; no answer is a 5xx.
"""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import func, select

from tests.reliability.conftest import requires_postgres
from tests.reliability.test_twins import PASSWORD, world  # noqa: F401 (the module's servers)
from tests.reliability.twins import Browser, assert_no_5xx, fire, get, post, twins_of

pytestmark = [pytest.mark.reliability, requires_postgres]


@pytest.fixture(scope="module")
def tw(world):  # noqa: F811 (the imported fixture, by name)
    """test_twins.py's servers and databases, started once for this module."""
    return world


RESET_LINK = re.compile(r"https?://\S+?/password/nuova/[A-Za-z0-9_-]+")
CONFIRM_LINK = re.compile(r"https?://\S+?/conferma-email/[A-Za-z0-9_-]+")


def bodies(tw, to: str) -> list[str]:
    from webapp.outbox.models import OutboxEmail

    rows = tw.shop_rows(
        select(OutboxEmail.body_text).where(OutboxEmail.to_addr == to).order_by(OutboxEmail.id)
    )
    return [body or "" for (body,) in rows]


def link_in(tw, to: str, pattern: re.Pattern) -> str:
    for body in reversed(bodies(tw, to)):
        found = pattern.search(body)
        if found:
            return found.group(0)
    raise AssertionError(f"no link to {to}")


def tokens_of(tw, customer_id: int) -> list[tuple[str, str | None]]:
    from webapp.shop.tokens import AccountToken

    return [
        (str(purpose), how)
        for purpose, how in tw.shop_rows(
            select(AccountToken.purpose, AccountToken.spent_how)
            .where(AccountToken.customer_id == customer_id)
            .order_by(AccountToken.id)
        )
    ]


def visitor(tw) -> Browser:
    browser = Browser(tw.url)
    browser.get("/password-dimenticata")  # a CSRF token for the anonymous session
    tw.browsers.append(browser)
    return browser


def test_reset_request_twins_send_one_link(tw):
    customer_id, email = tw.customer()
    browser = visitor(tw)
    form = {"csrf_token": browser.csrf, "email": email}

    answers = fire(twins_of(browser, post(tw.url + "/password-dimenticata", form)))

    assert_no_5xx(answers)
    assert {a.status for a in answers} == {200}
    assert tokens_of(tw, customer_id) == [("reset", None)]
    subjects = [s for _, s in tw.emails(email)]
    assert subjects == ["Reimposta la tua password"]
    tw.note("Password dimenticata? (richiesta)", answers, links=1)


def test_reset_post_twins_change_the_password_once(tw):
    customer_id, email = tw.customer()
    browser = visitor(tw)
    browser.post("/password-dimenticata", {"email": email})
    link = link_in(tw, email, RESET_LINK)
    browser.get(link)  # the token moves into this browser's session
    browser.get("/password/nuova")
    new = {"csrf_token": browser.csrf, "password": "twin-nuova-1", "password2": "twin-nuova-1"}

    answers = fire(twins_of(browser, post(tw.url + "/password/nuova", new)))

    assert_no_5xx(answers)
    statuses = sorted(a.status for a in answers)
    assert statuses.count(303) == 1 and set(statuses) <= {303, 410}, statuses
    changed = [s for _, s in tw.emails(email) if s == "La tua password è stata cambiata"]
    assert len(changed) == 1
    assert tokens_of(tw, customer_id) == [("reset", "used")]
    Browser(tw.url).login(email, "twin-nuova-1").close()
    tw.note("Password dimenticata? (nuova password)", answers, changes=1)


def test_confirmation_link_twins_confirm_once(tw):
    from webapp.shop.models import Customer

    email = f"twin-{uuid.uuid4().hex[:10]}@example.it"
    browser = Browser(tw.url)
    tw.browsers.append(browser)
    browser.get("/registrati")
    registration = {
        "name": "Mario Gemelli",
        "email": email,
        "tax_code": "RSSMRA85T10A562S",
        "password": PASSWORD,
        "password2": PASSWORD,
    }
    assert browser.post("/registrati", registration).status_code == 303
    browser.get("/")  # the welcome message is read here, not by the twins
    link = link_in(tw, email, CONFIRM_LINK)

    answers = fire(twins_of(browser, get(link)), tw.url)

    assert_no_5xx(answers)
    assert {(a.status, a.landed) for a in answers} == {(303, "/conferma-email")}
    # Each twin is told the address is confirmed, by itself or by a twin a moment before.
    assert {a.flashes for a in answers} == {(("success", "Il tuo indirizzo e-mail è confermato."),)}
    [(customer_id, confirmed_at)] = tw.shop_rows(
        select(Customer.id, Customer.email_confirmed_at).where(Customer.email == email)
    )
    assert confirmed_at is not None
    assert tokens_of(tw, customer_id) == [("confirm", "used")]
    tw.note("link di conferma dell'indirizzo", answers, confirmations=1)


def test_close_account_twins_close_once(tw):
    from webapp.outbox.models import OutboxEmail
    from webapp.shop.models import Customer

    customer_id, email = tw.customer()
    tw.card(customer_id)
    browser = tw.browser(email)
    form = {"csrf_token": browser.csrf, "current": PASSWORD}

    answers = fire(twins_of(browser, post(tw.url + "/area-clienti/profilo/chiudi", form)))

    assert_no_5xx(answers)
    [(closed_at, address)] = tw.shop_rows(
        select(Customer.closed_at, Customer.email).where(Customer.id == customer_id)
    )
    assert closed_at is not None and address != email
    finals = tw.count(
        select(func.count(OutboxEmail.id)).where(
            OutboxEmail.dedupe_key == f"account-closed:{customer_id}"
        )
    )
    assert finals == 1
    tw.note("Chiudi il mio account", answers, closures=1)
