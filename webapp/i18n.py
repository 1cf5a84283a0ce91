"""Translation helpers shared by templates and Python: one definition of each plural label."""

from __future__ import annotations

from flask_babel import gettext, ngettext
from flask_babel.speaklater import LazyString


class LazyText(LazyString):
    """A lazy translation that Jinja escapes like any str.

    flask_babel's LazyString has `__html__`, so Jinja would print it unescaped as if it were
    markup: "l'indirizzo" would no longer come out as "l&#39;indirizzo".
    """

    def __getattribute__(self, name: str):
        if name == "__html__":
            raise AttributeError(name)
        return super().__getattribute__(name)


def lazy_gettext(string: str, **variables) -> LazyText:
    """Like flask_babel.lazy_gettext, for strings built at import time (forms, constants)."""
    return LazyText(gettext, string, **variables)


def years_label(years: int) -> str:
    """ "1 anno", "3 anni": the duration of a service in the current language."""
    return ngettext("%(num)d anno", "%(num)d anni", years)


def every_years_label(years: int) -> str:
    """ "ogni anno", "ogni 3 anni" (never "ogni 1 anno"): how often a service renews."""
    return ngettext("ogni anno", "ogni %(num)d anni", years)
