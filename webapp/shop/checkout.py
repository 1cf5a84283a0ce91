"""Checkout: a priced cart becomes an order, once per checkout token, at the total shown.

Services flush; the caller commits. Guard: the order's unique checkout token (a twin confirm
finds the first order, order_for_token), and a total that changed since the page raises
QuoteChanged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask_babel import gettext as _
from sqlalchemy import select

from webapp.clock import now_utc, rome_date
from webapp.errors import CheckoutError
from webapp.extensions import db
from webapp.i18n import lazy_gettext as _l
from webapp.money import format_eur
from webapp.shop.billing import buyer_now
from webapp.shop.cart import cart_changed
from webapp.shop.catalogue import price_on
from webapp.shop.discounts import check_discount, redeem, terms_of
from webapp.shop.models import Cart, Customer, CustomerType, PaymentMethod
from webapp.shop.order_models import Order, OrderLine, OrderStatus
from webapp.shop.pricing import PriceLine, Quote, quote


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
        redeem(cart.discount_code, customer_id, order)
    # The cart is spent: empty it and give it a new token for the next order.
    cart.lines.clear()
    cart.discount_code = None
    cart.discount_code_id = None
    cart_changed(cart)
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
    cart_changed(cart)
    db.session.flush()


def ask_immediate_start(order: Order, now: datetime) -> None:
    """The checkbox at checkout: start at once, losing the diritto di recesso (text and time
    recorded on the order; a resubmitted form keeps the first record)."""
    if order.immediate_start_at is None and order.status is OrderStatus.PENDING_PAYMENT:
        order.immediate_start_text = str(IMMEDIATE_START_TEXT)
        order.immediate_start_at = now
        db.session.flush()
