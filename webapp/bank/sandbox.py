"""The bank's JSON sandbox for QA: the movements of one order, as the bank recorded them.

Registered only when enabled (see `sandbox_enabled`); each call needs
`Authorization: Bearer <SANDBOX_TOKEN>` (401 without it). The shop's side is webapp.sandbox.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select

from .extensions import db
from .models import Charge, Notification, Payment, Refund

sandbox = Blueprint("sandbox", __name__, url_prefix="/sandbox/api")


@sandbox.before_request
def require_token() -> tuple[Response, int, dict] | None:
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    expected = current_app.config["SANDBOX_TOKEN"]
    if scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), expected.encode()):
        return None
    message = "Serve il token del sandbox: intestazione Authorization: Bearer <token>."
    return jsonify(errore=message), 401, {"WWW-Authenticate": 'Bearer realm="sandbox"'}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@sandbox.get("/movimenti")
def movements() -> tuple[Response, int] | Response:
    """?ordine=ORD-12 (the shop's reference), or ?pagamento=pay_… (the order of that payment)."""
    ref = request.args.get("ordine", "").strip()
    payment_id = request.args.get("pagamento", "").strip()
    if payment_id and not ref:
        found = db.session.get(Payment, payment_id[:64])
        if found is None:
            return jsonify(errore="Pagamento non trovato."), 404
        ref = found.order_ref
    if not ref:
        return jsonify(errore="Indica l'ordine: ?ordine=<riferimento> oppure ?pagamento=<id>."), 400
    return jsonify(order_movements(ref[:64]))


def order_movements(ref: str) -> dict[str, Any]:
    """Hosted payments (any state, with their notifications), charges and refunds of `ref`."""
    payments = db.session.scalars(
        select(Payment).where(Payment.order_ref == ref).order_by(Payment.created_at)
    ).all()
    charges = db.session.scalars(
        select(Charge).where(Charge.order_ref == ref).order_by(Charge.created_at)
    ).all()
    ids = [p.id for p in payments]
    charge_ids = [c.id for c in charges]
    refunds = db.session.scalars(
        select(Refund)
        .where(Refund.payment_id.in_(ids) | Refund.charge_id.in_(charge_ids))
        .order_by(Refund.created_at)
    ).all()
    notifications = db.session.scalars(
        select(Notification).where(Notification.payment_id.in_(ids)).order_by(Notification.id)
    ).all()
    return {
        "order_ref": ref,
        "payments": [
            _payment(p, [n for n in notifications if n.payment_id == p.id]) for p in payments
        ],
        "charges": [_charge(c) for c in charges],
        "refunds": [_refund(r) for r in refunds],
    }


def _payment(payment: Payment, notifications: list[Notification]) -> dict[str, Any]:
    return {
        "id": payment.id,
        "status": str(payment.status),
        "amount_cents": payment.amount_cents,
        "refunded_cents": payment.refunded_cents,
        "challenge": payment.challenge_method,
        "save_card": payment.save_card,
        "decline_code": payment.decline_code,
        "created_at": _iso(payment.created_at),
        "finished_at": _iso(payment.finished_at),
        "notifications": [
            {
                "attempts": n.attempts,
                "delivered_at": _iso(n.delivered_at),
                "gave_up_at": _iso(n.gave_up_at),
            }
            for n in notifications
        ],
    }


def _charge(charge: Charge) -> dict[str, Any]:
    return {
        "id": charge.id,
        "status": str(charge.status),
        "amount_cents": charge.amount_cents,
        "refunded_cents": charge.refunded_cents,
        "initiator": charge.initiator,
        "decline_code": charge.decline_code,
        "created_at": _iso(charge.created_at),
    }


def _refund(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "target": refund.payment_id or refund.charge_id,
        "status": str(refund.status),
        "amount_cents": refund.amount_cents,
        "reason": refund.reason,
    }
