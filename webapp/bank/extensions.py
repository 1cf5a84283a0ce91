"""The mock bank's own extension instances (never shared with the shop) and its clock."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base of the bank's models: its own metadata, apart from the shop's."""


db = SQLAlchemy(model_class=Base)
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, storage_uri="memory://")
#: Posts of the code form per payment: the 3-D Secure attempt limit (BANK_OTP_MAX_ATTEMPTS
#: wrong codes fail the payment) is the real guard; this only stops hammering one payment.
OTP_RATE_LIMIT_PER_PAYMENT = "10 per minute"
#: Per client address, loose: customers behind one NAT (an office, a mobile carrier) each have
#: their own payments, and one busy address must not block the others' code pages.
OTP_RATE_LIMIT_PER_IP = "300 per minute"


def now_utc() -> datetime:
    """The real time, UTC-aware."""
    return datetime.now(UTC)


def bank_now() -> datetime:
    """The bank's business clock: BANK_CLOCK when configured (tests), else the real time."""
    clock = current_app.config.get("BANK_CLOCK")
    return clock() if clock else now_utc()
