"""Cart, discount and checkout logic. Services flush; the caller commits."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime

from flask_babel import gettext as _
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import Date, bindparam, event, func, select, update
from sqlalchemy.orm import selectinload

from webapp.clock import format_day, now_utc, rome_date
from webapp.errors import CheckoutError, DiscountRefused, InvalidChoice, NotFound
from webapp.extensions import db
from webapp.i18n import lazy_gettext as _l
from webapp.money import format_eur
from webapp.shop.billing import buyer_now
from webapp.shop.models import (
    ORDER_TRANSITIONS,
    Cart,
    CartLine,
    Customer,
    CustomerType,
    DiscountCode,
    DiscountKind,
    DiscountRedemption,
    Order,
    OrderLine,
    OrderStatus,
    PaymentMethod,
    Product,
    ProductPrice,
)
from webapp.shop.pricing import DiscountTerms, PriceLine, Quote, quote
from webapp.statemachine import transition


def _new_token() -> str:
    return secrets.token_urlsafe(24)


# --- catalogue -------------------------------------------------------------------------------


_PRICE_CACHE = "price_changes"


def _price_changes() -> dict[int, list[tuple[date, int]]]:
    """Every scheduled price change by product, read once per transaction (a short table)."""
    cache = db.session.info.get(_PRICE_CACHE)
    if cache is None:
        cache = {}
        rows = db.session.execute(
            select(
                ProductPrice.product_id,
                ProductPrice.effective_from,
                ProductPrice.yearly_price_cents,
            ).order_by(ProductPrice.effective_from)
        )
        for product_id, day, cents in rows:
            cache.setdefault(product_id, []).append((day, cents))
        db.session.info[_PRICE_CACHE] = cache
    return cache


def forget_prices() -> None:
    """Drop the cached price changes (after adding one in this transaction)."""
    db.session.info.pop(_PRICE_CACHE, None)


@event.listens_for(FlaskSession, "after_commit")
@event.listens_for(FlaskSession, "after_rollback")
def _forget_prices_at_transaction_end(session) -> None:
    session.info.pop(_PRICE_CACHE, None)


def price_on(product: Product, day: date) -> int:
    """The yearly price (cents, net of VAT) valid on `day`: the latest change in force that day,
    else the product's own price. One query per transaction, whatever the number of calls."""
    return list_price_on(product.id, product.yearly_price_cents, day)


def list_price_on(product_id: int, own_price_cents: int, day: date) -> int:
    """price_on from plain values (the renewal engine's batches read rows, not objects)."""
    price = own_price_cents
    for effective_from, cents in _price_changes().get(product_id, []):
        if effective_from > day:
            break
        price = cents
    return price


def price_on_day_sql():
    """price_on in SQL, for a statement that reads `product`, at the day bound as :day: the
    latest scheduled change in force that day, else the product's own price."""
    product, price = Product.__table__, ProductPrice.__table__
    scheduled = (
        select(price.c.yearly_price_cents)
        .where(
            price.c.product_id == product.c.id,
            price.c.effective_from <= bindparam("day", type_=Date),
        )
        .order_by(price.c.effective_from.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(scheduled, product.c.yearly_price_cents)


def price_changes_after_day_sql():
    """For a statement that reads `product`: is a price change scheduled after :day?"""
    product, price = Product.__table__, ProductPrice.__table__
    return (
        select(func.count(price.c.id))
        .where(
            price.c.product_id == product.c.id,
            price.c.effective_from > bindparam("day", type_=Date),
        )
        .scalar_subquery()
    ) > 0


def price_changes(product: Product) -> list[tuple[date, int]]:
    return list(_price_changes().get(product.id, []))


def list_products() -> list[Product]:
    """Active products, grouped by service in catalogue order."""
    products = db.session.scalars(select(Product).where(Product.active)).all()
    order = list(type(products[0].kind)) if products else []
    return sorted(products, key=lambda p: (order.index(p.kind), p.yearly_price_cents, p.id))


def public_discounts(now: datetime) -> list[DiscountCode]:
    """Public codes valid today and not used up (the "Riepilogo degli sconti validi")."""
    stmt = (
        select(DiscountCode)
        .where(DiscountCode.public, DiscountCode.valid_from <= now, DiscountCode.valid_until > now)
        .where((DiscountCode.max_uses.is_(None)) | (DiscountCode.uses < DiscountCode.max_uses))
        .order_by(DiscountCode.valid_until, DiscountCode.code)
    )
    return list(db.session.scalars(stmt))


# --- cart ------------------------------------------------------------------------------------


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
    _cart_changed(cart)
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
    _cart_changed(cart)
    db.session.flush()
    return line


def _line_of(cart: Cart, line_id: int) -> CartLine:
    for line in cart.lines:
        if line.id == line_id:
            return line
    raise NotFound(_("Questo prodotto non è più nel carrello."))


def remove_line(cart: Cart, line_id: int) -> None:
    cart.lines.remove(_line_of(cart, line_id))
    if not any(_discount_applies(cart.discount_code, cart)):
        cart.discount_code_id = None
        cart.discount_code = None
    _cart_changed(cart)
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
    _cart_changed(cart)
    db.session.flush()
    return line


def set_payment_method(cart: Cart, value: PaymentMethod) -> None:
    """Card or bank transfer; a change turns auto-renewal on or off, so the cart changed."""
    if cart.payment_method is not value:
        cart.payment_method = value
        _cart_changed(cart)
    db.session.flush()


def _cart_changed(cart: Cart) -> None:
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
    _cart_changed(cart)
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


# --- discounts -------------------------------------------------------------------------------


def _discount_applies(code: DiscountCode | None, cart: Cart) -> list[bool]:
    if code is None:
        return []
    restricted = {p.id for p in code.products}
    return [not restricted or line.product_id in restricted for line in cart.lines]


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
    if not any(_discount_applies(code, cart)):
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
    _cart_changed(cart)
    db.session.flush()
    return code


def remove_discount(cart: Cart) -> None:
    cart.discount_code = None
    cart.discount_code_id = None
    _cart_changed(cart)
    db.session.flush()


# --- quotes and checkout ---------------------------------------------------------------------


@dataclass(frozen=True)
class CartView:
    """A cart with its quote, for templates: lines paired with their priced amounts."""

    cart: Cart | None
    quote: Quote

    @property
    def rows(self):
        lines = self.cart.lines if self.cart else []
        return list(zip(lines, self.quote.lines, strict=True))

    @property
    def empty(self) -> bool:
        return not self.rows


def price_cart(cart: Cart | None, day: date | None = None, split_payment: bool = False) -> CartView:
    """Price a cart with the list prices of `day` (today in Italy) and its discount code.

    `split_payment`: the buyer is a public administration, which pays the net only.
    """
    lines = cart.lines if cart else []
    day = day or rome_date(now_utc())
    price_lines = [PriceLine(ln.product_id, price_on(ln.product, day), ln.years) for ln in lines]
    terms = terms_of(cart.discount_code if cart else None)
    return CartView(cart, quote(price_lines, terms, split_payment=split_payment))


def order_for_token(customer_id: int, checkout_token: str) -> Order | None:
    """The order a checkout form with this token already created, if any."""
    return db.session.scalar(
        select(Order).where(
            Order.checkout_token == checkout_token, Order.customer_id == customer_id
        )
    )


#: The checkbox at checkout; its text and the time it was ticked are kept on the order.
IMMEDIATE_START_TEXT = _l(
    "Chiedo che i servizi siano attivati subito, prima della fine del periodo di recesso, "
    "e prendo atto che con l'attivazione perdo il diritto di recesso."
)


class QuoteChanged(CheckoutError):
    """The total computed now is not the one the page showed with this token."""

    def __init__(self, total_cents: int):
        super().__init__(
            _(
                "Il totale è cambiato: ora è %(total)s. Controlla l'ordine e conferma di nuovo.",
                total=format_eur(total_cents),
            )
        )
        self.total_cents = total_cents


def confirm_order(
    cart: Cart,
    customer_id: int,
    checkout_token: str,
    terms_accepted: bool,
    now: datetime,
    quoted_total_cents: int | None = None,
) -> Order:
    """Turn the cart into an order with amounts computed here and now; idempotent per token.

    A resubmitted form (same checkout token) returns the order the first submit created. The
    token binds the total the page quoted with it (`quoted_total_cents`, when the form sends
    it): a total changed meanwhile (a discount code edited, a price changed) raises
    QuoteChanged, and the caller gives the cart a new token with the new total.
    """
    existing = order_for_token(customer_id, checkout_token)
    if existing is not None:
        return existing
    _check_confirmable(cart, customer_id, checkout_token, terms_accepted, now)
    order = _order_of(cart, customer_id, checkout_token, now)
    if quoted_total_cents is not None and order.total_cents != quoted_total_cents:
        raise QuoteChanged(order.total_cents)
    db.session.add(order)
    db.session.flush()
    if cart.discount_code is not None:
        _redeem(cart.discount_code, customer_id, order)
    # The cart is spent: empty it and give it a new token for the next order.
    cart.lines.clear()
    cart.discount_code = None
    cart.discount_code_id = None
    _cart_changed(cart)
    db.session.flush()
    return order


def _check_confirmable(
    cart: Cart, customer_id: int, checkout_token: str, terms_accepted: bool, now: datetime
) -> None:
    """Refuse, with the reason, a cart that cannot become an order as it is."""
    if checkout_token != cart.checkout_token:
        raise CheckoutError(
            _("Il carrello è cambiato nel frattempo: controlla l'ordine e conferma di nuovo.")
        )
    if not cart.lines:
        raise CheckoutError(_("Il carrello è vuoto."))
    if cart.payment_method is None:
        raise CheckoutError(_("Scegli un metodo di pagamento."))
    if not terms_accepted:
        raise CheckoutError(
            _("Per confermare l'ordine devi accettare le condizioni generali di contratto.")
        )
    code = cart.discount_code
    if code is not None:
        check_discount(code, code.code, cart, customer_id, now)
    for line in cart.lines:
        if not line.product.active:
            raise CheckoutError(
                _(
                    "%(name)s non è più disponibile: rimuovilo dal carrello.",
                    name=line.product.name,
                )
            )
        if line.years not in line.product.allowed_years:
            raise CheckoutError(
                _("Frequenza di rinnovo non valida per %(name)s.", name=line.product.name)
            )


def _order_of(cart: Cart, customer_id: int, checkout_token: str, now: datetime) -> Order:
    """The order of the cart, priced on the server with the list prices of today, for the
    buyer of the billing data now (copied onto the order: one buyer per order)."""
    buyer = buyer_now(db.session.get(Customer, customer_id))
    buyer_type = CustomerType(buyer["customer_type"])
    today = rome_date(now)
    priced = price_cart(cart, today, buyer_type.split_payment)
    q = priced.quote
    code = cart.discount_code
    card = cart.payment_method is PaymentMethod.CARD
    order = Order(
        customer_id=customer_id,
        payment_method=cart.payment_method,
        discount_code=code.code if code else None,
        subtotal_cents=q.subtotal_cents,
        discount_cents=q.discount_cents,
        net_cents=q.net_cents,
        vat_cents=q.vat_cents,
        total_cents=q.total_cents,
        split_payment=buyer_type.split_payment,
        buyer=buyer,
        buyer_type=buyer_type,
        checkout_token=checkout_token,
        created_at=now,
    )
    for line, amounts in priced.rows:
        order.lines.append(
            OrderLine(
                product_id=line.product_id,
                product_name=line.product.name,
                kind=line.product.kind,
                years=line.years,
                yearly_price_cents=price_on(line.product, today),
                list_cents=amounts.list_cents,
                discount_cents=amounts.discount_cents,
                net_cents=amounts.net_cents,
                # A renewal line keeps the service's own Rinnovo automatico setting.
                auto_renew=card and line.product.auto_renewable and line.service_id is None,
                service_id=line.service_id,
                renews_from=line.renews_from,
                renews_to=line.renews_to,
            )
        )
    return order


def renew_token(cart: Cart) -> None:
    """A new checkout token for the cart: what the page shows now must be confirmed again."""
    _cart_changed(cart)
    db.session.flush()


def ask_immediate_start(order: Order, now: datetime) -> None:
    """The checkbox at checkout: start at once, losing the diritto di recesso (text and time
    recorded on the order; a resubmitted form keeps the first record)."""
    if order.immediate_start_at is None and order.status is OrderStatus.PENDING_PAYMENT:
        order.immediate_start_text = str(IMMEDIATE_START_TEXT)
        order.immediate_start_at = now
        db.session.flush()


def _redeem(code: DiscountCode, customer_id: int, order: Order) -> None:
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


def cancel_order(order: Order, now: datetime) -> None:
    """Cancel an unpaid order; its codice sconto use is given back to the customer."""
    transition(
        order, OrderStatus.CANCELLED, ORDER_TRANSITIONS, _("L'ordine non è più annullabile.")
    )
    db.session.execute(
        update(DiscountRedemption)
        .where(DiscountRedemption.order_id == order.id)
        .values(slot=None)
        .execution_options(synchronize_session=False)
    )


def get_order(order_id: int, customer_id: int) -> Order:
    """An order of this customer; another customer's order is simply not found."""
    order = db.session.get(Order, order_id)
    if order is None or order.customer_id != customer_id:
        raise NotFound(_("Ordine non trovato."))
    return order


def list_orders(customer_id: int) -> list[Order]:
    return list(
        db.session.scalars(
            select(Order)
            .where(Order.customer_id == customer_id)
            .options(selectinload(Order.lines))
            .order_by(Order.id.desc())
        )
    )
