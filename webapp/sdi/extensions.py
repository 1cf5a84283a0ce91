"""The mock intermediary's own extension instances (never shared with the shop) and its clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base of the intermediary's models: its own metadata, apart from the shop's."""


db = SQLAlchemy(model_class=Base)


def now_utc() -> datetime:
    """The real time, UTC-aware."""
    return datetime.now(UTC)


def sdi_now() -> datetime:
    """The intermediary's business clock: SDI_CLOCK when configured (tests), else the real time
    moved forward by the offset that `python -m webapp.sdi clock` or POST /api/v1/orologio set."""
    clock = current_app.config.get("SDI_CLOCK")
    if clock:
        return clock()
    offset = db.session.execute(
        text("SELECT value FROM sdi_setting WHERE key = 'clock_offset_seconds'")
    ).scalar()
    return now_utc() + timedelta(seconds=offset or 0)
