"""Writing the audit log: one row per staff action, in the action's transaction."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import func, select

from webapp.backoffice.models import AuditEntry, StaffUser
from webapp.extensions import db


def jsonable(value: Any) -> Any:
    """Dates, enums and nested values as JSON can hold them."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def snapshot(obj: Any, *fields: str) -> dict[str, Any]:
    """The named attributes of a model, for the before/after columns."""
    return {f: jsonable(getattr(obj, f)) for f in fields}


def record(
    staff: StaffUser | None,
    action: str,
    obj_type: str | None = None,
    obj_id: Any = None,
    *,
    before: Any = None,
    after: Any = None,
    reason: str = "",
    request_id: str | None = None,
    email: str | None = None,
) -> AuditEntry:
    """Append an audit row (flushes; committed with the action it reports)."""
    entry = AuditEntry(
        staff_id=staff.id if staff else None,
        # The e-mail typed at a refused login is the visitor's text: no NUL (PostgreSQL refuses).
        staff_email=(staff.email if staff else email or "")[:254].replace("\x00", ""),
        action=action[:80],
        object_type=obj_type,
        object_id=None if obj_id is None else str(obj_id),
        before=jsonable(before),
        after=jsonable(after),
        reason=(reason or "")[:500].replace("\x00", ""),
        request_id=request_id,
    )
    db.session.add(entry)
    db.session.flush()
    return entry


def written_for(request_id: str) -> bool:
    return bool(
        db.session.scalar(
            select(func.count(AuditEntry.id)).where(AuditEntry.request_id == request_id)
        )
    )


def entries_for(obj_type: str, obj_ids: list[Any]) -> list[AuditEntry]:
    """The audit rows about some objects of one type, oldest first."""
    return list(
        db.session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.object_type == obj_type,
                AuditEntry.object_id.in_([str(i) for i in obj_ids]),
            )
            .order_by(AuditEntry.id)
        )
    )
