"""The mock intermediary ("SdI · Sandbox"): a separate Flask app with its own database.

It plays an accredited intermediary's REST API in front of the Sistema di Interscambio: it
takes a seller's FatturaPA files, checks them as the SdI does (rejecting with the SdI's codes),
and answers with the SdI's notifications (official XML), pushed to a signed webhook and kept in
a feed read by cursor. It imports nothing of the shop but webapp.signing. Entry points:
`create_sdi_app(config)`, and `python -m webapp.sdi` (serve, or move its clock).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from sqlalchemy import event
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter
from werkzeug.wrappers import Response

from .extensions import db

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_ENV_KEYS = (
    "SDI_DATABASE_URL",
    "SDI_CLIENT_ID",
    "SDI_SHARED_SECRET",
    "SDI_WEBHOOK_URL",
    "SDI_NOTIFY_ENABLED",
)


def _settings(config: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults, overridden by environment variables of the same name, then by `config`."""
    settings: dict[str, Any] = {
        "SDI_DATABASE_URL": f"sqlite:///{PROJECT_ROOT / 'instance' / 'sdi.db'}",
        "SDI_CLIENT_ID": "pec-shop",
        "SDI_SHARED_SECRET": "dev-sdi-secret-change-me",  # nosec B105 # the mock's default
        "SDI_WEBHOOK_URL": None,  # the seller's webhook; None: the seller reads the feed only
        "SDI_NOTIFY_ENABLED": True,
        "SDI_NOTIFY_POST": None,  # tests: a callable standing in for requests.post
        "SDI_CLOCK": None,  # tests: a callable standing in for the sandbox clock
    }
    for key in _ENV_KEYS:
        if key in os.environ:
            value: Any = os.environ[key]
            if key == "SDI_NOTIFY_ENABLED":
                value = value.strip().lower() not in ("0", "false", "no", "off", "")
            settings[key] = value
    settings.update(config or {})
    return settings


def create_sdi_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the intermediary app; it creates its tables and, if enabled, starts the notifier."""
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(PROJECT_ROOT / "instance"),
    )
    app.url_map.converters["int"] = _IdConverter  # before any route is added
    app.config.update(_settings(config))
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["SDI_DATABASE_URL"]
    if app.config["SDI_DATABASE_URL"].startswith("sqlite:///"):
        Path(app.config["SDI_DATABASE_URL"].removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    db.init_app(app)
    from . import models  # noqa: F401  (registers the tables)

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
        db.create_all()

    from .api import api, pages

    app.register_blueprint(api)
    app.register_blueprint(pages)
    _register_handlers(app)
    if app.config["SDI_NOTIFY_ENABLED"]:
        from .notifier import start_notifier

        start_notifier(app)
    return app


class _IdConverter(IntegerConverter):
    """`<int:...>` ids: a number no id column holds is simply not found (404), not a 500."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _register_handlers(app: Flask) -> None:
    @app.before_request
    def refuse_nul_bytes() -> tuple[Response, int] | None:
        if "\x00" in request.path or any("\x00" in v for v in request.args.values()):
            return jsonify(error="richiesta_non_valida"), 400
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault(
            "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        code = exc.code or 500
        names = {401: "non_autorizzato", 404: "non_trovato"}
        return jsonify(error=names.get(code, "richiesta_non_valida")), code
