"""Every user-facing string goes through Flask-Babel: the catalogue template lists them, and a
translation really changes the page (checked with a fake one that upper-cases each message)."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import flask_babel
import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

from webapp.config import PROJECT_DIR

PLACEHOLDER = re.compile(r"%(?:\([a-z_]+\))?[sd%]")


@pytest.fixture(scope="module")
def pot(tmp_path_factory) -> dict:
    """The messages `pybabel extract` finds in the tree, as read from a fresh .pot."""
    out: Path = tmp_path_factory.mktemp("i18n") / "messages.pot"
    args = ["pybabel", "-q", "extract", "-F", str(PROJECT_DIR / "babel.cfg")]
    args += ["-k", "_l", "-k", "lazy_gettext", "-o", str(out), str(PROJECT_DIR)]
    CommandLineInterface().run(args)
    with out.open("rb") as handle:
        catalog = read_po(handle)
    return {
        message.id if isinstance(message.id, str) else message.id[0]: message.id
        for message in catalog
        if message.id
    }


@pytest.mark.parametrize(
    "msgid",
    [
        "Paga ora su server sicuro",  # template
        "Conferma e completa l'ordine",
        "Nuova carta di pagamento",
        "Sei uscito dal tuo account.",  # flash message
        "La carta %(card)s è scaduta: scegline un'altra o aggiungine una nuova.",  # domain error
        "Conferma pagamento ordine %(number)s",  # e-mail subject
        "Inserisci l'indirizzo e-mail.",  # form validation (lazy)
        "Carta di credito",  # PaymentMethod.label
        "Gentile %(name)s,",  # e-mail template
        "la carta non ha fondi sufficienti",  # renewal failure reason (lazy, stored on the row)
        "Pagamento duplicato: l'ordine era già stato pagato.",  # refund reason
        "Si possono rimborsare al massimo %(amount)s su questo pagamento.",  # refund error
        "Scrivi il motivo dell'operazione (resta nel registro).",  # back office
        "Pagamento n. %(id)s (%(channel)s): %(status)s",  # back-office order timeline
        "CAP non valido: servono 5 cifre.",  # billing validation
        "Frequenza di rinnovo non valida per %(name)s: scegli da %(first)d a %(last)d anni.",
        "Promemoria: il %(day)s rinnoviamo %(name)s",  # renewal e-mail subject
    ],
)
def test_extraction_finds_the_strings(pot, msgid):
    assert msgid in pot


def test_extraction_finds_the_plural_years(pot):
    assert pot["%(num)d anno"] == ("%(num)d anno", "%(num)d anni")


def test_no_template_chooses_anno_or_anni_by_hand():
    offenders = [
        str(path.relative_to(PROJECT_DIR))
        for path in (PROJECT_DIR / "templates").rglob("*")
        if path.is_file()
        and "bank" not in path.relative_to(PROJECT_DIR / "templates").parts
        and "'anno' if" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_years_label_is_singular_and_plural(app):
    from webapp.i18n import years_label

    with app.test_request_context("/"):
        assert years_label(1) == "1 anno"
        assert years_label(3) == "3 anni"


class Shouting(gettext.NullTranslations):
    """A fake language: each message upper-cased, its %(placeholders)s left as they are."""

    @staticmethod
    def _shout(message: str) -> str:
        parts = PLACEHOLDER.split(message)
        holes = PLACEHOLDER.findall(message)
        out = parts[0].upper()
        for hole, part in zip(holes, parts[1:], strict=True):
            out += hole + part.upper()
        return out

    def ugettext(self, message):
        return self._shout(message)

    gettext = ugettext

    def ungettext(self, singular, plural, n):
        return self._shout(singular if n == 1 else plural)

    ngettext = ungettext


@pytest.fixture
def shouting(monkeypatch):
    monkeypatch.setattr(flask_babel.Domain, "get_translations", lambda self: Shouting())


def test_pages_really_go_through_gettext(client, catalogue, shouting):
    page = client.get("/").text
    assert "PEC E SERVIZI CERTIFICATI" in page  # {{ _() }}
    assert "PEC e Servizi Certificati" not in page
    assert "PAGANDO CON <STRONG>CARTA DI CREDITO</STRONG>" in page  # a {% trans %} block, whole
    assert "AGGIUNGI AL CARRELLO" in page


def test_forms_and_flashes_go_through_gettext(client, shouting):
    page = client.get("/accedi").text
    assert "RICORDAMI" in page  # a lazy form label
    assert "NON HAI UN ACCOUNT?" in page


def test_italian_stays_as_it_was(client, catalogue):
    page = client.get("/").text
    assert "PEC e Servizi Certificati" in page
    assert "Pagando con <strong>Carta di credito</strong>" in page


def test_domain_errors_go_through_gettext(app, catalogue, shouting):
    from webapp.errors import InvalidChoice
    from webapp.renewals.charging import REASONS
    from webapp.shop.billing import BillingData, check
    from webapp.shop.cart import valid_years

    product = catalogue["products"]["PEC-STD"]
    with app.test_request_context("/"):
        with pytest.raises(InvalidChoice) as refused:
            valid_years(product, 9)
        assert refused.value.message == (
            f"FREQUENZA DI RINNOVO NON VALIDA PER {product.name}: SCEGLI DA 1 A 5 ANNI."
        )
        assert str(REASONS["insufficient_funds"]) == "LA CARTA NON HA FONDI SUFFICIENTI"
        errors = check(BillingData(first_name="Ada", last_name="Rossi", postal_code="123"))
        assert errors["postal_code"] == "CAP NON VALIDO: SERVONO 5 CIFRE."


def test_domain_errors_stay_italian(app, catalogue):
    from webapp.errors import InvalidChoice
    from webapp.shop.cart import valid_years

    product = catalogue["products"]["PEC-STD"]
    with app.test_request_context("/"), pytest.raises(InvalidChoice) as refused:
        valid_years(product, 9)
    assert refused.value.message == (
        f"Frequenza di rinnovo non valida per {product.name}: scegli da 1 a 5 anni."
    )
