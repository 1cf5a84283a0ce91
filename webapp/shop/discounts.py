"""Codici sconto: which apply to a cart, applying and removing one, and their use at checkout.

Services flush; the caller commits. Guard of a use: a compare-and-set increment of
`uses` (the total limit) and the unique `uq_redemption_slot` (the per-customer limit)."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, select, update

from webapp.clock import format_day
from webapp.errors import CheckoutError, DiscountRefused
from webapp.extensions import db
from webapp.shop.cart import cart_changed, discount_applies
from webapp.shop.models import Cart, DiscountCode, DiscountKind
from webapp.shop.order_models import DiscountRedemption, Order, OrderStatus
from webapp.shop.pricing import DiscountTerms


def public_discounts(now: datetime) -> list[DiscountCode]:
    """Public codes valid today and not used up (the "Riepilogo degli sconti validi")."""
    stmt = (
        select(DiscountCode)
        .where(DiscountCode.public, DiscountCode.valid_from <= now, DiscountCode.valid_until > now)
        .where((DiscountCode.max_uses.is_(None)) | (DiscountCode.uses < DiscountCode.max_uses))
        .order_by(DiscountCode.valid_until, DiscountCode.code)
    )
    return list(db.session.scalars(stmt))


def terms_of(code: DiscountCode | None) -> DiscountTerms | None:
    if code is None:
        return None
    restricted = frozenset(p.id for p in code.products) or None
    if code.kind is DiscountKind.PERCENT:
        return DiscountTerms(percent=code.percent, product_ids=restricted)
    return DiscountTerms(amount_cents=code.amount_cents, product_ids=restricted)


def check_discount(
    code: DiscountCode | None, raw: str, cart: Cart, customer_id: int, now: datetime
) -> DiscountCode:
    """Return the code if it applies to this cart and customer now, else say why not."""
    if code is None:
        raise DiscountRefused(_("Il codice sconto «%(code)s» non esiste.", code=raw))
    if now < code.valid_from:
        raise DiscountRefused(
            _(
                "Il codice sconto %(code)s sarà valido dal %(day)s.",
                code=code.code,
                day=format_day(code.valid_from),
            )
        )
    if now >= code.valid_until:
        raise DiscountRefused(
            _(
                "Il codice sconto %(code)s è scaduto il %(day)s.",
                code=code.code,
                day=format_day(code.valid_until),
            )
        )
    if not any(discount_applies(code, cart)):
        raise DiscountRefused(
            _("Il codice sconto %(code)s non si applica ai prodotti nel carrello.", code=code.code)
        )
    if code.max_uses is not None and code.uses >= code.max_uses:
        raise DiscountRefused(
            _(
                "Il codice sconto %(code)s ha raggiunto il numero massimo di utilizzi.",
                code=code.code,
            )
        )
    if code.max_uses_per_customer is not None:
        used = db.session.scalar(
            select(func.count(DiscountRedemption.id))
            .join(Order, Order.id == DiscountRedemption.order_id)
            .where(
                DiscountRedemption.discount_code_id == code.id,
                DiscountRedemption.customer_id == customer_id,
                Order.status != OrderStatus.CANCELLED,
            )
        )
        if used >= code.max_uses_per_customer:
            raise DiscountRefused(
                _("Hai già utilizzato il codice sconto %(code)s.", code=code.code)
            )
    return code


def apply_discount(cart: Cart, raw: str, customer_id: int, now: datetime) -> DiscountCode:
    """Apply a codice sconto to the cart, or raise DiscountRefused with the reason."""
    text = (raw or "").strip().upper()
    if not text:
        raise DiscountRefused(_("Inserisci un codice sconto."))
    code = db.session.scalar(select(DiscountCode).where(func.upper(DiscountCode.code) == text[:40]))
    check_discount(code, raw.strip(), cart, customer_id, now)
    cart.discount_code = code
    cart_changed(cart)
    db.session.flush()
    return code


def remove_discount(cart: Cart) -> None:
    cart.discount_code = None
    cart.discount_code_id = None
    cart_changed(cart)
    db.session.flush()


def redeem(code: DiscountCode, customer_id: int, order: Order) -> None:
    # The guarded increment makes the total limit hold even for two orders at the same instant.
    result = db.session.execute(
        update(DiscountCode)
        .where(DiscountCode.id == code.id)
        .where((DiscountCode.max_uses.is_(None)) | (DiscountCode.uses < DiscountCode.max_uses))
        .values(uses=DiscountCode.uses + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise CheckoutError(
            _(
                "Il codice sconto %(code)s ha raggiunto il numero massimo di utilizzi.",
                code=code.code,
            )
        )
    db.session.add(
        DiscountRedemption(
            discount_code_id=code.id,
            customer_id=customer_id,
            order_id=order.id,
            slot=_redemption_slot(code, customer_id),
        )
    )
    db.session.refresh(code)


def _redemption_slot(code: DiscountCode, customer_id: int) -> int | None:
    """The lowest free use number of a code limited per customer (None: no limit).

    A twin confirm picks the same number; uq_redemption_slot refuses the second insert, and
    on the rerun that number is taken: the next one is used, or the code is refused.
    """
    if code.max_uses_per_customer is None:
        return None
    taken = set(
        db.session.scalars(
            select(DiscountRedemption.slot).where(
                DiscountRedemption.discount_code_id == code.id,
                DiscountRedemption.customer_id == customer_id,
                DiscountRedemption.slot.is_not(None),
            )
        )
    )
    free = [n for n in range(1, code.max_uses_per_customer + 1) if n not in taken]
    if not free:
        raise DiscountRefused(_("Hai già utilizzato il codice sconto %(code)s.", code=code.code))
    return free[0]
