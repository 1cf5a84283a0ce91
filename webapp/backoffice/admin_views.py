"""Back office, administrators only: catalogue and prices, discount codes, staff accounts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import current_app, request, url_for
from flask_babel import gettext as _

from webapp.backoffice import catalogue as cat
from webapp.backoffice.audit import record
from webapp.backoffice.blueprint import (
    act,
    admin_required,
    bp,
    current_staff,
    get_or_404,
    page,
    request_id,
    save,
)
from webapp.backoffice.link_views import issue_and_send
from webapp.backoffice.models import StaffLinkPurpose, StaffRole, StaffUser
from webapp.clock import now_utc, rome_date
from webapp.errors import DomainError
from webapp.htmx import redirect_to
from webapp.shop.catalogue import price_changes, price_on
from webapp.shop.models import DiscountCode, DiscountKind, Product, ServiceKind

T = TypeVar("T")


def _product_page(product: Product | None, status: int = 200, error: str | None = None):
    today = rome_date(now_utc())
    return page(
        "backoffice/product.html",
        status=status,
        product=product,
        kinds=list(ServiceKind),
        current=price_on(product, today) if product else None,
        changes=price_changes(product) if product else [],
        today=today.isoformat(),
        error=error,
    )


def _create_or_edit(
    obj: T | None, form_page: Callable, saver: Callable, then: Callable[[T], tuple[str, str]]
):
    """GET: the form (empty to create); POST: save it and go on (422: the form again)."""
    if request.method == "GET":
        return form_page(obj)
    return save(
        lambda: saver(obj, request.form, current_staff(), request_id()),
        lambda error: form_page(obj, 422, error),
        then,
    )


@bp.get("/catalogo")
@admin_required
def list_products():
    today = rome_date(now_utc())
    products = cat.list_products()
    prices = {p.id: price_on(p, today) for p in products}
    return page("backoffice/catalogue.html", products=products, prices=prices)


@bp.route("/catalogo/nuovo", methods=["GET", "POST"])
@bp.route("/catalogo/<int:product_id>", methods=["GET", "POST"])
@admin_required
def edit_product(product_id: int | None = None):
    """Create a product, or edit it (name, description, promotional, active)."""
    return _create_or_edit(
        get_or_404(Product, product_id) if product_id else None,
        _product_page,
        cat.save_product,
        lambda product: (
            _("Prodotto %(sku)s salvato.", sku=product.sku),
            url_for("backoffice.edit_product", product_id=product.id),
        ),
    )


@bp.post("/catalogo/<int:product_id>/prezzi")
@admin_required
def schedule_price(product_id: int):
    """A new yearly price with its effective date (orders already made keep their amounts)."""
    product = get_or_404(Product, product_id)
    return save(
        lambda: cat.schedule_price(
            product, request.form, current_staff(), request_id(), rome_date(now_utc())
        ),
        lambda error: _product_page(product, 422, error),
        lambda _price: (
            _("Nuovo prezzo programmato."),
            url_for("backoffice.edit_product", product_id=product.id),
        ),
    )


# --- discount codes --------------------------------------------------------------------------


def _code_page(code: DiscountCode | None, status: int = 200, error: str | None = None):
    return page(
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
    codes, now = cat.list_codes(), now_utc()
    validity = {code.id: cat.code_validity(code, now) for code in codes}
    return page("backoffice/codes.html", codes=codes, validity=validity)


@bp.route("/sconti/nuovo", methods=["GET", "POST"])
@bp.route("/sconti/<int:code_id>", methods=["GET", "POST"])
@admin_required
def edit_code(code_id: int | None = None):
    """Create or edit a codice sconto; the page lists its redemptions."""
    return _create_or_edit(
        get_or_404(DiscountCode, code_id) if code_id else None,
        _code_page,
        cat.save_code,
        lambda code: (
            _("Codice sconto %(code)s salvato.", code=code.code),
            url_for("backoffice.edit_code", code_id=code.id),
        ),
    )


@bp.post("/sconti/<int:code_id>/disattiva")
@admin_required
def disable_code(code_id: int):
    code = get_or_404(DiscountCode, code_id)
    return save(
        lambda: cat.disable_code(code, current_staff(), request_id(), now_utc()),
        lambda error: _code_page(code, 422, error),
        lambda _none: (
            _("Codice sconto %(code)s disattivato.", code=code.code),
            url_for("backoffice.edit_code", code_id=code.id),
        ),
    )


# --- staff -----------------------------------------------------------------------------------


def staff_page(status: int = 200, error: str | None = None):
    return page(
        "backoffice/staff.html",
        status=status,
        members=cat.list_staff(),
        roles=list(StaffRole),
        error=error,
    )


@bp.get("/staff")
@admin_required
def list_staff():
    return staff_page()


def _create_member() -> StaffUser:
    member = cat.create_staff(request.form, current_staff(), request_id())
    issue_and_send(member, StaffLinkPurpose.ACTIVATION)
    return member


@bp.post("/staff")
@admin_required
def create_staff():
    """A new staff account: its password and authenticator are set by the member, through the
    activation link e-mailed now (the administrator never knows either)."""
    return save(
        _create_member,
        lambda error: staff_page(422, error),
        lambda member: (
            _(
                "Account %(email)s creato: gli abbiamo inviato per e-mail il link per scegliere "
                "la password e configurare il codice TOTP.",
                email=member.email,
            ),
            url_for("backoffice.list_staff"),
        ),
    )


@bp.post("/staff/<int:staff_id>/attivo")
@admin_required
def toggle_staff(staff_id: int):
    member = get_or_404(StaffUser, staff_id)
    return act(
        lambda: cat.set_staff_active(
            member, request.form.get("active") == "1", current_staff(), request_id()
        ),
        lambda error: staff_page(422, error),
        lambda _none: redirect_to(url_for("backoffice.list_staff")),
    )


LINK_PURPOSES = {"password": StaffLinkPurpose.PASSWORD, "totp": StaffLinkPurpose.TOTP}


def _send_link(member: StaffUser) -> StaffUser:
    """Issue and e-mail the link the form asks for, with its audit row (never its token)."""
    purpose = LINK_PURPOSES.get(request.form.get("purpose", ""))
    if purpose is None or not member.active:
        raise DomainError(_("Scegli un account attivo e il tipo di link da inviare."))
    issue_and_send(member, purpose)
    record(
        current_staff(),
        f"link inviato: {purpose.value}",
        "staff",
        member.id,
        after={"email": member.email, "purpose": purpose.value},
        request_id=request_id(),
    )
    return member


@bp.post("/staff/<int:staff_id>/link")
@admin_required
def send_staff_link(staff_id: int):
    """An administrator sends a member a link: a new password, or a new authenticator."""
    member = get_or_404(StaffUser, staff_id)
    hours = int(current_app.config["STAFF_LINK_HOURS"])
    return save(
        lambda: _send_link(member),
        lambda error: staff_page(422, error),
        lambda m: (
            _(
                "Link inviato per e-mail a %(email)s (valido %(hours)d ore).",
                email=m.email,
                hours=hours,
            ),
            url_for("backoffice.list_staff"),
        ),
    )
