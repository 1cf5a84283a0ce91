"""Password dimenticata? and the address confirmation links.

The reset form answers the same page, words and status for any address, and sends its e-mail
from a thread after the commit, so the time of the answer does not tell either. A link's token
leaves the URL at the first GET (into the session, then a redirect to a clean URL): it is not
sent on as a Referer, and the access log redacts it (webapp.logs).
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from webapp.account.forms import ForgotPasswordForm, NewPasswordForm
from webapp.account.views import _safe_next
from webapp.clock import now_utc
from webapp.extensions import db, limiter
from webapp.htmx import redirect_to, render
from webapp.outbox.services import send_in_background
from webapp.shop import accounts
from webapp.shop.accounts import Followed
from webapp.shop.models import Customer
from webapp.transaction import commit, rollback

bp = Blueprint("recovery", __name__)

RESET_SESSION_KEY = "reset_token"


def _page(template: str, status: int = 200, **context):
    return render(template, template, status=status, **context)


def _address_key() -> str:
    """The per-address limit counts any address, registered or not (it tells nothing)."""
    return "address:" + accounts.normalise_email(request.form.get("email"))[:254]


@bp.route("/password-dimenticata", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RESET_RATE_LIMIT_IP"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["RESET_RATE_LIMIT_ADDRESS"],
    key_func=_address_key,
    methods=["POST"],
)
def forgot_password():
    """Ask a reset link: the same answer for a registered and an unknown address."""
    form = ForgotPasswordForm()
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return _page("account/forgot.html", status, form=form)
    email_id = accounts.request_password_reset(form.email.data, now_utc())
    if email_id is not None:
        send_in_background(email_id)
    commit()
    return _page("account/forgot_sent.html", email=form.email.data)


@bp.get("/password/nuova/<token>")
def open_reset_link(token: str):
    """The e-mailed link: keep the token in the session and continue on a clean URL."""
    session[RESET_SESSION_KEY] = token[:200]
    return redirect_to(url_for("recovery.new_password"))


@bp.route("/password/nuova", methods=["GET", "POST"])
def new_password():
    """The new password, typed twice; the link works once and for 60 minutes."""
    now = now_utc()
    raw = session.get(RESET_SESSION_KEY)
    if accounts.live_reset_token(raw, now) is None:
        session.pop(RESET_SESSION_KEY, None)
        return _page("account/link_invalid.html", 410, reset=True)
    form = NewPasswordForm()
    if not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return _page("account/new_password.html", status, form=form)
    customer = accounts.reset_password(raw, form.password.data, now)
    session.pop(RESET_SESSION_KEY, None)
    if customer is None:  # a twin POST used the link a moment ago
        rollback()
        return _page("account/link_invalid.html", 410, reset=True)
    commit()
    flash(_("Password cambiata: accedi con la nuova password."), "success")
    return redirect_to(url_for("account.login"))


@bp.get("/conferma-email/<token>")
def confirm_email(token: str):
    """A confirmation link (registration or a new address): confirms once."""
    outcome, _customer = accounts.follow_confirmation(token, now_utc())
    commit()
    if outcome in (Followed.CONFIRMED, Followed.ALREADY):  # twins read the same words
        flash(_("Il tuo indirizzo e-mail è confermato."), "success")
    session["confirm_outcome"] = outcome.value
    return redirect_to(url_for("recovery.confirmed"))


@bp.get("/conferma-email")
def confirmed():
    """What the link did, on a URL without the token."""
    try:
        outcome = Followed(session.get("confirm_outcome", "invalid"))
    except ValueError:
        outcome = Followed.INVALID
    if outcome is Followed.INVALID:
        return _page("account/link_invalid.html", 410, reset=False)
    status = 409 if outcome is Followed.TAKEN else 200
    return _page("account/confirmed.html", status, outcome=outcome.value)


@bp.post("/conferma-email/invia")
@login_required
@limiter.limit(lambda: current_app.config["CONFIRM_RESEND_RATE_LIMIT"])
def resend_confirmation():
    """Invia di nuovo: a new confirmation link (the older ones stop working)."""
    customer = db.session.get(Customer, current_user.id)
    if customer is None or customer.email_confirmed_at is not None:
        flash(_("Il tuo indirizzo e-mail è già confermato."), "info")
    elif accounts.send_confirmation(customer, now_utc()):
        commit()
        flash(
            _(
                "Ti abbiamo inviato un nuovo link di conferma a %(email)s: vale 48 ore.",
                email=customer.email,
            ),
            "success",
        )
    else:
        flash(_("Ti abbiamo appena inviato un link: controlla la tua casella di posta."), "info")
    return redirect_to(_back())


def _back() -> str:
    return _safe_next(url_for("area.overview"), request.form.get("next"))
