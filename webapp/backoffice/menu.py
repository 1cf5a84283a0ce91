"""The back office's one header row: its menu entries, each named as the page it opens.

Each entry's label is the `<h1>` of its page (tests/unit/test_backoffice_menu.py holds them
together), and the entry of the page being shown, or of the list a detail page belongs to (an
order, a customer or a service under "Cerca", a product under "Catalogo"...), carries
`aria-current="page"`.
"""

from __future__ import annotations

from dataclasses import dataclass

from webapp.i18n import lazy_gettext as _l


@dataclass(frozen=True)
class MenuEntry:
    endpoint: str
    label: object
    admin_only: bool = False
    also: tuple[str, ...] = ()  # the detail pages this entry is the way back to


MENU: tuple[MenuEntry, ...] = (
    MenuEntry("backoffice.dashboard", _l("Cruscotto")),
    MenuEntry(
        "backoffice.search",
        _l("Cerca"),
        also=("backoffice.view_order", "backoffice.view_customer", "backoffice.view_service"),
    ),
    MenuEntry("backoffice.list_payment_issues", _l("Pagamenti anomali")),
    MenuEntry("backoffice.list_dunning", _l("Solleciti")),
    MenuEntry("backoffice.list_grace", _l("Scaduti rinnovabili")),
    MenuEntry("backoffice.list_outbox", _l("E-mail in ritardo")),
    MenuEntry("backoffice.audit_log", _l("Registro")),
    MenuEntry(
        "backoffice.list_sdi_invoices",
        _l("Fatture SdI"),
        also=("backoffice.view_sdi_invoice", "backoffice.export_invoices"),
    ),
    MenuEntry("backoffice.list_to_correct", _l("Da correggere")),
    MenuEntry("backoffice.list_products", _l("Catalogo"), True, ("backoffice.edit_product",)),
    MenuEntry("backoffice.list_codes", _l("Codici sconto"), True, ("backoffice.edit_code",)),
    MenuEntry("backoffice.list_staff", _l("Staff"), True),
)


def menu_for(is_admin: bool, endpoint: str | None) -> list[tuple[MenuEntry, bool]]:
    """The entries this member sees, each with whether it is the current page's."""
    return [
        (entry, endpoint == entry.endpoint or endpoint in entry.also)
        for entry in MENU
        if is_admin or not entry.admin_only
    ]
