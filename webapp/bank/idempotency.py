"""Idempotency keys of the mock bank: a replayed request finds its row, another one with the
same key is an IdempotencyConflict (the unique `idempotency_key` of each table is the guard)."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select

from .errors import IdempotencyConflict
from .extensions import db
from .models import Charge, Payment, Refund

Keyed = TypeVar("Keyed", Payment, Charge, Refund)


def find_by_key(model: type[Keyed], idempotency_key: str) -> Keyed | None:
    """The payment, charge or refund made with this idempotency key, or None."""
    return db.session.scalar(select(model).filter_by(idempotency_key=idempotency_key))


def replayed(model: type[Keyed], idempotency_key: str, **request: object) -> Keyed | None:
    """The row made with this key, when the request is replayed as it was (None: a new key).

    The same key with another request (any of these fields differs) is an IdempotencyConflict.
    """
    existing = find_by_key(model, idempotency_key)
    if existing is not None and any(
        getattr(existing, name) != value for name, value in request.items()
    ):
        raise IdempotencyConflict(idempotency_key)
    return existing
