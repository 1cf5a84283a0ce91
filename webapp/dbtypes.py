"""Column types shared by the models."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import DateTime, Enum
from sqlalchemy.types import TypeDecorator

#: The largest id an INTEGER primary key holds: a bigger number is simply unknown, not an error.
MAX_ID = 2**31 - 1


class UTCDateTime(TypeDecorator):
    """A timestamp that is always UTC-aware in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_column(cls: type[enum.Enum]) -> Enum:
    """An enum stored as its value (readable in SQL): a VARCHAR with a check on every database."""
    return Enum(cls, values_callable=lambda e: [m.value for m in e], native_enum=False, length=32)
