"""The sandbox's routes (JSON, bearer token): test clock, e-mails, orders, customers, staff."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, jsonify, request
from flask_babel import gettext as _
from sqlalchemy import select

from webapp.backoffice.auth import create_staff
from webapp.clock import ROME, now_utc
from webapp.errors import DomainError
from webapp.extensions import db
from webapp.renewals.models import Service
from webapp.renewals.scheduler import PassReport, parse_instant, pass_line
from webapp.sandbox import clock, state
from webapp.shop.models import Customer
from webapp.shop.order_models import Order
from webapp.transaction import commit, rollback

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")


class Refused(Exception):
    """A request the sandbox answers with an error: status and Italian message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@bp.errorhandler(Refused)
def refused(error: Refused) -> tuple[Response, int]:
    return jsonify(errore=error.message), error.status


@bp.before_request
def require_token() -> tuple[Response, int, dict] | None:
    """`Authorization: Bearer <SANDBOX_TOKEN>`, compared in constant time; else 401."""
    sent = request.headers.get("Authorization", "")
    scheme, _sep, token = sent.partition(" ")
    expected = current_app.config["SANDBOX_TOKEN"]
    if scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), expected.encode()):
        return None
    message = _("Serve il token del sandbox: intestazione Authorization: Bearer <token>.")
    return jsonify(errore=message), 401, {"WWW-Authenticate": 'Bearer realm="sandbox"'}


def _body() -> dict:
    body = request.get_json(silent=True) if request.data else {}
    if not isinstance(body, dict):
        raise Refused(400, _("Il corpo della richiesta deve essere un oggetto JSON."))
    return body


def _instant(value: object, field: str) -> datetime:
    """An ISO date or date and time (Italian time unless it says its offset), as UTC."""
    try:
        return parse_instant(str(value))
    except ValueError:
        raise Refused(
            400, _("%(field)s: usa il formato AAAA-MM-GG oppure AAAA-MM-GGTHH:MM.", field=field)
        ) from None


def _customer(email: object) -> Customer:
    address = str(email or "").strip().lower()
    customer = db.session.scalar(select(Customer).where(Customer.email == address))
    if customer is None:
        raise Refused(404, _("Cliente non trovato."))
    return customer


def _pass_json(report: PassReport) -> dict:
    return {
        "as_of": report.now.isoformat(),
        "as_of_rome": report.now.astimezone(ROME).strftime("%d/%m/%Y %H:%M"),
        "report": report.renewals.counts() | {"reconciled": report.reconciled},
        "text": pass_line(report),
    }


@bp.get("/")
def index() -> Response:
    """What this sandbox offers."""
    rules = sorted(
        f"{','.join(sorted(r.methods - {'HEAD', 'OPTIONS'}))} {r.rule}"
        for r in current_app.url_map.iter_rules()
        if r.endpoint.startswith("sandbox.")
    )
    return jsonify(sandbox=True, urls=rules)


@bp.post("/orologio/passata")
def clock_pass() -> Response:
    """A renewal pass as of `as_of` (default: now), as the scheduler and the CLI run it."""
    body = _body()
    now = _instant(body["as_of"], "as_of") if body.get("as_of") else now_utc()
    return jsonify(_pass_json(clock.run_clock_pass(now)))


@bp.post("/fatture/trasmetti")
def transmit_invoices() -> Response:
    """One pass of the scheduler's invoice job now (prepare, send, read the notifications), so
    QA need not wait for the minute: the same code as `flask invoices transmit`."""
    from webapp.invoicing.sdi_jobs import transmit_pass

    report = transmit_pass(now_utc())
    return jsonify(
        prepared=report.prepared,
        sent=report.sent,
        waiting=report.waiting,
        notifications=report.notifications,
        text=str(report),
    )


@bp.post("/orologio/sposta")
def clock_move() -> Response:
    """One customer's services `days` earlier, then a pass as of now (or `as_of`)."""
    body = _body()
    customer = _customer(body.get("email"))
    days = body.get("days")
    if not isinstance(days, int) or isinstance(days, bool):
        raise Refused(400, _("days: un numero intero di giorni."))
    now = now_utc()
    try:
        clock.move_services(customer.id, days, now)
        commit()
    except DomainError as exc:
        rollback()
        raise Refused(409, exc.message) from None
    moved = [state.service_state(s) for s in _services(customer.id)]
    as_of = _instant(body["as_of"], "as_of") if body.get("as_of") else now
    report = clock.run_clock_pass(as_of)
    db.session.expire_all()
    after = [state.service_state(s) for s in _services(customer.id)]
    return jsonify({"moved": moved, "services": after, "pass": _pass_json(report)})


def _services(customer_id: int) -> list[Service]:
    return list(
        db.session.scalars(
            select(Service).where(Service.customer_id == customer_id).order_by(Service.id)
        )
    )


@bp.get("/email")
def emails() -> Response:
    """The e-mails to `to` (since `since`, if given), oldest first: subject, text, links."""
    address = request.args.get("to", "").strip().lower()
    if not address:
        raise Refused(400, _("Indica l'indirizzo: ?to=<e-mail>."))
    return jsonify(emails=state.emails_to(address, _since(request.args.get("since", ""))))


def _since(value: str) -> datetime | None:
    """An ISO instant (Italian time unless it says its offset), or a day: from its midnight."""
    if not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Refused(400, _("since: usa il formato AAAA-MM-GG oppure AAAA-MM-GGTHH:MM.")) from None
    return parsed.replace(tzinfo=parsed.tzinfo or ROME).astimezone(UTC)


@bp.get("/ordini/<int:order_id>")
def order(order_id: int) -> Response:
    """An order, its payments, refunds, services and invoices, as the back office sees them."""
    found = db.session.get(Order, order_id)
    if found is None:
        raise Refused(404, _("Ordine non trovato."))
    return jsonify(state.order_state(found))


@bp.get("/clienti")
def customer() -> Response:
    """A customer's orders, services and saved cards (?email=)."""
    return jsonify(state.customer_state(_customer(request.args.get("email"))))


@bp.post("/staff")
def new_staff() -> Response:
    """A fresh staff account for a test (role operatore or amministratore), with its secret."""
    body = _body()
    email = f"staff-{secrets.token_hex(5)}@pecshop.test"
    password = secrets.token_urlsafe(12)
    try:
        staff = create_staff(email, "Staff di prova", str(body.get("role", "operatore")), password)
        # Enrolled already, as if its one-time link had been used: the test logs in with the
        # password and the code of this secret (the link itself has its own tests).
        staff.totp_confirmed = True
        commit()
    except DomainError as exc:
        rollback()
        raise Refused(400, exc.message) from None
    return jsonify(email=staff.email, password=password, totp_secret=staff.totp_secret)
