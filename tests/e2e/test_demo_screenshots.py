"""Screenshots of the populated demo (`flask seed-demo`'s story) at 390 and 1280 px, for the
README (scripts/screenshots.py sets SCREENSHOTS=dir): the demo customer's area and the back
office with 90 days of sales."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.deployment import DEMO
from tests.e2e.test_layout import _staff_page

TARGET = os.environ.get("SCREENSHOTS")
WIDTHS = {390: {"width": 390, "height": 844}, 1280: {"width": 1280, "height": 900}}
CUSTOMER_PAGES = (
    ("/", "catalogo"),
    ("/area-clienti", "area-servizi"),
    ("/area-clienti/ordini", "area-ordini"),
    ("/area-clienti/fatture", "area-fatture"),
)
OPERATOR_PAGES = (
    ("/backoffice/", "backoffice-cruscotto"),
    ("/backoffice/cerca?q=Rossi", "backoffice-cerca"),
    ("/backoffice/solleciti", "backoffice-solleciti"),
)


def tell_the_story(live) -> None:
    """Started here: add seed-demo's story (a deployment from `make run` already has it)."""
    if live.app is None:
        return
    from sqlalchemy import select

    from webapp.clock import now_utc
    from webapp.demo_story import seed_story
    from webapp.extensions import db
    from webapp.shop.models import Customer

    with live.app.app_context():
        demo = db.session.scalar(select(Customer).where(Customer.email == DEMO[0]))
        seed_story(now_utc(), demo)
        db.session.commit()
        db.session.remove()


def _shoot(page: Page, folder: Path, name: str, shots: list[Path]) -> None:
    page.wait_for_load_state("load")
    path = folder / f"{name}.png"
    page.screenshot(path=path, full_page=True, animations="disabled")
    shots.append(path)


@pytest.mark.skipif(not TARGET, reason="only for scripts/screenshots.py (set SCREENSHOTS=folder)")
def test_demo_screenshots(browser: Browser, live) -> None:
    folder = Path(TARGET or ".")
    folder.mkdir(parents=True, exist_ok=True)
    tell_the_story(live)
    shots: list[Path] = []
    for width, viewport in WIDTHS.items():
        context = browser.new_context(
            base_url=live.shop_url, locale="it-IT", viewport=viewport, is_mobile=width < 600
        )
        page = context.new_page()
        page.goto("/accedi")
        page.get_by_label("E-mail").fill(DEMO[0])
        page.get_by_label("Password").fill(DEMO[1])
        page.get_by_role("button", name="Accedi").click()
        expect(page.get_by_role("button", name=f"Esci ({DEMO[2]})")).to_be_visible()
        for path, name in CUSTOMER_PAGES:
            page.goto(path)
            _shoot(page, folder, f"demo-{width}-{name}", shots)
        context.close()
        staff = _staff_page(browser, live, viewport, width < 600)
        for path, name in OPERATOR_PAGES:
            staff.goto(path)
            _shoot(staff, folder, f"demo-{width}-{name}", shots)
        staff.context.close()
    assert len(shots) == 2 * (len(CUSTOMER_PAGES) + len(OPERATOR_PAGES))
    assert all(shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for shot in shots)
