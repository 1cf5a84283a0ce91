"""Back office: the one-time links (activation, new password, new authenticator).

Administrators issue them from the staff page; the member opens the e-mailed link. The first
GET moves the token into the session and redirects to a URL without it (no Referer, no access
log, no browser history carries it); the page then asks what the link is for.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app, flash, render_template, request, session, url_for
from flask_babel import gettext as _

from webapp.backoffice import auth, links
from webapp.backoffice.blueprint import bp, get_or_404, log_out, request_id
from webapp.backoffice.models import StaffLinkPurpose, StaffUser
from webapp.clock import now_utc
from webapp.errors import DomainError
from webapp.extensions import limiter
from webapp.htmx import redirect_to
from webapp.transaction import commit, rollback

SESSION_KEY = "staff_link"


def link_url(token: str) -> str:
    """The link as the e-mail (or the console, for the first administrator) gives it."""
    return current_app.config["SHOP_BASE_URL"] + url_for("backoffice.open_link", token=token)


def issue_and_send(member: StaffUser, purpose: StaffLinkPurpose) -> None:
    """A new link for `member`, e-mailed to them (the caller commits)."""
    hours = current_app.config["STAFF_LINK_HOURS"]
    token = links.issue_link(member, purpose, now_utc(), timedelta(hours=hours))
    links.send_link(member, purpose, link_url(token), hours)


@bp.get("/link/<token>")
def open_link(token: str):
    """The e-mailed URL: the token goes into the session, the address bar loses it."""
    log_out()  # whoever was logged in here, the link is for its own member
    session[SESSION_KEY] = token[: links.MAX_TOKEN + 1]
    return redirect_to(url_for("backoffice.use_link"))


@bp.route("/link", methods=["GET", "POST"])
@limiter.limit("10/minute", methods=["POST"])
def use_link():
    """Set the password and/or enrol the authenticator (QR code and secret shown only here)."""
    try:
        link = links.find_link(session.get(SESSION_KEY), now_utc())
        if request.method == "GET":
            return _link_page(link)
        links.complete_link(link, request.form, now_utc(), request_id())
    except links.LinkUnusable as exc:  # also the twin that lost the compare-and-set
        rollback()
        session.pop(SESSION_KEY, None)
        return render_template("backoffice/link.html", link=None, error=exc.message), 410
    except DomainError as exc:
        rollback()
        return _link_page(link, exc.message, 422)
    commit()
    session.pop(SESSION_KEY, None)
    flash(_("Fatto: ora accedi con la tua e-mail, la password e il codice TOTP."), "success")
    return redirect_to(url_for("backoffice.login"))


def _link_page(link, error: str | None = None, status: int = 200):
    member = get_or_404(StaffUser, link.staff_id)
    uri = auth.provisioning_uri(member, link.totp_secret) if link.purpose.sets_totp else None
    return render_template(
        "backoffice/link.html",
        link=link,
        member=member,
        uri=uri,
        qr=auth.qr_data_uri(uri) if uri else None,
        error=error,
        min_password=auth.MIN_PASSWORD,
    ), status
