"""The checkout page's weight: at most 30 KB transferred on a first visit, 8 KB on a repeat."""

from __future__ import annotations

from playwright.sync_api import Browser, Page

from tests.e2e.helpers import add_to_cart, choose_card_method

FIRST_VISIT_BUDGET = 30_000
REPEAT_VISIT_BUDGET = 8_000

TRANSFERRED = """() => {
  const entries = [...performance.getEntriesByType('navigation'),
                   ...performance.getEntriesByType('resource')];
  return entries.map((e) => ({name: e.name, size: e.transferSize, type: e.initiatorType}));
}"""


def _visit(page: Page) -> list[dict]:
    page.goto("/checkout")
    page.wait_for_load_state("load")
    page.wait_for_function("() => window.htmx !== undefined")
    return page.evaluate(TRANSFERRED)


def test_checkout_page_weight(
    page: Page, browser: Browser, browser_context_args: dict, base_url: str, login, new_customer
) -> None:
    login(page, new_customer)
    page.goto("/")
    add_to_cart(page, "PEC-STD", "SPID-PF", "FIRMA-R")
    page.goto("/checkout")
    choose_card_method(page)

    # A new browser profile with the same session: an empty cache, as on a first visit.
    context = browser.new_context(
        **{**browser_context_args, "base_url": base_url},
        storage_state=page.context.storage_state(),
    )
    try:
        first = _visit(context.new_page())
        total = sum(e["size"] for e in first)
        report = "\n".join(f"{e['size']:>7} {e['name']}" for e in first)
        print(f"first visit: {total} B\n{report}")
        assert len(first) >= 4, report  # the page, CSS, htmx, app.js
        assert all(e["size"] > 0 for e in first), report  # nothing came from a cache
        assert total <= FIRST_VISIT_BUDGET, (
            f"first visit {total} B > {FIRST_VISIT_BUDGET}\n{report}"
        )

        again = _visit(context.new_page())
        total = sum(e["size"] for e in again)
        report = "\n".join(f"{e['size']:>7} {e['name']}" for e in again)
        print(f"repeat visit: {total} B\n{report}")
        static = [e for e in again if "/static/" in e["name"]]
        assert static and all(e["size"] == 0 for e in static), f"static re-fetched\n{report}"
        assert total <= REPEAT_VISIT_BUDGET, (
            f"repeat visit {total} B > {REPEAT_VISIT_BUDGET}\n{report}"
        )
    finally:
        context.close()
