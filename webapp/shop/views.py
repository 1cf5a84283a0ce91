"""Catalogue, cart and checkout routes: thin, each renders a page or its htmx fragment."""

from __future__ import annotations

from contextlib import suppress

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from webapp.clock import now_utc, rome_date
from webapp.errors import CheckoutError, DiscountRefused, InvalidChoice, NotFound
from webapp.htmx import is_htmx, redirect_to, render, render_cached
from webapp.queryargs import whole_number
from webapp.shop import accounts, billing, discounts
from webapp.shop import cart as shop_cart
from webapp.shop import catalogue as shop_catalogue
from webapp.shop import checkout as shop_checkout
from webapp.shop.cartview import cart_rows
from webapp.shop.forms import (
    BillingForm,
    ConfirmForm,
    DiscountForm,
    PaymentMethodForm,
    YearsForm,
)
from webapp.shop.models import Cart, PaymentMethod
from webapp.shop.structured import catalogue_jsonld
from webapp.transaction import commit, once_more_after_conflict, rollback

bp = Blueprint("shop", __name__)


def _customer_id() -> int | None:
    return current_user.id if current_user.is_authenticated else None


def _cart(create: bool = False):
    if create:
        cart = shop_cart.get_or_create_cart(_customer_id(), session.get("cart_token"))
        if cart.anon_token:
            session["cart_token"] = cart.anon_token
        return cart
    return shop_cart.get_cart(_customer_id(), session.get("cart_token"))


@bp.get("/")
def catalogue():
    products = shop_catalogue.list_products()
    today = rome_date(now_utc())
    prices = {p.id: shop_catalogue.price_on(p, today) for p in products}
    page = url_for("shop.catalogue", _external=True)
    jsonld = catalogue_jsonld(products, prices, lambda p: f"{page}#product-{p.sku.lower()}")
    return render_template("shop/catalogue.html", products=products, prices=prices, jsonld=jsonld)


@bp.get("/sconti")
def list_discounts():
    return render_template("shop/discounts.html", discounts=discounts.public_discounts(now_utc()))


@bp.get("/condizioni-generali")
def terms():
    return render_template("shop/terms.html")


# --- cart ----------------------------------------------------------------------------------


@bp.get("/carrello")
def view_cart():
    today = rome_date(now_utc())
    view = cart_rows(_customer_id(), session.get("cart_token"), today)
    # The fragment shows nothing but `view`: the same rows (prices included) render the same.
    return render_cached("shop/cart.html", "shop/_cart.html", view, view=view)


@bp.post("/carrello/aggiungi/<int:product_id>")
def add_item(product_id: int):
    cart = _cart(create=True)
    try:
        line = shop_cart.add_product(cart, product_id, current_app.config["CART_MAX_LINES"])
    except shop_cart.CartFull as exc:
        rollback()
        return _cart_full(product_id, exc.message)
    commit()
    if not is_htmx():
        flash(_("%(name)s aggiunto al carrello.", name=line.product.name), "success")
        return redirect_to(url_for("shop.view_cart"))
    response = make_response(
        render_template("shop/_added.html", product=line.product, cart_count=len(cart.lines))
    )
    response.vary.add("HX-Request")  # the same URL redirects a plain request
    return response


def _cart_full(product_id: int, message: str):
    """422: the message where the button was (htmx), or on the cart page."""
    if not is_htmx():
        flash(message, "error")
        return redirect_to(url_for("shop.view_cart"))
    response = make_response(
        render_template("shop/_cart_full.html", product_id=product_id, message=message), 422
    )
    response.vary.add("HX-Request")
    return response


@bp.post("/carrello/righe/<int:line_id>/rimuovi")
def remove_item(line_id: int):
    cart = _cart()
    if cart is not None:
        # Already gone (a double click): the cart is shown as it is.
        with suppress(NotFound):
            shop_cart.remove_line(cart, line_id)
        commit()
    view = shop_checkout.price_cart(cart)
    # The page has the badge in its header already; only the fragment carries it out of band.
    return render(
        "shop/cart.html",
        "shop/_cart.html",
        view=view,
        oob_badge=is_htmx(),
        cart_count=len(view.rows),
    )


# --- checkout ------------------------------------------------------------------------------


def _checkout_response(primary: str, status: int = 200, cart: Cart | None = None, **context):
    cart = cart if cart is not None else _cart(create=True)
    profile = billing.get_profile(current_user.id)
    split = bool(profile and profile.split_payment)
    context.setdefault("view", shop_checkout.price_cart(cart, split_payment=split))
    if "billing_form" not in context:
        user = current_user
        context["billing_form"] = BillingForm.for_customer(profile, user.name, user.tax_code)
    context.setdefault("immediate_start_text", shop_checkout.IMMEDIATE_START_TEXT)
    return render(
        "shop/checkout.html",
        "shop/_checkout_update.html",
        status=status,
        primary=primary,
        cart=cart,
        methods=list(PaymentMethod),
        profile=profile,
        **context,
    )


@bp.get("/checkout")
@login_required
def checkout():
    cart = _cart(create=True)
    if not cart.lines:
        commit()  # a cart made just now, with its checkout token
        flash(_("Il carrello è vuoto: scegli un prodotto dal catalogo."), "info")
        return redirect_to(url_for("shop.catalogue"))
    return _checkout_response("items", cart=cart)  # a cart with lines was there already


@bp.post("/checkout/metodo")
@login_required
def choose_payment_method():
    cart = _cart(create=True)
    form = PaymentMethodForm()
    if not form.validate():
        return _checkout_response("items", 422, items_error=form.first_error())
    shop_cart.set_payment_method(cart, form.payment_method.data)
    commit()
    return _checkout_response("items")


@bp.post("/checkout/righe/<int:line_id>/anni")
@login_required
def choose_years(line_id: int):
    cart = _cart(create=True)
    try:
        shop_cart.set_years(cart, line_id, YearsForm().years.data)
    except (InvalidChoice, NotFound) as exc:
        rollback()
        return _checkout_response("items", 422, items_error=exc.message)
    commit()
    return _checkout_response("items")


@bp.post("/checkout/sconto")
@login_required
def apply_discount():
    cart = _cart(create=True)
    raw = DiscountForm().code.data or ""
    try:
        discounts.apply_discount(cart, raw, current_user.id, now_utc())
    except DiscountRefused as exc:
        rollback()
        return _checkout_response("discount", 422, discount_error=exc.message, code_value=raw)
    commit()
    return _checkout_response("discount", discount_applied=True)


@bp.post("/checkout/sconto/rimuovi")
@login_required
def remove_discount():
    discounts.remove_discount(_cart(create=True))
    commit()
    return _checkout_response("discount")


@bp.post("/checkout/fatturazione")
@login_required
def save_billing():
    """Dati di fatturazione asked at the first checkout (edited later in the customer area)."""
    form = BillingForm()
    if not form.validate():
        return _checkout_response("billing", 422, billing_form=form, billing_editing=True)
    billing.save_profile(current_user.id, form.billing_data())
    commit()
    return _checkout_response("billing")


@bp.post("/checkout/conferma")
@login_required
def confirm_order():
    form = ConfirmForm()
    token, accepted = form.checkout_token.data or "", form.terms.data
    immediate = form.immediate_start.data
    quoted = _quoted_total(form.quoted_total.data)
    refused = _save_billing_sent_with_confirm(accepted, immediate)
    if refused is not None:
        return refused
    try:
        # The same form submitted twice at once: the second run finds the twin's order.
        order = once_more_after_conflict(lambda: _place_order(token, accepted, immediate, quoted))
    except (CheckoutError, DiscountRefused) as exc:
        rollback()
        # A twin submit may have spent the cart (or the once-per-customer code) between our
        # reads: its order is ours too.
        order = shop_checkout.order_for_token(current_user.id, token)
        if order is None:
            return _confirm_refused(exc, accepted, immediate)
    return redirect_to(url_for("orders.view_order", order_id=order.id))


def _save_billing_sent_with_confirm(accepted: bool, immediate: bool):
    """Billing data filled in but not saved: "Conferma" saves them first (committed on their
    own, as "Salva" would), or answers 422 with each field's error and nothing confirmed."""
    if "customer_type" not in request.form:
        return None  # no billing fields on the page: the saved data (or none) decide
    form = BillingForm()
    if not form.validate():
        message = _("Inserisci i dati di fatturazione: controlla i campi evidenziati.")
        return _checkout_response(
            "confirm",
            422,
            confirm_error=message,
            billing_form=form,
            billing_editing=True,
            billing_oob=True,
            terms=accepted,
            immediate=immediate,
        )
    data = form.billing_data()
    # Guard: billing_profile.customer_id is unique; a twin confirm that inserted first is found
    # by the second run, which updates it with the same data.
    once_more_after_conflict(lambda: _save_profile_now(data))
    return None


def _save_profile_now(data) -> None:
    billing.save_profile(current_user.id, data)
    commit()


def _quoted_total(raw: str | None) -> int | None:
    """The total the confirm form was rendered with (None: a form without it)."""
    text = (raw or "").strip()
    if not text:
        return None
    number = whole_number(text)  # ASCII digits only: "⁵".isdigit() is True, int("⁵") raises
    return number if number is not None and len(text) <= 12 else -1


def _place_order(token: str, accepted: bool, immediate: bool, quoted: int | None = None):
    """The order of the cart as confirmed (billing data first), committed."""
    accounts.require_confirmed(current_user.id)
    billing.require_profile(current_user.id)
    cart = _cart(create=True)
    now = now_utc()
    order = shop_checkout.confirm_order(cart, current_user.id, token, accepted, now, quoted)
    if immediate:
        shop_checkout.ask_immediate_start(order, now)
    commit()
    return order


def _confirm_refused(exc: CheckoutError | DiscountRefused, accepted: bool, immediate: bool):
    message = exc.message
    if isinstance(exc, shop_checkout.QuoteChanged):
        shop_checkout.renew_token(_cart(create=True))  # the new total, with a new token
        commit()
    if isinstance(exc, DiscountRefused):
        # Valid when applied, not now (expired, used up meanwhile): take it off the cart, so
        # the page shows the real total and a new token, and the customer confirms again.
        discounts.remove_discount(_cart(create=True))
        commit()
        message += " " + _(
            "L'abbiamo tolto dal carrello: controlla il nuovo totale e conferma di nuovo l'ordine."
        )
    # Billing saved with this confirm: the page shows them as saved (the summary).
    saved = "customer_type" in request.form
    return _checkout_response(
        "confirm",
        422,
        confirm_error=message,
        terms=accepted,
        immediate=immediate,
        billing_oob=saved,
    )
