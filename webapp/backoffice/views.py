"""Back office: staff login (password + TOTP), dashboard, search, audit log.

The other routes are in order_views, queue_views and admin_views, on the same blueprint.
"""

from __future__ import annotations

from flask import flash, render_template, request, session, url_for
from flask_babel import gettext as _

from webapp.backoffice import auth
from webapp.backoffice import services as bo
from webapp.backoffice.audit import record
from webapp.backoffice.blueprint import bp, current_staff, log_in, log_out, request_id
from webapp.backoffice.models import StaffUser
from webapp.clock import now_utc
from webapp.extensions import db, limiter
from webapp.htmx import redirect_to, render
from webapp.queryargs import clamped_int
from webapp.transaction import commit

PENDING_SECONDS = 300


def _pending() -> StaffUser | None:
    """The staff member who typed the right password and still has to type the code."""
    pending = session.get("staff_pending")
    if not pending or now_utc().timestamp() - pending[1] > PENDING_SECONDS:
        return None
    staff = db.session.get(StaffUser, pending[0])
    return staff if staff is not None and staff.active else None


@bp.route("/accesso", methods=["GET", "POST"])
@limiter.limit("10/minute", methods=["POST"])
def login():
    """Step 1: e-mail and password."""
    if request.method == "GET":
        return render_template("backoffice/login.html")
    email = request.form.get("email", "")
    staff = auth.check_password(email, request.form.get("password", ""))
    record(
        staff,
        "accesso: password",
        reason="corretta" if staff else "errata",
        request_id=request_id(),
        email=email,
    )
    commit()
    if staff is None:
        return render_template(
            "backoffice/login.html", error=_("E-mail o password errate."), email=email
        ), 422
    session["staff_pending"] = [staff.id, now_utc().timestamp()]
    return redirect_to(url_for("backoffice.login_code"))


@bp.route("/accesso/codice", methods=["GET", "POST"])
@limiter.limit("10/minute", methods=["POST"])
def login_code():
    """Step 2: the TOTP code; at the first login the QR code to enrol the authenticator app."""
    staff = _pending()
    if staff is None:
        return redirect_to(url_for("backoffice.login"))
    ok = request.method == "POST" and auth.check_totp(
        staff, request.form.get("code", ""), now_utc()
    )
    if request.method == "POST":
        record(
            staff,
            "accesso: codice TOTP",
            reason="corretto" if ok else "errato",
            request_id=request_id(),
        )
        commit()
    if ok:
        log_in(staff)
        return redirect_to(url_for("backoffice.dashboard"))
    return _code_page(staff, refused=request.method == "POST")


def _code_page(staff: StaffUser, refused: bool):
    """The code form; the QR code only until the first correct code (enrolment)."""
    uri = None if staff.totp_confirmed else auth.provisioning_uri(staff)
    return render_template(
        "backoffice/login_code.html",
        pending=staff,
        qr=auth.qr_data_uri(uri) if uri else None,
        uri=uri,
        error=_("Codice non valido.") if refused else None,
    ), (422 if refused else 200)


@bp.post("/esci")
def logout():
    record(current_staff(), "uscita", request_id=request_id())
    commit()
    log_out()
    flash(_("Sei uscito dal back office."), "info")
    return redirect_to(url_for("backoffice.login"))


@bp.get("/")
def dashboard():
    """Paid orders and revenue, renewals due, failed renewals, refunds; 30-day revenue chart."""
    return render_template("backoffice/dashboard.html", d=bo.dashboard(now_utc()))


@bp.get("/cerca")
def search():
    """Find customers, orders, payments and services; filters and paging are htmx fragments."""
    q, kind = request.args.get("q", ""), request.args.get("tipo", "")
    page = clamped_int(request.args.get("pagina"), 1, 1, bo.MAX_PAGE)
    results = bo.search(q, kind, page)
    customers = bo.customers_by_id(
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
        kinds=bo.KINDS,
    )


@bp.get("/registro")
def audit_log():
    """The audit log: read-only here (no route edits or deletes a row)."""
    log = bo.audit_log(clamped_int(request.args.get("pagina"), 1, 1, bo.MAX_PAGE))
    return render("backoffice/audit.html", "backoffice/_audit.html", log=log)


from webapp.backoffice import admin_views, export_views, order_views, queue_views  # noqa: E402, F401
