"""The unit of work: one commit per request (or per scheduler item), one rerun after a clash.

Views, the renewal engine and the CLI end their transactions here; services only flush.
What must happen after a commit hooks the session's after-commit event (the outbox sends the
e-mails its transaction queued, see webapp.outbox.services), so no caller can forget it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError

from webapp.extensions import db

T = TypeVar("T")


def commit() -> None:
    """Commit the transaction (the after-commit hooks then run, e.g. the outbox send)."""
    db.session.commit()


def rollback() -> None:
    """Roll back; what the transaction queued (e-mails) is forgotten with it."""
    db.session.rollback()


def once_more_after_conflict(action: Callable[[], T]) -> T:
    """Run `action` (which commits); when a concurrent twin won a unique key first, roll back
    and run it once more: the twin's row is visible then, and the action finds it."""
    try:
        return action()
    except IntegrityError:
        rollback()
        return action()
