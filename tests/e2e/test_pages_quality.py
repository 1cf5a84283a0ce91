"""Every page of the three payment paths, the bank and the customer area: axe and phone width."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page

from tests.e2e.pages import visit_every_page

PHONE = {"width": 360, "height": 740}
BLOCKING = {"serious", "critical"}
# The last three elements that reach past the right edge: where to look when a page is too wide.
WIDEST = """() => {
  const edge = document.documentElement.clientWidth + 1;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '');
  return [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > edge).slice(-3).map(name);
}"""


@pytest.fixture
def phone_page(browser: Browser, browser_context_args: dict, base_url: str):
    context = browser.new_context(
        **{**browser_context_args, "base_url": base_url, "viewport": PHONE, "is_mobile": True}
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def test_every_page_passes_axe(page: Page, live, new_customer, login) -> None:
    """No serious or critical axe-core violation on any page of the journey."""
    axe = Axe()
    found: list[str] = []

    def check(current: Page, name: str) -> None:
        response = axe.run(current).response
        assert response["testEngine"]["name"] == "axe-core", name  # axe did run on this page
        violations = response["violations"]
        for v in violations:
            if v["impact"] in BLOCKING:
                targets = [" ".join(map(str, n["target"])) for n in v["nodes"]][:3]
                found.append(f"{name}: {v['id']} ({v['impact']}) {v['help']} → {targets}")

    visit_every_page(page, live.bank_url, login, new_customer, check)
    assert not found, "\n".join(found)


def test_every_page_fits_a_360px_phone(phone_page: Page, live, new_customer, login) -> None:
    """No horizontal scrolling at 360 px (the "Carta per il rinnovo" select overflowed at 390)."""
    too_wide: list[str] = []

    def check(current: Page, name: str) -> None:
        if current.viewport_size != PHONE:
            current.set_viewport_size(PHONE)
        sizes = current.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        if sizes[0] > sizes[1]:
            culprits = current.evaluate(WIDEST)
            too_wide.append(f"{name}: scrollWidth {sizes[0]} > {sizes[1]} {culprits}")

    visit_every_page(phone_page, live.bank_url, login, new_customer, check)
    assert not too_wide, "\n".join(too_wide)
