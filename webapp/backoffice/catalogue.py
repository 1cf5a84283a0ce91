"""Administrators' tools: products, scheduled prices, discount codes, staff accounts."""

from __future__ import annotations

from datetime import date, datetime
from typing import TypeVar

from flask_babel import gettext as _
from sqlalchemy import func, select

from webapp.backoffice import auth
from webapp.backoffice.audit import record, snapshot
from webapp.backoffice.forms import (
    optional_int,
    parse_cents,
    parse_day,
    parse_int,
    start_of_day,
)
from webapp.backoffice.models import StaffUser
from webapp.clock import as_utc, format_day
from webapp.errors import DomainError, InvalidChoice
from webapp.extensions import db
from webapp.queryargs import whole_number
from webapp.shop.catalogue import forget_prices
from webapp.shop.models import (
    Customer,
    DiscountCode,
    DiscountKind,
    Product,
    ProductPrice,
    ServiceKind,
)
from webapp.shop.order_models import DiscountRedemption, Order

M = TypeVar("M")

PRODUCT_FIELDS = (
    "sku",
    "kind",
    "name",
    "description",
    "yearly_price_cents",
    "promotional",
    "active",
    "renewable_by_hand",
    "renew_before_days",
    "grace_days",
)
CODE_FIELDS = (
    "code",
    "description",
    "kind",
    "percent",
    "amount_cents",
    "valid_from",
    "valid_until",
    "max_uses",
    "max_uses_per_customer",
    "public",
)


def _create_or_update(model: type[M], row: M | None, values: dict) -> M:
    """A new row made of `values`, or `row` with `values` set on it; flushed."""
    if row is None:
        row = model(**values)
        db.session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    db.session.flush()
    return row


def list_products() -> list[Product]:
    return list(db.session.scalars(select(Product).order_by(Product.kind, Product.sku)))


def _product_values(form, creating: bool) -> dict:
    values = {
        "name": (form.get("name") or "").strip()[:120],
        "description": (form.get("description") or "").strip()[:500],
        "promotional": form.get("promotional") == "1",
        "active": form.get("active") == "1",
    }
    if not values["name"]:
        raise InvalidChoice(_("Il nome del prodotto è obbligatorio."))
    if form.get("life") == "1":  # the form's "Dopo la scadenza" fields (issue 28)
        values |= _life_values(form)
    if creating:
        sku = (form.get("sku") or "").strip().upper()[:40]
        if not sku:
            raise InvalidChoice(_("Il codice (SKU) è obbligatorio."))
        try:
            values["kind"] = ServiceKind(form.get("kind", ""))
        except ValueError:
            raise InvalidChoice(_("Scegli il servizio.")) from None
        if db.session.scalar(select(Product.id).where(Product.sku == sku)):
            raise DomainError(_("Esiste già un prodotto %(sku)s.", sku=sku))
        values["sku"] = sku
        values["yearly_price_cents"] = parse_cents(form.get("price"), _("Prezzo annuale"))
    return values


def _life_values(form) -> dict:
    """Renewable by hand, from how many days before the expiry, and the grace window after it."""
    before = optional_int(form.get("renew_before_days"), _("Giorni prima della scadenza"), 0, 3660)
    grace = optional_int(form.get("grace_days"), _("Giorni dopo la scadenza"), 0, 3660) or 0
    return {
        "renewable_by_hand": form.get("renewable_by_hand") == "1",
        "renew_before_days": before,
        "grace_days": grace,
    }


def save_product(product: Product | None, form, staff: StaffUser, rid: str) -> Product:
    """Create a product, or edit its name, description and flags (prices change by date)."""
    before = snapshot(product, *PRODUCT_FIELDS) if product else None
    values = _product_values(form, product is None)
    product = _create_or_update(Product, product, values)
    after = snapshot(product, *PRODUCT_FIELDS)
    action = "prodotto creato" if before is None else "prodotto modificato"
    record(staff, action, "product", product.id, before=before, after=after, request_id=rid)
    return product


def schedule_price(product: Product, form, staff: StaffUser, rid: str, today: date) -> ProductPrice:
    """A new yearly price from a day on (today or later): orders already made keep theirs,
    a renewal takes the price valid on its renewal day."""
    cents = parse_cents(form.get("price"), _("Prezzo annuale"))
    day = parse_day(form.get("effective_from"), _("Data di decorrenza"))
    if day < today:
        raise InvalidChoice(_("La data di decorrenza non può essere nel passato."))
    if cents <= 0:
        raise InvalidChoice(_("Il prezzo deve essere maggiore di zero."))
    exists = db.session.scalar(
        select(ProductPrice.id).where(
            ProductPrice.product_id == product.id, ProductPrice.effective_from == day
        )
    )
    if exists:
        raise DomainError(_("Esiste già un prezzo che decorre dal %(day)s.", day=f"{day:%d/%m/%Y}"))
    price = ProductPrice(
        product_id=product.id, yearly_price_cents=cents, effective_from=day, created_by=staff.email
    )
    db.session.add(price)
    db.session.flush()
    forget_prices()
    record(
        staff,
        "prezzo programmato",
        "product",
        product.id,
        after={"yearly_price_cents": cents, "effective_from": day},
        reason=(form.get("reason") or "").strip(),
        request_id=rid,
    )
    return price


# --- discount codes --------------------------------------------------------------------------


def list_codes() -> list[DiscountCode]:
    return list(db.session.scalars(select(DiscountCode).order_by(DiscountCode.valid_until.desc())))


def _code_values(form, creating: bool) -> dict:
    try:
        kind = DiscountKind(form.get("kind", ""))
    except ValueError:
        raise InvalidChoice(_("Scegli: percentuale o importo fisso.")) from None
    values = {
        "description": (form.get("description") or "").strip()[:200],
        "kind": kind,
        "percent": parse_int(form.get("percent"), _("Percentuale"), 1, 100)
        if kind is DiscountKind.PERCENT
        else None,
        "amount_cents": parse_cents(form.get("amount"), _("Importo dello sconto"))
        if kind is DiscountKind.FIXED
        else None,
        "valid_from": start_of_day(parse_day(form.get("valid_from"), _("Valido dal"))),
        "valid_until": start_of_day(parse_day(form.get("valid_until"), _("Valido fino al"))),
        "max_uses": optional_int(form.get("max_uses"), _("Utilizzi totali"), 1, 10**6),
        "max_uses_per_customer": 1 if form.get("once_per_customer") == "1" else None,
        "public": form.get("public") == "1",
    }
    if values["valid_until"] <= values["valid_from"]:
        raise InvalidChoice(_("La fine della validità deve seguire l'inizio."))
    if kind is DiscountKind.FIXED and not values["amount_cents"]:
        raise InvalidChoice(_("L'importo dello sconto deve essere maggiore di zero."))
    if creating:
        code = (form.get("code") or "").strip().upper()[:40]
        if not code.isalnum():
            raise InvalidChoice(_("Il codice sconto deve avere solo lettere e cifre."))
        if db.session.scalar(select(DiscountCode.id).where(func.upper(DiscountCode.code) == code)):
            raise DomainError(_("Il codice sconto %(code)s esiste già.", code=code))
        values["code"] = code
    return values


def save_code(code: DiscountCode | None, form, staff: StaffUser, rid: str) -> DiscountCode:
    """Create or edit a codice sconto: window, products, percent or amount, limits."""
    before = snapshot(code, *CODE_FIELDS) if code else None
    values = _code_values(form, code is None)
    product_ids = [n for n in map(whole_number, form.getlist("product_ids")) if n is not None]
    products = (
        list(db.session.scalars(select(Product).where(Product.id.in_(product_ids))))
        if product_ids
        else []
    )
    code = _create_or_update(DiscountCode, code, {**values, "products": products})
    after = {**snapshot(code, *CODE_FIELDS), "products": [p.sku for p in products]}
    action = "codice sconto creato" if before is None else "codice sconto modificato"
    record(staff, action, "discount_code", code.id, before=before, after=after, request_id=rid)
    return code


def disable_code(code: DiscountCode, staff: StaffUser, rid: str, now: datetime) -> None:
    """Disable = the validity ends now (checkout then says the code has expired)."""
    before = snapshot(code, "valid_until")
    if code.valid_until > now:
        code.valid_until = now
    db.session.flush()
    record(
        staff,
        "codice sconto disattivato",
        "discount_code",
        code.id,
        before=before,
        after=snapshot(code, "valid_until"),
        request_id=rid,
    )


def redemptions(code: DiscountCode) -> list[tuple[DiscountRedemption, Order, Customer]]:
    """The code's uses, newest first, each with its order (the number staff read) and customer."""
    return list(
        db.session.execute(
            select(DiscountRedemption, Order, Customer)
            .join(Order, Order.id == DiscountRedemption.order_id)
            .join(Customer, Customer.id == DiscountRedemption.customer_id)
            .where(DiscountRedemption.discount_code_id == code.id)
            .order_by(DiscountRedemption.id.desc())
        ).all()
    )


def code_validity(code: DiscountCode, now: datetime) -> str:
    """A code's validity in words: "valido", "scaduto", "esaurito", "dal 08/03/2027"."""
    if now < as_utc(code.valid_from):
        return _("dal %(day)s", day=format_day(code.valid_from))
    if now >= as_utc(code.valid_until):
        return _("scaduto")
    if code.max_uses is not None and code.uses >= code.max_uses:
        return _("esaurito")
    return _("valido")


# --- staff -----------------------------------------------------------------------------------


def list_staff() -> list[StaffUser]:
    return list(db.session.scalars(select(StaffUser).order_by(StaffUser.email)))


def create_staff(form, staff: StaffUser, rid: str) -> StaffUser:
    """A new staff account (password and TOTP set by the member's activation link), audited."""
    fields = [form.get(name, "") for name in ("email", "name", "role")]
    member = auth.create_staff(*fields)
    record(
        staff,
        "account staff creato",
        "staff",
        member.id,
        after={"email": member.email, "role": member.role},
        request_id=rid,
    )
    return member


def set_staff_active(target: StaffUser, active: bool, staff: StaffUser, rid: str) -> None:
    if target.id == staff.id:
        raise InvalidChoice(_("Non puoi disattivare il tuo stesso account."))
    before = snapshot(target, "active")
    target.active = active
    db.session.flush()
    if not active:
        auth.end_sessions(target.id)  # a deactivated member's open sessions end now
    action = "account staff riattivato" if active else "account staff disattivato"
    record(
        staff, action, "staff", target.id, before=before, after={"active": active}, request_id=rid
    )
