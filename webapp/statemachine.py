"""State transitions that hold under concurrency: allowed-by-table, then compare-and-set in SQL."""

from __future__ import annotations

import enum
from collections.abc import Mapping

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value

from webapp.errors import InvalidTransition
from webapp.extensions import db


def transition(
    obj: db.Model,
    new: enum.Enum,
    allowed: Mapping[enum.Enum, set[enum.Enum]],
    message: str,
    **values,
) -> None:
    """Move `obj.status` to `new`, or raise InvalidTransition.

    The UPDATE only matches the row while it still has the status we read, so of two
    processes racing to mark the same thing paid, exactly one wins.
    """
    old = obj.status
    if new not in allowed.get(old, set()):
        raise InvalidTransition(message)
    model = type(obj)
    result = db.session.execute(
        update(model)
        .where(model.id == obj.id, model.status == old)
        .values(status=new, **values)
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount != 1:
        db.session.refresh(obj)
        raise InvalidTransition(message)
    # Keep the in-memory object in step with the row, as its committed state: the row has these
    # values already, so no second UPDATE is flushed for them.
    set_committed_value(obj, "status", new)
    for key, value in values.items():
        set_committed_value(obj, key, value)
