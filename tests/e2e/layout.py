"""What a careful person notices on a page, measured in the browser: elements past the right
edge of the viewport, and words the browser split across two lines ("P/a/g/a/t/o", "07/12/202|6").

`layout_problems(page)` returns one line per problem; the phone and desktop checks of
test_layout.py call it on every page a customer or an operator can reach.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

# Longer tokens (e-mail addresses, IBANs, URLs, tokens) may wrap on a phone: a word may not.
LONGEST_WORD = 22

MEASURE = (Path(__file__).parent / "layout.js").read_text(encoding="utf-8")


def layout_problems(page: Page, name: str) -> list[str]:
    """The page's layout problems, each prefixed by the page's name (empty when it is fine).
    Measured once the page and its stylesheets have loaded (an unstyled page is not the page)."""
    page.wait_for_load_state("load")
    found = page.evaluate(MEASURE, LONGEST_WORD)
    problems = []
    if found["scroll"] > found["width"]:
        problems.append(f"{name}: scrolls sideways ({found['scroll']} > {found['width']} px)")
    problems += [f"{name}: past the right edge: {w}" for w in found["wide"]]
    problems += [f"{name}: word split across lines: {s}" for s in found["split"]]
    return problems
