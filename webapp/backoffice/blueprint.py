"""The back-office blueprint and its guards: staff session, idle expiry, roles, audit per POST.

The staff identity lives in its own session keys (`staff_id`, `staff_version`, `staff_since`,
`staff_seen`), never in Flask-Login's (which is the customers'). A customer session gets 404 on
every back-office URL; an anonymous visitor is sent to the staff login. A session ends after 30
minutes without a request, STAFF_SESSION_MAX_HOURS after the login whatever its use, and when
the member's `session_version` moves on (logout, deactivation, lock, a password or TOTP reset):
the cookie alone, even saved before, opens nothing then.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import TypeVar

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from webapp.backoffice import audit
from webapp.backoffice.labels import label
from webapp.backoffice.menu import menu_for
from webapp.backoffice.models import StaffUser
from webapp.clock import ROME, as_utc, now_utc
from webapp.dbtypes import MAX_ID
from webapp.errors import DomainError
from webapp.extensions import db
from webapp.htmx import redirect_to, render
from webapp.transaction import commit, rollback

bp = Blueprint("backoffice", __name__, url_prefix="/backoffice")

IDLE_LIMIT = timedelta(minutes=30)
PUBLIC_ENDPOINTS = {
    "backoffice.login",
    "backoffice.login_code",
    "backoffice.open_link",
    "backoffice.use_link",
}
SESSION_KEYS = ("staff_id", "staff_version", "staff_since", "staff_seen", "staff_pending")

T = TypeVar("T")


def get_or_404(model, object_id: int):
    obj = db.session.get(model, object_id)
    if obj is None:
        abort(404)
    return obj


def page(template: str, status: int = 200, **context) -> tuple[str, int]:
    """A back-office page that has no fragment of its own: `render_template`, the whole page for
    htmx too (so the answer does not vary on HX-Request)."""
    return render_template(template, **context), status


def act(
    action: Callable[[], T],
    refused: Callable[[str], ResponseReturnValue],
    done: Callable[[T], ResponseReturnValue],
) -> ResponseReturnValue:
    """One staff action, one transaction: commit and answer `done(result)`.

    A DomainError rolls back and answers `refused(message)` (the form again, with status 422);
    the after-request hook then writes the refusal to the audit log.
    """
    try:
        result = action()
    except DomainError as exc:
        rollback()
        return refused(exc.message)
    commit()
    return done(result)


def save(
    action: Callable[[], T],
    form_again: Callable[[str], ResponseReturnValue],
    then: Callable[[T], tuple[str, str]],
) -> ResponseReturnValue:
    """Save, or 422; commit; flash; redirect: how a staff form that saves answers.

    `action` saves (it flushes); a DomainError answers `form_again(message)`, the form again with
    status 422 (act). Otherwise, after the commit, `then(result)` gives the success message to
    flash and the URL of the page to go back to.
    """

    def done(result: T) -> Response:
        message, url = then(result)
        flash(message, "success")
        return redirect_to(url)

    return act(action, form_again, done)


def current_staff() -> StaffUser:
    return g.staff


def request_id() -> str:
    return g.audit_request_id


def log_in(staff: StaffUser) -> None:
    now = now_utc().timestamp()
    session.pop("staff_pending", None)
    session["staff_id"] = staff.id
    session["staff_version"] = staff.session_version
    session["staff_since"] = now
    session["staff_seen"] = now


def log_out() -> None:
    """Forget the staff keys of this cookie (the caller ends the other sessions if it must)."""
    for key in SESSION_KEYS:
        session.pop(key, None)


def _expired(now: float) -> str | None:
    """Why this session is over by time, if it is: idle too long, or older than the maximum."""
    try:
        seen, since = float(session.get("staff_seen")), float(session.get("staff_since"))
    except (TypeError, ValueError):
        return _("Sessione scaduta: accedi di nuovo.")
    if now - seen > IDLE_LIMIT.total_seconds():
        return _("Sessione scaduta per inattività: accedi di nuovo.")
    max_age = timedelta(hours=current_app.config["STAFF_SESSION_MAX_HOURS"])
    if now - since > max_age.total_seconds():
        return _(
            "Sessione scaduta: dopo %(hours)d ore si accede di nuovo.",
            hours=max_age // timedelta(hours=1),
        )
    return None


def _staff_from_session() -> StaffUser | None:
    staff_id = session.get("staff_id")
    if staff_id is None:
        return None
    now = now_utc().timestamp()
    expired = _expired(now)
    if expired:
        log_out()
        flash(expired, "info")
        return None
    known = isinstance(staff_id, int) and 0 < staff_id <= MAX_ID
    staff = db.session.get(StaffUser, staff_id) if known else None
    if (
        staff is None
        or not staff.active
        or staff.locked_at is not None
        or session.get("staff_version") != staff.session_version
    ):
        log_out()
        return None
    session["staff_seen"] = now
    return staff


@bp.before_request
def _guard():
    g.staff = None
    g.audit_request_id = uuid.uuid4().hex
    if current_user.is_authenticated:
        abort(404)  # a customer never learns the back office is here
    g.staff = _staff_from_session()
    if g.staff is None and request.endpoint not in PUBLIC_ENDPOINTS:
        return redirect_to(url_for("backoffice.login"))
    return None


@bp.after_request
def _audit_every_post(response):
    """A POST by staff that wrote no audit row (refused, invalid) still leaves one."""
    staff = g.get("staff")
    if request.method != "POST" or "audit_request_id" not in g:
        return response
    if staff is None and request.endpoint not in PUBLIC_ENDPOINTS:
        return response
    if audit.written_for(g.audit_request_id):
        return response
    rollback()
    audit.record(
        staff,
        f"rifiutata: {request.endpoint or request.path}"[:80],
        reason=f"Richiesta non eseguita (HTTP {response.status_code}).",
        request_id=g.audit_request_id,
        email=request.form.get("email", ""),
    )
    commit()
    return response


bp.add_app_template_filter(label, "label")


@bp.app_template_filter("dt")
def _format_datetime(value) -> str:
    return as_utc(value).astimezone(ROME).strftime("%d/%m/%Y %H:%M") if value else ""


@bp.context_processor
def _staff_context() -> dict:
    staff = g.get("staff")
    return {"staff": staff, "bo_menu": menu_for(staff.is_admin, request.endpoint) if staff else []}


def admin_required(view: Callable) -> Callable:
    """Catalogue, prices, discount codes and staff: administrators only (403 otherwise)."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_staff().is_admin:
            return render("backoffice/forbidden.html", "backoffice/_forbidden.html", status=403)
        return view(*args, **kwargs)

    return wrapped
