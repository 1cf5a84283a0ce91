"""Area clienti › Profilo: password, e-mail, Scarica i miei dati, Chiudi il mio account."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, flash, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from webapp.account.closure import close_account
from webapp.account.export import export_zip
from webapp.account.forms import ChangeEmailForm, ChangePasswordForm, CloseAccountForm
from webapp.clock import now_utc, rome_date
from webapp.errors import DomainError
from webapp.extensions import db
from webapp.htmx import redirect_to
from webapp.payments import settlement
from webapp.payments.gateway import GatewayRefused, GatewayUnavailable
from webapp.shop import accounts
from webapp.shop.models import Customer
from webapp.transaction import commit, rollback

log = logging.getLogger(__name__)

bp = Blueprint("profile", __name__, url_prefix="/area-clienti/profilo")


@bp.before_request
@login_required
def _login_required() -> None:
    """Every page of the profile needs a logged-in customer."""


def _customer() -> Customer:
    return db.session.get(Customer, current_user.id)


def _page(status: int = 200, **forms):
    forms.setdefault("password_form", ChangePasswordForm(formdata=None))
    forms.setdefault("email_form", ChangeEmailForm(formdata=None))
    forms.setdefault("close_form", CloseAccountForm(formdata=None))
    html = render_template("area/profile.html", customer=_customer(), area_tab="profile", **forms)
    return html, status


def _wrong_password(form, status: int = 422):
    form.current.errors = [_("La password attuale non è corretta.")]
    return status


@bp.get("/")
def view_profile():
    """The profile: e-mail (confirmed or not), password, data, closure."""
    return _page()


@bp.post("/password")
def change_password():
    """A new password: the current one first; other sessions end; an e-mail tells."""
    form = ChangePasswordForm()
    customer = _customer()
    if not form.validate_on_submit():
        return _page(422, password_form=form)
    if not customer.check_password(form.current.data):
        return _page(_wrong_password(form), password_form=form)
    accounts.set_password(customer, form.password.data, now_utc())
    commit()
    login_user(customer)  # this session goes on with the new session version
    flash(_("Password cambiata. Le altre sessioni sono state chiuse."), "success")
    return redirect_to(url_for("profile.view_profile"))


@bp.post("/email")
def change_email():
    """A new address: it replaces the old one only once its link is followed."""
    form = ChangeEmailForm()
    customer = _customer()
    if not form.validate_on_submit():
        return _page(422, email_form=form)
    if not customer.check_password(form.current.data):
        return _page(_wrong_password(form), email_form=form)
    if accounts.normalise_email(form.email.data) == customer.email:
        form.email.errors = [_("È già il tuo indirizzo e-mail.")]
        return _page(422, email_form=form)
    accounts.request_email_change(customer, form.email.data, now_utc())
    commit()
    flash(_link_sent(accounts.normalise_email(form.email.data)), "success")
    return redirect_to(url_for("profile.view_profile"))


def _link_sent(email: str) -> str:
    return _(
        "Ti abbiamo inviato un link a %(email)s: il nuovo indirizzo sostituirà quello "
        "attuale quando lo aprirai (vale 48 ore).",
        email=email,
    )


@bp.get("/dati.zip")
def download_data():
    """Scarica i miei dati: a zip of JSON files and the invoices' XML."""
    body = export_zip(current_user.id)
    day = rome_date(now_utc()).isoformat()
    return Response(
        body,
        mimetype="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="pecshop-dati-{day}.zip"',
            "Cache-Control": "no-store",
        },
    )


@bp.post("/chiudi")
def close():
    """Chiudi il mio account: the password again, then everything in one transaction."""
    form = CloseAccountForm()
    customer = _customer()
    if customer.closed_at is not None:  # a twin of this form closed it a moment ago
        return _closed()
    if not form.validate_on_submit():
        return _page(422, close_form=form)
    if not customer.check_password(form.current.data):
        return _page(_wrong_password(form), close_form=form)
    try:
        bank_tokens = close_account(customer.id, now_utc())
    except DomainError as exc:
        rollback()
        form.current.errors = [exc.message]
        return _page(409, close_form=form)
    commit()
    for token in bank_tokens or []:
        _forget_at_bank(token)
    return _closed()


def _closed():
    logout_user()
    flash(_("Il tuo account è stato chiuso. Ti abbiamo inviato una e-mail di conferma."), "info")
    return redirect_to(url_for("shop.catalogue"))


def _forget_at_bank(token: str) -> None:
    try:
        settlement.gateway().forget_token(token)
    except (GatewayUnavailable, GatewayRefused) as exc:
        # The shop will never use the token again; the bank is asked again by the operator.
        log.warning("bank did not forget a token of a closed account: %s", exc)
