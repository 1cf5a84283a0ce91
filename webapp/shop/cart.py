"""The cart: lines, years, payment method, the anonymous cart claimed at login.

Services flush; the caller commits. Every change gives the cart a new checkout token
(`cart_changed`), so a checkout page confirms only what it showed."""

from __future__ import annotations

import secrets
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, select

from webapp.errors import InvalidChoice, NotFound
from webapp.extensions import db
from webapp.shop.models import Cart, CartLine, DiscountCode, PaymentMethod, Product


def _new_token() -> str:
    return secrets.token_urlsafe(24)


def get_cart(customer_id: int | None, anon_token: str | None) -> Cart | None:
    """The customer's cart, or the anonymous visitor's."""
    if customer_id is not None:
        return db.session.scalar(select(Cart).where(Cart.customer_id == customer_id))
    if anon_token:
        return db.session.scalar(select(Cart).where(Cart.anon_token == anon_token))
    return None


def get_or_create_cart(customer_id: int | None, anon_token: str | None) -> Cart:
    cart = get_cart(customer_id, anon_token)
    if cart is None:
        cart = Cart(
            customer_id=customer_id,
            anon_token=None if customer_id is not None else (anon_token or _new_token()),
            checkout_token=_new_token(),
        )
        db.session.add(cart)
        db.session.flush()
    return cart


class CartFull(InvalidChoice):
    """The cart already has as many lines as one order may have."""


DEFAULT_MAX_LINES = 30


def add_product(cart: Cart, product_id: int, max_lines: int = DEFAULT_MAX_LINES) -> CartLine:
    """Add one product (each line becomes one service) with the shortest duration.

    At most `max_lines` lines (CartFull beyond): a real order has a handful, and every line is
    a row on each page of the checkout.
    """
    product = db.session.get(Product, product_id)
    if product is None or not product.active:
        raise NotFound(_("Prodotto non trovato."))
    if len(cart.lines) >= max_lines:
        raise CartFull(
            _(
                "Il carrello può contenere al massimo %(num)d prodotti: completa questo ordine "
                "o togline qualcuno prima di aggiungerne altri.",
                num=max_lines,
            )
        )
    line = CartLine(product=product, years=1)
    cart.lines.append(line)
    cart_changed(cart)
    db.session.flush()
    return line


def add_renewal_line(
    cart: Cart, product: Product, service_id: int, renews_from: datetime, years: int
) -> CartLine:
    """Put the renewal of a service in the cart (issue 28): a line that extends that service
    from `renews_from` instead of starting a new one. The renewals package checks first that
    the service can be renewed; a second "Rinnova" updates the same line (unique per service).
    """
    years = valid_years(product, years)
    line = next((ln for ln in cart.lines if ln.service_id == service_id), None)
    if line is None:
        line = CartLine(product=product, service_id=service_id)
        cart.lines.append(line)
    line.years, line.renews_from = years, renews_from
    cart_changed(cart)
    db.session.flush()
    return line


def _line_of(cart: Cart, line_id: int) -> CartLine:
    for line in cart.lines:
        if line.id == line_id:
            return line
    raise NotFound(_("Questo prodotto non è più nel carrello."))


def remove_line(cart: Cart, line_id: int) -> None:
    cart.lines.remove(_line_of(cart, line_id))
    if not any(discount_applies(cart.discount_code, cart)):
        cart.discount_code_id = None
        cart.discount_code = None
    cart_changed(cart)
    db.session.flush()


def valid_years(product: Product, years: int) -> int:
    """Frequenza di rinnovo: the years if the product allows them, else InvalidChoice."""
    allowed = product.allowed_years
    if years not in allowed:
        raise InvalidChoice(
            _(
                "Frequenza di rinnovo non valida per %(name)s: "
                "scegli da %(first)d a %(last)d anni.",
                name=product.name,
                first=allowed[0],
                last=allowed[-1],
            )
        )
    return years


def set_years(cart: Cart, line_id: int, years: int) -> CartLine:
    """Frequenza di rinnovo of a cart line: both what is bought now and each renewal."""
    line = _line_of(cart, line_id)
    line.years = valid_years(line.product, years)
    cart_changed(cart)
    db.session.flush()
    return line


def set_payment_method(cart: Cart, value: PaymentMethod) -> None:
    """Card or bank transfer; a change turns auto-renewal on or off, so the cart changed."""
    if cart.payment_method is not value:
        cart.payment_method = value
        cart_changed(cart)
    db.session.flush()


def cart_changed(cart: Cart) -> None:
    # A confirm form rendered before this change must not create an order for the old cart.
    cart.checkout_token = _new_token()


def claim_anonymous_cart(
    anon_token: str | None, customer_id: int, max_lines: int = DEFAULT_MAX_LINES
) -> None:
    """After login, the visitor's cart lines move into the customer's cart (up to the cap)."""
    anon = get_cart(None, anon_token) if anon_token else None
    if anon is None or not anon.lines:
        return
    cart = get_or_create_cart(customer_id, None)
    for line in list(anon.lines):
        anon.lines.remove(line)
        # a renewal line is only ever a customer's; the cart keeps its line cap
        if line.service_id is None and len(cart.lines) < max_lines:
            cart.lines.append(CartLine(product_id=line.product_id, years=line.years))
    db.session.delete(anon)
    cart_changed(cart)
    db.session.flush()


def cart_count(customer_id: int | None, anon_token: str | None) -> int:
    """The header badge: how many lines the cart has, counted by the database (one statement)."""
    if customer_id is not None:
        owner = Cart.customer_id == customer_id
    elif anon_token:
        owner = Cart.anon_token == anon_token
    else:
        return 0
    return db.session.scalar(
        select(func.count(CartLine.id)).join(Cart, Cart.id == CartLine.cart_id).where(owner)
    )


def discount_applies(code: DiscountCode | None, cart: Cart) -> list[bool]:
    if code is None:
        return []
    restricted = {p.id for p in code.products}
    return [not restricted or line.product_id in restricted for line in cart.lines]
