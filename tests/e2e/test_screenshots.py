"""Screenshots of each step of the three paths, for scripts/screenshots.py (SCREENSHOTS=dir)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.pages import slug, visit_every_page

TARGET = os.environ.get("SCREENSHOTS")


@pytest.mark.skipif(not TARGET, reason="only for scripts/screenshots.py (set SCREENSHOTS=folder)")
def test_screenshots(
    browser: Browser, browser_context_args: dict, base_url: str, live, new_customer, login
) -> None:
    folder = Path(TARGET or ".")
    folder.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(
        **{**browser_context_args, "base_url": base_url},
        viewport={"width": 800, "height": 1000},
    )
    context.set_default_timeout(10_000)

    shots: list[Path] = []

    def shoot(page: Page, name: str) -> None:
        page.wait_for_load_state("load")
        path = folder / f"{slug(name)}.png"
        page.screenshot(path=path, full_page=False, animations="disabled")
        shots.append(path)

    try:
        visit_every_page(context.new_page(), live.bank_url, login, new_customer, shoot)
    finally:
        context.close()
    # Every step of the three paths was shot, each a real PNG picture.
    assert len(shots) >= 20, shots
    assert all(shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for shot in shots)
