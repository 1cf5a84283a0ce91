"""Back office, administrators only: catalogue and prices, discount codes, staff accounts."""

from __future__ import annotations

from flask import flash, request, url_for
from flask_babel import gettext as _

from webapp.backoffice import auth
from webapp.backoffice import catalogue as cat
from webapp.backoffice.audit import record
from webapp.backoffice.blueprint import admin_required, bp, current_staff, get_or_404, request_id
from webapp.backoffice.models import StaffRole, StaffUser
from webapp.clock import now_utc, rome_date
from webapp.errors import DomainError
from webapp.htmx import redirect_to, render
from webapp.shop.models import DiscountCode, DiscountKind, Product, ServiceKind
from webapp.shop.services import price_changes, price_on
from webapp.transaction import commit, rollback


def _product_page(product: Product | None, status: int = 200, error: str | None = None):
    today = rome_date(now_utc())
    return render(
        "backoffice/product.html",
        "backoffice/product.html",
        status=status,
        product=product,
        kinds=list(ServiceKind),
        current=price_on(product, today) if product else None,
        changes=price_changes(product) if product else [],
        today=today.isoformat(),
        error=error,
    )


@bp.get("/catalogo")
@admin_required
def list_products():
    today = rome_date(now_utc())
    products = cat.list_products()
    prices = {p.id: price_on(p, today) for p in products}
    return render(
        "backoffice/catalogue.html", "backoffice/catalogue.html", products=products, prices=prices
    )


@bp.route("/catalogo/nuovo", methods=["GET", "POST"])
@bp.route("/catalogo/<int:product_id>", methods=["GET", "POST"])
@admin_required
def edit_product(product_id: int | None = None):
    """Create a product, or edit it (name, description, promotional, active)."""
    product = get_or_404(Product, product_id) if product_id else None
    if request.method == "GET":
        return _product_page(product)
    try:
        product = cat.save_product(product, request.form, current_staff(), request_id())
    except DomainError as exc:
        rollback()
        return _product_page(product, 422, exc.message)
    commit()
    flash(_("Prodotto %(sku)s salvato.", sku=product.sku), "success")
    return redirect_to(url_for("backoffice.edit_product", product_id=product.id))


@bp.post("/catalogo/<int:product_id>/prezzi")
@admin_required
def schedule_price(product_id: int):
    """A new yearly price with its effective date (orders already made keep their amounts)."""
    product = get_or_404(Product, product_id)
    try:
        cat.schedule_price(
            product, request.form, current_staff(), request_id(), rome_date(now_utc())
        )
    except DomainError as exc:
        rollback()
        return _product_page(product, 422, exc.message)
    commit()
    flash(_("Nuovo prezzo programmato."), "success")
    return redirect_to(url_for("backoffice.edit_product", product_id=product.id))


# --- discount codes --------------------------------------------------------------------------


def _code_page(code: DiscountCode | None, status: int = 200, error: str | None = None):
    return render(
        "backoffice/code.html",
        "backoffice/code.html",
        status=status,
        code=code,
        kinds=list(DiscountKind),
        products=cat.list_products(),
        redemptions=cat.redemptions(code) if code else [],
        error=error,
    )


@bp.get("/sconti")
@admin_required
def list_codes():
    return render(
        "backoffice/codes.html", "backoffice/codes.html", codes=cat.list_codes(), now=now_utc()
    )


@bp.route("/sconti/nuovo", methods=["GET", "POST"])
@bp.route("/sconti/<int:code_id>", methods=["GET", "POST"])
@admin_required
def edit_code(code_id: int | None = None):
    """Create or edit a codice sconto; the page lists its redemptions."""
    code = get_or_404(DiscountCode, code_id) if code_id else None
    if request.method == "GET":
        return _code_page(code)
    try:
        code = cat.save_code(code, request.form, current_staff(), request_id())
    except DomainError as exc:
        rollback()
        return _code_page(code, 422, exc.message)
    commit()
    flash(_("Codice sconto %(code)s salvato.", code=code.code), "success")
    return redirect_to(url_for("backoffice.edit_code", code_id=code.id))


@bp.post("/sconti/<int:code_id>/disattiva")
@admin_required
def disable_code(code_id: int):
    code = get_or_404(DiscountCode, code_id)
    cat.disable_code(code, current_staff(), request_id(), now_utc())
    commit()
    flash(_("Codice sconto %(code)s disattivato.", code=code.code), "success")
    return redirect_to(url_for("backoffice.edit_code", code_id=code.id))


# --- staff -----------------------------------------------------------------------------------


def _staff_page(status: int = 200, error: str | None = None):
    return render(
        "backoffice/staff.html",
        "backoffice/staff.html",
        status=status,
        members=cat.list_staff(),
        roles=list(StaffRole),
        error=error,
    )


@bp.get("/staff")
@admin_required
def list_staff():
    return _staff_page()


@bp.post("/staff")
@admin_required
def create_staff():
    """A new staff account; the TOTP is enrolled with the QR code at its first login."""
    fields = [request.form.get(name, "") for name in ("email", "name", "role", "password")]
    try:
        member = auth.create_staff(*fields)
    except DomainError as exc:
        rollback()
        return _staff_page(422, exc.message)
    record(
        current_staff(),
        "account staff creato",
        "staff",
        member.id,
        after={"email": member.email, "role": member.role},
        request_id=request_id(),
    )
    commit()
    flash(
        _(
            "Account %(email)s creato: al primo accesso configurerà il codice TOTP.",
            email=member.email,
        ),
        "success",
    )
    return redirect_to(url_for("backoffice.list_staff"))


@bp.post("/staff/<int:staff_id>/attivo")
@admin_required
def toggle_staff(staff_id: int):
    member = get_or_404(StaffUser, staff_id)
    try:
        cat.set_staff_active(
            member, request.form.get("active") == "1", current_staff(), request_id()
        )
    except DomainError as exc:
        rollback()
        return _staff_page(422, exc.message)
    commit()
    return redirect_to(url_for("backoffice.list_staff"))
