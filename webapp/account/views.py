"""Register, log in, log out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from webapp.account.forms import LoginForm, RegisterForm
from webapp.account.services import authenticate, end_sessions, register_customer
from webapp.clock import now_utc
from webapp.extensions import limiter
from webapp.i18n import lazy_gettext as _l
from webapp.invoicing.transmission import has_missing_data
from webapp.shop.cart import claim_anonymous_cart
from webapp.transaction import commit, once_more_after_conflict

bp = Blueprint("account", __name__)

_MISSING_BILLING = _l(
    "Mancano i tuoi dati di fatturazione: inseriscili in Area clienti › Dati di fatturazione "
    "per ricevere le fatture dei tuoi ordini."
)
CHECK_YOUR_MAIL = _l(
    "Controlla la tua casella di posta: ti abbiamo inviato un messaggio per continuare."
)


def _safe_next(default: str, target: str | None = None) -> str:
    """`next` (or `target`) if it is a path on this site, else `default`: no open redirect."""
    target = (target if target is not None else request.args.get("next")) or ""
    # Browsers read "\\" as "/" and drop tabs and newlines ("/\t/evil" is "//evil"); a CR/LF
    # would also break the Location header (500). Control characters: refused.
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return default
    try:
        parts = urlsplit(target)
    except ValueError:
        return default
    return default if parts.scheme or parts.netloc else target


def _log_in(customer, remember: bool = False) -> None:
    login_user(customer, remember=remember)
    claim_anonymous_cart(
        session.pop("cart_token", None), customer.id, current_app.config["CART_MAX_LINES"]
    )
    commit()


@bp.route("/registrati", methods=["GET", "POST"])
def register():
    form = RegisterForm()
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render_template("account/register.html", form=form), status
    # Two registrations of one new e-mail at once: the second finds the first's account.
    customer = once_more_after_conflict(lambda: _register_once(form))
    if customer is None:
        # The e-mail has an account: the same next page, not logged in, a neutral word;
        # the owner gets an e-mail. Nobody learns here which addresses are registered.
        flash(str(CHECK_YOUR_MAIL), "info")
    else:
        _log_in(customer)
        flash(_("Benvenuto! Il tuo account è stato creato."), "success")
    return redirect(_safe_next(url_for("shop.catalogue")), code=303)


def _register_once(form: RegisterForm):
    customer = register_customer(
        form.name.data, form.email.data, form.tax_code.data, form.password.data, now_utc()
    )
    commit()
    return customer


@bp.route("/accedi", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_safe_next(url_for("shop.catalogue")))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        customer = authenticate(form.email.data, form.password.data)
        if customer is not None:
            _log_in(customer, remember=form.remember.data)
            if has_missing_data(customer.id):
                flash(str(_MISSING_BILLING), "info")
            return redirect(_safe_next(url_for("shop.catalogue")), code=303)
        error = _("E-mail o password non corretti.")
    status = 422 if request.method == "POST" else 200
    return render_template("account/login.html", form=form, error=error), status


@bp.post("/esci")
def logout():
    if current_user.is_authenticated:
        # Server side too: a copy of this session (or of the remember-me cookie) is dead now.
        end_sessions(current_user.id)
        commit()
    logout_user()
    flash(_("Sei uscito dal tuo account."), "info")
    return redirect(url_for("shop.catalogue"), code=303)
