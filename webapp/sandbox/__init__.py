"""The sandbox API for QA: a test clock, the e-mails sent, and states as the back office sees them.

On only when the deployment says so (`SANDBOX=1` with a `SANDBOX_TOKEN`), never with
`APP_ENV=production`: otherwise the blueprint is not even registered, so every sandbox URL is a
404. Each call carries `Authorization: Bearer <token>` (401 without it) and answers JSON, with
the errors in Italian. The mock bank has its own (webapp.bank.sandbox).

Entry point: `register_sandbox(app)` (the app factory), nothing else; the routes are in
`views.py`, the JSON views of the data in `state.py`, the test clock in `clock.py`.
"""

from __future__ import annotations

import logging

from flask import Flask

log = logging.getLogger(__name__)


def sandbox_enabled(config) -> bool:
    """SANDBOX=1 and a token, outside production."""
    return bool(
        config.get("SANDBOX")
        and config.get("SANDBOX_TOKEN")
        and config.get("ENV_NAME") != "production"
    )


def register_sandbox(app: Flask) -> None:
    """Register the sandbox's routes when enabled (else none exists: every URL is a 404)."""
    if not sandbox_enabled(app.config):
        if app.config.get("SANDBOX") and app.config.get("ENV_NAME") == "production":
            log.warning("SANDBOX ignored: APP_ENV=production")
        return
    from webapp.extensions import csrf
    from webapp.sandbox.views import bp

    csrf.exempt(bp)  # a bearer token, no browser session
    app.register_blueprint(bp)
