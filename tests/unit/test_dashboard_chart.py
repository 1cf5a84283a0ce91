"""The dashboard's chart: day labels that cannot overlap (every 2nd day, every 6th on a phone,
today always), an empty state in words, and the figures as text (a summary and a table)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.unit.backoffice_world import make_staff, paid_by_card, staff_session
from tests.unit.renewal_fakes import FakeGateway

# The chart's width at the two widths the layout test measures (main 1080 px or the phone's
# 390 px, less the page's and the panel's padding), and the width a "07/12" label needs.
CHART_PX = {1280: 985, 390: 324}
LABEL_PX = 36


@pytest.fixture(autouse=True)
def fake_bank(app) -> FakeGateway:
    gateway = FakeGateway()
    app.extensions["gateway"] = gateway
    return gateway


def test_labels_leave_room_for_each_other_at_both_widths():
    from webapp.backoffice.dashboard import TICK_NARROW, TICK_WIDE, day_ticks

    ticks = day_ticks(30)
    assert ticks[-1] == "tick tick-narrow"  # today
    wide = [i for i, t in enumerate(ticks) if "tick" in t.split()]
    narrow = [i for i, t in enumerate(ticks) if "tick-narrow" in t]
    assert set(narrow) < set(wide)
    for indexes, px, every in ((wide, CHART_PX[1280], TICK_WIDE), (narrow, CHART_PX[390], 6)):
        gaps = {b - a for a, b in zip(indexes, indexes[1:], strict=False)}
        assert gaps == {every}
        assert every * px / 30 >= LABEL_PX, "two labels would overlap"
    assert TICK_NARROW % TICK_WIDE == 0


def test_an_empty_month_says_so_in_words(client, db):
    staff_session(client, make_staff())
    page = client.get("/backoffice/").text
    assert "Nessun incasso negli ultimi 30 giorni" in page
    assert "<svg" not in page


def test_the_chart_has_its_figures_in_text(client, db, catalogue, dummy_customer):
    from webapp.clock import now_utc, rome_date
    from webapp.money import format_eur

    now = now_utc()
    order, _, _ = paid_by_card(dummy_customer, catalogue["products"]["PEC-STD"], now)
    earlier, _, _ = paid_by_card(
        dummy_customer, catalogue["products"]["PEC-STD"], now - timedelta(days=3), "1111"
    )
    staff_session(client, make_staff())
    page = client.get("/backoffice/").text
    assert 'aria-labelledby="chart-summary"' in page
    summary = re.search(r'<figcaption id="chart-summary">(.*?)</figcaption>', page, re.S).group(1)
    assert format_eur(order.total_cents + earlier.total_cents) in summary
    assert f"il {rome_date(now):%d/%m}" in summary
    table = page.split('<details id="chart-table">', 1)[1].split("</details>", 1)[0]
    assert table.count("<tr>") == 31  # the header and one row per day
    row = f'<td>{rome_date(now):%d/%m/%Y}</td><td class="num">{format_eur(order.total_cents)}</td>'
    assert row in table
    labels = re.findall(r'<li class="tick[^"]*">(\d\d/\d\d)</li>', page)
    assert labels[-1] == f"{rome_date(now):%d/%m}" and len(labels) == 15
