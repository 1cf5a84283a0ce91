"""Validation of the API's JSON bodies: keyword arguments for the services, or `Invalid` (400).

Whatever a correctly signed caller sends (a list, a string, a number, wrong types, NUL bytes,
lone surrogates, absurd nesting) ends here as `Invalid`, never as a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

MAX_AMOUNT_CENTS = 100_000_000
INITIATORS = ("customer", "merchant")


class Invalid(Exception):
    """The request body is not what the endpoint accepts (the message says which field)."""


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object (a list, a scalar, bad UTF-8 or deep nesting is Invalid)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[…" a million deep
        raise Invalid("body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type, check: Callable[[Any], bool]) -> Any:
    value = body.get(name)
    # bool is an int in Python: a JSON true is not an amount.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or not check(value):
        raise Invalid(f"{name}: missing or invalid")
    if kind is str and not _storable(value):
        raise Invalid(f"{name}: missing or invalid")
    return value


def _storable(value: str) -> bool:
    """No NUL byte (PostgreSQL can neither store nor compare one), no lone surrogate ("\\ud800")."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and len(value) <= 2000


def _text(limit: int) -> Callable[[Any], bool]:
    return lambda v: 0 < len(v.strip()) <= limit


def _amount(minimum: int) -> Callable[[Any], bool]:
    return lambda v: minimum <= v <= MAX_AMOUNT_CENTS


def _eur(value: str) -> bool:
    return value == "EUR"


def _description(value: str) -> bool:
    return len(value) <= 200


def payment_request(raw: bytes) -> dict[str, Any]:
    """POST /api/payments: the arguments of payments.create_payment (without `now`)."""
    body = json_object(raw)
    args = {
        "amount_cents": _field(body, "amount_cents", int, _amount(0)),
        "currency": _field(body, "currency", str, _eur),
        "order_ref": _field(body, "order_ref", str, _text(64)),
        "description": _field(body, "description", str, _description),
        "return_url": _field(body, "return_url", str, _is_http_url),
        "notify_url": None,
        "save_card": _field(body, "save_card", bool, lambda v: True),
        "idempotency_key": _field(body, "idempotency_key", str, _text(128)),
    }
    if body.get("notify_url") is not None:
        args["notify_url"] = _field(body, "notify_url", str, _is_http_url)
    if args["amount_cents"] == 0 and not args["save_card"]:
        raise Invalid("a card verification (amount_cents 0) needs save_card true")
    return args


def _money_move(body: dict[str, Any]) -> dict[str, Any]:
    """The fields every charge and refund has: a positive amount in euro and its key."""
    return {
        "amount_cents": _field(body, "amount_cents", int, _amount(1)),
        "currency": _field(body, "currency", str, _eur),
        "idempotency_key": _field(body, "idempotency_key", str, _text(128)),
    }


def charge_request(raw: bytes) -> dict[str, Any]:
    """POST /api/charges: the arguments of charges.charge_token (without `now`)."""
    body = json_object(raw)
    return {
        "token": _field(body, "token", str, _text(64)),
        "order_ref": _field(body, "order_ref", str, _text(64)),
        "description": _field(body, "description", str, _description),
        "initiator": _field(body, "initiator", str, lambda v: v in INITIATORS),
        **_money_move(body),
    }


def refund_request(raw: bytes) -> dict[str, Any]:
    """POST /api/refunds: the arguments of refunds.refund (without `now`)."""
    body = json_object(raw)
    return {
        "target_id": _field(body, "payment_ref", str, _text(64)),
        "reason": _field(body, "reason", str, _text(200)),
        **_money_move(body),
    }
