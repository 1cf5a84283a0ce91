"""pricing.quote: years x price, discounts (percent, fixed, per product), exact allocation, VAT."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from webapp.money import vat_cents
from webapp.shop.pricing import DiscountTerms, PriceLine, quote


def test_n_years_cost_n_times_the_yearly_price():
    q = quote([PriceLine(1, 500, 1), PriceLine(2, 990, 3), PriceLine(3, 2500, 5)])
    assert [line.list_cents for line in q.lines] == [500, 2970, 12500]
    assert q.subtotal_cents == 15970
    assert q.discount_cents == 0
    assert q.net_cents == 15970
    assert q.vat_cents == vat_cents(15970) == 3513  # 3513,4
    assert q.total_cents == 15970 + 3513


def test_empty_quote_is_zero():
    q = quote([])
    assert (q.subtotal_cents, q.discount_cents, q.vat_cents, q.total_cents) == (0, 0, 0, 0)


def test_vat_is_computed_on_the_order_total_not_per_line():
    q = quote([PriceLine(1, 3, 1), PriceLine(2, 3, 1)])
    # per line 0,66 → 1 each would give 2; on the total 1,32 → 1
    assert q.vat_cents == 1
    assert q.total_cents == 7


def test_percent_discount_rounds_half_up():
    q = quote([PriceLine(1, 995, 1)], DiscountTerms(percent=10))
    assert q.discount_cents == 100  # 99,5 → 100
    q = quote([PriceLine(1, 994, 1)], DiscountTerms(percent=10))
    assert q.discount_cents == 99  # 99,4 → 99


def test_percent_discount_applies_to_every_year_bought():
    q = quote([PriceLine(1, 500, 3)], DiscountTerms(percent=10))
    assert q.lines[0].list_cents == 1500
    assert q.discount_cents == 150
    assert q.net_cents == 1350
    assert q.vat_cents == 297
    assert q.total_cents == 1647


def test_hundred_percent_discount_gives_zero():
    q = quote([PriceLine(1, 500, 2), PriceLine(2, 990, 1)], DiscountTerms(percent=100))
    assert q.net_cents == 0
    assert q.vat_cents == 0
    assert q.total_cents == 0


def test_fixed_discount_is_capped_at_the_eligible_amount():
    q = quote([PriceLine(1, 500, 1)], DiscountTerms(amount_cents=10000))
    assert q.discount_cents == 500
    assert q.net_cents == 0
    assert q.total_cents == 0


def test_fixed_discount_capped_at_eligible_lines_only():
    terms = DiscountTerms(amount_cents=10000, product_ids=frozenset({1}))
    q = quote([PriceLine(1, 500, 1), PriceLine(2, 3990, 1)], terms)
    assert [line.discount_cents for line in q.lines] == [500, 0]
    assert q.net_cents == 3990


def test_product_restricted_discount_only_on_eligible_lines():
    terms = DiscountTerms(percent=20, product_ids=frozenset({1, 3}))
    q = quote([PriceLine(1, 1000, 1), PriceLine(2, 1000, 1), PriceLine(3, 500, 1)], terms)
    assert [line.discount_cents for line in q.lines] == [200, 0, 100]
    assert q.discount_cents == 300
    assert q.net_cents == 2200


def test_restricted_discount_with_no_eligible_line_is_zero():
    terms = DiscountTerms(amount_cents=500, product_ids=frozenset({99}))
    q = quote([PriceLine(1, 1000, 1)], terms)
    assert q.discount_cents == 0
    assert q.total_cents == 1220


def test_fixed_discount_split_exactly_over_lines():
    q = quote([PriceLine(1, 100, 1)] * 3, DiscountTerms(amount_cents=100))
    assert sorted(line.discount_cents for line in q.lines) == [33, 33, 34]
    assert q.discount_cents == 100


def test_fixed_discount_split_in_proportion():
    q = quote([PriceLine(1, 500, 1), PriceLine(2, 1500, 1)], DiscountTerms(amount_cents=400))
    assert [line.discount_cents for line in q.lines] == [100, 300]


def test_percent_discount_total_is_rounded_once_then_allocated():
    # 10% of 3 x 5 cents = 1,5 → 2 in total (per line 0,5 each would round to 3).
    q = quote([PriceLine(i, 5, 1) for i in range(3)], DiscountTerms(percent=10))
    assert q.discount_cents == 2
    assert sum(line.discount_cents for line in q.lines) == 2


lines_strategy = st.lists(
    st.builds(
        PriceLine,
        product_id=st.integers(1, 6),
        yearly_price_cents=st.integers(0, 100_000),
        years=st.integers(1, 5),
    ),
    max_size=8,
)
discount_strategy = st.one_of(
    st.none(),
    st.builds(
        DiscountTerms,
        percent=st.integers(1, 100),
        product_ids=st.one_of(st.none(), st.frozensets(st.integers(1, 6), max_size=6)),
    ),
    st.builds(
        DiscountTerms,
        amount_cents=st.integers(1, 1_000_000),
        product_ids=st.one_of(st.none(), st.frozensets(st.integers(1, 6), max_size=6)),
    ),
)


@given(lines_strategy, discount_strategy)
def test_quote_properties(lines, discount):
    q = quote(lines, discount)
    assert len(q.lines) == len(lines)
    eligible = 0
    for line, priced in zip(lines, q.lines, strict=True):
        assert priced.list_cents == line.yearly_price_cents * line.years
        assert 0 <= priced.discount_cents <= priced.list_cents
        if discount is None or not discount.applies_to(line.product_id):
            assert priced.discount_cents == 0
        else:
            eligible += priced.list_cents
    assert sum(priced.discount_cents for priced in q.lines) == q.discount_cents
    assert q.discount_cents <= eligible
    if discount is not None and discount.percent is not None:
        assert q.discount_cents == (eligible * discount.percent * 2 + 100) // 200
    elif discount is not None:
        assert q.discount_cents == min(discount.amount_cents, eligible)
    assert q.net_cents == q.subtotal_cents - q.discount_cents >= 0
    assert q.vat_cents == vat_cents(q.net_cents) >= 0
    assert q.total_cents == q.net_cents + q.vat_cents >= 0


def test_a_fixed_discount_s_leftover_cents_go_by_largest_remainder_then_first_line():
    # 3 cents over 9,00 and 2,00: exact shares 2.45 and 0.55, so the leftover cent goes to the
    # second line (the larger remainder), not to the larger line.
    lines = [PriceLine(1, 900, 1), PriceLine(2, 200, 1)]
    priced = quote(lines, DiscountTerms(amount_cents=3))
    assert [line.discount_cents for line in priced.lines] == [2, 1]
    # equal remainders: the first line takes the cent, every time
    twins = quote([PriceLine(1, 1000, 1), PriceLine(2, 1000, 1)], DiscountTerms(amount_cents=1))
    assert [line.discount_cents for line in twins.lines] == [1, 0]


def test_a_discount_without_an_amount_or_percent_takes_nothing_off():
    for empty in (DiscountTerms(), DiscountTerms(amount_cents=0)):
        priced = quote([PriceLine(1, 1000, 2)], empty)
        assert (priced.discount_cents, priced.net_cents) == (0, 2000)
