"""Translation helpers shared by templates and Python: one definition of each plural label."""

from __future__ import annotations

from flask_babel import ngettext


def years_label(years: int) -> str:
    """ "1 anno", "3 anni": the duration of a service in the current language."""
    return ngettext("%(num)d anno", "%(num)d anni", years)
