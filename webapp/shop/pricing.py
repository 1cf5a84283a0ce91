"""Prices, discounts and VAT: pure functions over integer cents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from webapp.money import VAT_RATE_PERCENT, round_half_up_div, vat_cents


@dataclass(frozen=True)
class PriceLine:
    """What pricing needs to know of a line."""

    product_id: int
    yearly_price_cents: int
    years: int


@dataclass(frozen=True)
class DiscountTerms:
    """A discount reduced to its arithmetic: percent or fixed, on some products or all."""

    percent: int | None = None
    amount_cents: int | None = None
    product_ids: frozenset[int] | None = None  # None: every product

    def applies_to(self, product_id: int) -> bool:
        return self.product_ids is None or product_id in self.product_ids


@dataclass(frozen=True)
class QuoteLine:
    list_cents: int
    discount_cents: int
    yearly_cents: int  # the list price of one year it was priced with (what a menu quotes)

    @property
    def net_cents(self) -> int:
        return self.list_cents - self.discount_cents


@dataclass(frozen=True)
class Quote:
    lines: tuple[QuoteLine, ...]
    vat_rate_percent: int
    # Scissione dei pagamenti (public administrations): VAT is computed and shown, not paid.
    split_payment: bool = False

    @property
    def subtotal_cents(self) -> int:
        return sum(line.list_cents for line in self.lines)

    @property
    def discount_cents(self) -> int:
        return sum(line.discount_cents for line in self.lines)

    @property
    def net_cents(self) -> int:
        return self.subtotal_cents - self.discount_cents

    @property
    def vat_cents(self) -> int:
        # VAT on the order's taxable total, as on an Italian invoice (one rate).
        return vat_cents(self.net_cents, self.vat_rate_percent)

    @property
    def document_total_cents(self) -> int:
        """Net + VAT: the invoice's ImportoTotaleDocumento."""
        return self.net_cents + self.vat_cents

    @property
    def total_cents(self) -> int:
        """What the customer pays: the net only under split payment."""
        return self.net_cents if self.split_payment else self.document_total_cents


def _allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Split `amount` in proportion to `weights`, exactly (largest remainder)."""
    total = sum(weights)
    if total == 0:
        return [0] * len(weights)
    shares = [amount * w // total for w in weights]
    remainders = sorted(
        range(len(weights)), key=lambda i: (amount * weights[i] % total, -i), reverse=True
    )
    for i in remainders[: amount - sum(shares)]:
        shares[i] += 1
    return shares


def quote(
    lines: Sequence[PriceLine],
    discount: DiscountTerms | None = None,
    vat_rate_percent: int = VAT_RATE_PERCENT,
    split_payment: bool = False,
) -> Quote:
    """Price the lines: N years cost N x the yearly price, then the discount, then VAT.

    With `split_payment` (a public administration) the total to pay leaves the VAT out.
    """
    list_amounts = [line.yearly_price_cents * line.years for line in lines]
    eligible = [
        amount if discount and discount.applies_to(line.product_id) else 0
        for line, amount in zip(lines, list_amounts, strict=True)
    ]
    if discount is None:
        discounts = [0] * len(lines)
    elif discount.percent is not None:
        total = round_half_up_div(sum(eligible) * discount.percent, 100)
        discounts = _allocate(total, eligible)
    else:
        discounts = _allocate(min(discount.amount_cents or 0, sum(eligible)), eligible)
    return Quote(
        lines=tuple(
            QuoteLine(a, d, line.yearly_price_cents)
            for a, d, line in zip(list_amounts, discounts, lines, strict=True)
        ),
        vat_rate_percent=vat_rate_percent,
        split_payment=split_payment,
    )
