"""Extensions, created once and bound to the app in the factory."""

import time
from contextlib import suppress

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

# Named constraints, so migrations can alter them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()
login_manager = LoginManager()
mail = Mail()
csrf = CSRFProtect()
babel = Babel()
limiter = Limiter(key_func=get_remote_address)


def ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection before use only if it sat idle longer than `idle_seconds`.

    A server restart or an idle timeout kills connections that wait in the pool; a busy one is
    in use all the time, so pinging at every checkout (`pool_pre_ping`) costs a round trip per
    request for nothing. A dead idle connection raises DisconnectionError here, and the pool
    replaces it and retries the checkout (SQLAlchemy's documented protocol for this event).
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:
        record.info["webapp_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:
        since = record.info.get("webapp_idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        cursor = None
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
        except Exception as exc:  # the driver's own error: any failure means a dead connection
            raise DisconnectionError() from exc
        finally:
            if cursor is not None:
                with suppress(Exception):  # closing a dead connection's cursor may fail too
                    cursor.close()
