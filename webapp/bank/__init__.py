"""The mock bank ("Banca Sella · Sandbox"): a separate Flask app with its own database.

Owns hosted payments with 3-D Secure (payments.py, pages.py), saved cards' tokens and charges
(charges.py), refunds (refunds.py), the signed notifications to the shop (notifier.py) and its
JSON API (api.py) and sandbox (sandbox.py, ledger.py). It imports nothing of the shop but
webapp.signing. Entry points: `create_bank_app(config)`, and `python -m webapp.bank`.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .extensions import csrf, db, limiter

PROJECT_ROOT = Path(__file__).resolve().parents[2]

SECURITY_HEADERS = {
    # "torna al negozio" is a link, not a form: form-action 'self' is enough.
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


MSG_BAD_CHARACTERS = (
    "I dati inviati contengono caratteri non ammessi: torna indietro, correggili e riprova."
)


def _env_bool(value: str) -> bool:
    return value.strip().lower() not in ("0", "false", "no", "off", "")


def _settings(config: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults, overridden by environment variables of the same name, then by `config`."""
    settings: dict[str, Any] = {
        "BANK_DATABASE_URL": f"sqlite:///{PROJECT_ROOT / 'instance' / 'bank.db'}",
        "BANK_MERCHANT_ID": "pec-shop",
        "BANK_MERCHANT_NAME": "PEC Shop",
        "BANK_SHARED_SECRET": "dev-bank-secret-change-me",
        "SECRET_KEY": "dev-bank-session-key-change-me",
        "BANK_OTP_MAX_ATTEMPTS": 3,
        "BANK_NOTIFY_ENABLED": True,
        "BANK_CLOCK": None,
        "BANK_NOTIFY_POST": None,
        "BANK_PUBLIC_URL": None,
        # Shop and bank may share a host (ports do not separate cookies): keep the cookie apart.
        "SESSION_COOKIE_NAME": "bank_session",
        "SESSION_COOKIE_SAMESITE": "Lax",
        # The JSON sandbox for QA (webapp.bank.sandbox): SANDBOX=1 with a token, not production.
        "APP_ENV": "development",
        "SANDBOX": False,
        "SANDBOX_TOKEN": "",
    }
    casts = {
        "BANK_OTP_MAX_ATTEMPTS": int,
        "BANK_NOTIFY_ENABLED": _env_bool,
        "SANDBOX": _env_bool,
    }
    for key in (
        "BANK_DATABASE_URL",
        "BANK_MERCHANT_ID",
        "BANK_MERCHANT_NAME",
        "BANK_SHARED_SECRET",
        "SECRET_KEY",
        "BANK_OTP_MAX_ATTEMPTS",
        "BANK_NOTIFY_ENABLED",
        "BANK_PUBLIC_URL",
        "APP_ENV",
        "SANDBOX",
        "SANDBOX_TOKEN",
    ):
        if key in os.environ:
            settings[key] = casts.get(key, str)(os.environ[key])
    settings.update(config or {})
    return settings


def create_bank_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the mock bank app; it creates its tables and, if enabled, starts the notifier."""
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(PROJECT_ROOT / "instance"),
    )
    app.config.update(_settings(config))
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["BANK_DATABASE_URL"]

    _register_extensions(app)
    _register_blueprints(app)
    _register_handlers(app)

    if app.config["BANK_NOTIFY_ENABLED"]:
        from .notifier import start_notifier

        start_notifier(app)
    return app


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL, a busy timeout and foreign keys on every new SQLite connection."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _register_extensions(app: Flask) -> None:
    if app.config["BANK_DATABASE_URL"].startswith("sqlite:///"):
        Path(app.config["BANK_DATABASE_URL"].removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    db.init_app(app)
    csrf.init_app(app)
    app.config.setdefault("RATELIMIT_ENABLED", not app.config.get("TESTING", False))
    limiter.init_app(app)
    from . import models  # noqa: F401  (registers the tables)

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)
        db.create_all()


def _register_blueprints(app: Flask) -> None:
    from .api import api
    from .pages import pages

    csrf.exempt(api)  # HMAC-authenticated, no browser session involved
    app.register_blueprint(api)
    app.register_blueprint(pages)
    if sandbox_enabled(app.config):
        from .sandbox import sandbox

        app.register_blueprint(sandbox)


def sandbox_enabled(config: Any) -> bool:
    """The JSON sandbox: SANDBOX=1 and a token, never with APP_ENV=production (then 404)."""
    return bool(
        config.get("SANDBOX")
        and config.get("SANDBOX_TOKEN")
        and config.get("APP_ENV") != "production"
    )


def _register_handlers(app: Flask) -> None:
    from .cards import BRAND_LABELS
    from .ledger import format_eur

    app.add_template_filter(format_eur, "eur")

    @app.context_processor
    def merchant() -> dict[str, Any]:
        return {"merchant_name": app.config["BANK_MERCHANT_NAME"], "brand_labels": BRAND_LABELS}

    @app.before_request
    def refuse_nul_bytes() -> Response | tuple[str, int] | None:
        """No id or field has a NUL byte, and PostgreSQL cannot even look one up: 400."""
        fields = [*request.args.items(multi=True), *request.form.items(multi=True)]
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in fields):
            if request.path.startswith("/api/"):
                abort(400)
            return render_template("bank/error.html", message=MSG_BAD_CHARACTERS), 400
        return None

    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.endpoint != "static":
            # Payment pages and API answers are about live state: never from a cache.
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> tuple[str, int]:
        message = "La sessione è scaduta o la pagina non è più valida: ricarica e riprova."
        return render_template("bank/error.html", message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | tuple[str, int]:
        code = exc.code or 500
        if request.path.startswith("/api/"):
            response = jsonify(error="not_found" if code == 404 else "http_error")
            response.status_code = code
            return response
        message = "Pagamento non trovato." if code == 404 else "Richiesta non valida."
        return render_template("bank/error.html", message=message), code
