"""What every request of the shop gets, whatever its view: body limits, the CSP, no-store.

- `MAX_CONTENT_LENGTH` for every request, a smaller one for the webhooks (read before their
  signature is checked): a larger body is a 413 before anything reads it.
- The Content-Security-Policy, with `form-action` allowing the shop and the bank's hosted page
  (the checkout's forms end at the bank, and Chromium applies form-action to the redirect).
- `Cache-Control: no-store` on every page that may show personal data: a customer's or a staff
  member's session, or a blueprint that only serves such pages.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request, session
from flask_login import current_user

#: Endpoints called by other servers, with a signed body: the small limit.
WEBHOOK_ENDPOINTS = frozenset({"payments.bank_notification"})
#: Blueprints whose every page is about one person (orders, invoices, cards, staff work).
PERSONAL_BLUEPRINTS = frozenset(
    {
        "account",
        "area",
        "orders",
        "withdrawal",
        "billing",
        "invoices",
        "payments",
        "portal",
        "backoffice",
    }
)


def content_security_policy(bank_url: str) -> str:
    """The shop's CSP: same origin only, but forms may also go to the bank's hosted page."""
    parts = urlsplit(bank_url or "")
    bank = f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; "
        f"form-action 'self'{bank}"
    )


def limit_request_body() -> None:
    """The webhooks' smaller limit, set before anything reads the body (werkzeug answers 413)."""
    if request.endpoint in WEBHOOK_ENDPOINTS:
        request.max_content_length = current_app.config["WEBHOOK_MAX_CONTENT_LENGTH"]


def no_store_personal(response: Response) -> Response:
    """Pages with personal data are never kept by the browser or a proxy."""
    if request.endpoint in (None, "static") or response.status_code in (301, 308):
        return response
    personal = request.blueprint in PERSONAL_BLUEPRINTS or "staff_id" in session
    if not personal:
        personal = bool(getattr(current_user, "is_authenticated", False))
    if personal:
        response.headers["Cache-Control"] = "no-store"
        response.headers.pop("Expires", None)
    return response


def install(app: Flask) -> None:
    """Register the hooks (the first before_request: no other hook reads the body earlier)."""
    app.before_request_funcs.setdefault(None, []).insert(0, limit_request_body)
    app.after_request(no_store_personal)
