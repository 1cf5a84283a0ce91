"""The mock bank's server-to-server JSON API: signed requests in, signed answers out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from webapp.signing import MERCHANT_HEADER, BadSignature, sign_request, verify_request

from . import charges, errors, idempotency, ledger, payments, refunds
from .extensions import bank_now, db
from .inputs import Invalid, charge_request, payment_request, refund_request
from .models import Charge, Payment, Refund

api = Blueprint("api", __name__, url_prefix="/api")


def response_method(status: int, method: str) -> str:
    """The "method" a response is signed with: never valid as a request's (docs/bank-api.md)."""
    return f"RESPONSE {status} {method.upper()}"


def _error(status: int, error: str, detail: str | None = None) -> Response:
    body: dict[str, str] = {"error": error}
    if detail:
        body["detail"] = detail
    response = jsonify(body)
    response.status_code = status
    return response


@api.before_request
def check_signature() -> Response | None:
    """Every API call must be signed by the merchant with the shared secret, recently."""
    cfg = current_app.config
    try:
        if request.headers.get(MERCHANT_HEADER) != cfg["BANK_MERCHANT_ID"]:
            raise BadSignature("unknown merchant")
        # Freshness is checked against wall-clock time, not the (possibly frozen) business clock.
        verify_request(
            cfg["BANK_SHARED_SECRET"],
            request.method,
            request.path,
            request.get_data(),
            request.headers,
            now=int(time.time()),
        )
    except BadSignature:
        return _error(401, "bad_signature")
    return None


@api.after_app_request
def sign_response(response: Response) -> Response:
    """Every answer under /api/ (errors too) is signed, so the client can trust what it reads."""
    if request.path.startswith("/api/"):
        cfg = current_app.config
        headers = sign_request(
            cfg["BANK_SHARED_SECRET"],
            cfg["BANK_MERCHANT_ID"],
            response_method(response.status_code, request.method),
            request.path,
            response.get_data(),
            int(time.time()),
        )
        response.headers.update(headers)
    return response


@api.errorhandler(Invalid)
def invalid_request(exc: Invalid) -> Response:
    return _error(400, "invalid_request", str(exc))


def _idempotent_create(
    action: Callable[[], tuple[Any, bool]], to_json: Callable[[Any], dict[str, Any]]
) -> Response:
    """Run an idempotent create and commit: 201 when created, 200 with the same body on a replay.

    If a concurrent twin won the UNIQUE key, the action runs again and finds the twin's row.
    A refusal rolls back whatever the action flushed.
    """
    try:
        try:
            row, created = action()
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            row, created = action()
            db.session.commit()
    except errors.BankError as exc:
        db.session.rollback()
        return _refusal(exc)
    if isinstance(row, Charge | Refund) and charges.answer_lost(row):
        return _error(504, "gateway_timeout")  # done and committed; only the answer is lost
    response = jsonify(_with_merchant(to_json(row)))
    response.status_code = 201 if created else 200
    return response


def _refusal(exc: errors.BankError) -> Response:
    if isinstance(exc, errors.IdempotencyConflict):
        return _error(409, "idempotency_conflict")
    if isinstance(exc, errors.UnknownToken):
        return _error(404, "unknown_token")
    if isinstance(exc, errors.NotFound):
        return _error(404, "not_found")
    if isinstance(exc, errors.RefundRefused):
        return _error(422, exc.code, exc.detail)
    raise exc


@api.post("/payments")
def create_payment() -> Response:
    """Create a hosted payment (idempotent by key)."""
    return _create(payment_request, payments.create_payment, _payment_json)


def _payment_json(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.id,
        "redirect_url": _card_page_url(payment),
        "status": str(payment.status),
    }


def _card_page_url(payment: Payment) -> str:
    """Absolute URL of the hosted page: BANK_PUBLIC_URL if set, else the host the shop called."""
    public = current_app.config.get("BANK_PUBLIC_URL")
    if public:
        return public.rstrip("/") + url_for("pages.card_page", payment_id=payment.id)
    return url_for("pages.card_page", payment_id=payment.id, _external=True)


def _create(
    parse: Callable[[bytes], dict[str, Any]],
    create: Callable[..., tuple[Any, bool]],
    to_json: Callable[[Any], dict[str, Any]],
) -> Response:
    """The request body checked by `parse`, then an idempotent create (see _idempotent_create)."""
    args = parse(request.get_data())
    return _idempotent_create(lambda: create(**args, now=bank_now()), to_json)


def _found(row, to_dict) -> Response:
    """The row as JSON, or 404 `not_found`."""
    return _error(404, "not_found") if row is None else jsonify(_with_merchant(to_dict(row)))


def _with_merchant(body: dict[str, Any]) -> dict[str, Any]:
    """Every answer about a payment, charge or refund names the merchant it belongs to."""
    return {**body, "merchant_id": current_app.config["BANK_MERCHANT_ID"]}


@api.get("/payments/<payment_id>")
def payment_status(payment_id: str) -> Response:
    """The payment's status; the shop asks this before marking anything paid."""
    return _found(payments.get_payment(payment_id), payments.payment_to_dict)


@api.post("/charges")
def create_charge() -> Response:
    """Charge a saved card by token (idempotent by key)."""
    return _create(charge_request, charges.charge_token, charges.charge_to_dict)


@api.post("/refunds")
def create_refund() -> Response:
    """Refund (part of) a captured payment or charge (idempotent by key)."""
    return _create(refund_request, refunds.refund, refunds.refund_to_dict)


#: What the shop may look up by idempotency key when it missed the answer (a timeout).
BY_KEY = {
    "charges": (Charge, charges.charge_to_dict),
    "refunds": (Refund, refunds.refund_to_dict),
}


@api.get("/<any(charges, refunds):kind>/by-key/<path:idempotency_key>")
def find_by_key(kind: str, idempotency_key: str) -> Response:
    """The outcome of a charge or refund whose answer the shop missed."""
    model, to_dict = BY_KEY[kind]
    return _found(idempotency.find_by_key(model, idempotency_key), to_dict)


@api.delete("/tokens/<token>")
def delete_token(token: str) -> Response:
    """Forget a saved card (idempotent)."""
    charges.revoke_token(token, now=bank_now())
    db.session.commit()
    return Response(status=204)


@api.get("/stats")
def stats() -> Response:
    """Counters used by tests."""
    return jsonify(dict(ledger.stats()))
