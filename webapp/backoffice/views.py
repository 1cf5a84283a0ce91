"""Back office: staff login (password + TOTP), dashboard, search, audit log.

The other routes are in order_views, queue_views and admin_views, on the same blueprint.
"""

from __future__ import annotations

from flask import current_app, flash, render_template, request, session, url_for
from flask_babel import gettext as _

from webapp.backoffice import auth, queues
from webapp.backoffice import dashboard as backoffice_dashboard
from webapp.backoffice import search as backoffice_search
from webapp.backoffice.audit import record
from webapp.backoffice.blueprint import bp, current_staff, log_in, log_out, request_id
from webapp.backoffice.models import StaffUser
from webapp.clock import now_utc
from webapp.dbtypes import MAX_ID
from webapp.extensions import db, limiter
from webapp.htmx import redirect_to, render
from webapp.queryargs import clamped_int
from webapp.transaction import commit

PENDING_SECONDS = 300


def _pending() -> StaffUser | None:
    """The staff member who typed the right password and still has to type the code.

    `staff_pending` is [id, when, the account's failures then]: the pending login ends after
    STAFF_TOTP_PENDING_FAILURES wrong codes counted on the account (a cookie saved before and
    sent again does not start the count afresh), or when the account is locked.
    """
    pending = session.get("staff_pending")
    try:
        staff_id, since, failures_then = int(pending[0]), float(pending[1]), int(pending[2])
    except (TypeError, ValueError, IndexError):
        return None
    if now_utc().timestamp() - since > PENDING_SECONDS or not 0 < staff_id <= MAX_ID:
        return None
    staff = db.session.get(StaffUser, staff_id)
    if staff is None or not staff.active or staff.locked_at is not None:
        return None
    limit = current_app.config["STAFF_TOTP_PENDING_FAILURES"]
    return None if staff.totp_failures - failures_then >= limit else staff


def _login_page(error: str, email: str = ""):
    return render_template("backoffice/login.html", error=error, email=email[:254]), 422


@bp.route("/accesso", methods=["GET", "POST"])
@limiter.limit("10/minute", methods=["POST"])
def login():
    """Step 1: e-mail and password (an account locked or not yet enrolled stops here)."""
    if request.method == "GET":
        return render_template("backoffice/login.html")
    email = request.form.get("email", "")
    staff = auth.check_password(email, request.form.get("password", ""))
    refused = _refusal(staff)
    reason = refused or ("corretta" if staff else "errata")
    record(staff, "accesso: password", reason=reason, request_id=request_id(), email=email[:254])
    commit()
    if staff is None:
        return _login_page(_("E-mail o password errate."), email)
    if refused:
        return _login_page(refused, email)
    session["staff_pending"] = [staff.id, now_utc().timestamp(), staff.totp_failures]
    return redirect_to(url_for("backoffice.login_code"))


def _refusal(staff: StaffUser | None) -> str | None:
    """Why a member with the right password still cannot log in, if so."""
    if staff is None:
        return None
    if staff.locked_at is not None:
        return _(
            "Account bloccato dopo troppi codici errati: chiedi a un amministratore un link "
            "per configurare di nuovo il codice TOTP o la password."
        )
    if not staff.totp_confirmed:
        return _(
            "Il codice TOTP di questo account non è configurato: usa il link che ti ha inviato "
            "un amministratore, o chiedine uno nuovo."
        )
    return None


@bp.route("/accesso/codice", methods=["GET", "POST"])
@limiter.limit("10/minute", methods=["POST"])
def login_code():
    """Step 2: the TOTP code; wrong codes are counted on the account."""
    staff = _pending()
    if staff is None:
        session.pop("staff_pending", None)
        return redirect_to(url_for("backoffice.login"))
    if request.method == "GET":
        return _code_page()
    ok = _checked_code(staff)
    if ok:
        db.session.refresh(staff)
        log_in(staff)
        return redirect_to(url_for("backoffice.dashboard"))
    if _pending() is None:
        session.pop("staff_pending", None)
        flash(_("Troppi codici errati: accedi di nuovo."), "error")
        return redirect_to(url_for("backoffice.login"))
    return _code_page(refused=True)


def _checked_code(staff: StaffUser) -> bool:
    """Check the typed code, count a wrong one on the account, audit; committed."""
    now = now_utc()
    ok = auth.check_totp(staff, request.form.get("code", ""), now)
    if not ok:
        auth.record_totp_failure(staff, now, current_app.config["STAFF_TOTP_LOCK_FAILURES"])
    reason = "corretto" if ok else "errato"
    record(staff, "accesso: codice TOTP", reason=reason, request_id=request_id())
    commit()
    return ok


def _code_page(refused: bool = False):
    """The code form (never a secret or a QR code: enrolment is by one-time link only)."""
    return render_template(
        "backoffice/login_code.html", error=_("Codice non valido.") if refused else None
    ), (422 if refused else 200)


@bp.post("/esci")
def logout():
    """Log out here and everywhere: the member's session version moves on."""
    staff = current_staff()
    record(staff, "uscita", request_id=request_id())
    auth.end_sessions(staff.id)
    commit()
    log_out()
    flash(_("Sei uscito dal back office."), "info")
    return redirect_to(url_for("backoffice.login"))


@bp.get("/")
def dashboard():
    """Paid orders and revenue, renewals due, failed renewals, refunds; 30-day revenue chart."""
    return render_template("backoffice/dashboard.html", d=backoffice_dashboard.dashboard(now_utc()))


@bp.get("/cerca")
def search():
    """Find customers, orders, payments and services; filters and paging are htmx fragments."""
    q, kind = request.args.get("q", ""), request.args.get("tipo", "")
    page = clamped_int(request.args.get("pagina"), 1, 1, backoffice_search.MAX_PAGE)
    results = backoffice_search.search(q, kind, page)
    customers = backoffice_search.customers_by_id(
        getattr(item, "customer_id", None)
        or getattr(getattr(item, "order", None), "customer_id", 0)
        for p in results
        for item in p.items
    )
    return render(
        "backoffice/search.html",
        "backoffice/_results.html",
        q=q,
        kind=kind,
        results=results,
        customers=customers,
        kinds=backoffice_search.KINDS,
    )


@bp.get("/registro")
def audit_log():
    """The audit log: read-only here (no route edits or deletes a row)."""
    log = queues.audit_log(
        clamped_int(request.args.get("pagina"), 1, 1, backoffice_search.MAX_PAGE)
    )
    return render("backoffice/audit.html", "backoffice/_audit.html", log=log)


from webapp.backoffice import (  # noqa: E402, F401
    admin_views,
    export_views,
    link_views,
    order_views,
    queue_views,
    sdi_views,
    service_views,
)
