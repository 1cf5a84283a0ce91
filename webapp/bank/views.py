"""Routes of the mock bank: the signed JSON API and the hosted pages (Italian)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from webapp.signing import MERCHANT_HEADER, BadSignature, verify_request

from . import notifier, services
from .cards import BEHAVIOUR_LABELS, BRAND_LABELS, TEST_CARDS, detect_brand, grouped
from .extensions import OTP_RATE_LIMIT, bank_now, db, limiter
from .models import Payment, PaymentStatus

api = Blueprint("api", __name__, url_prefix="/api")
pages = Blueprint("pages", __name__)

S = PaymentStatus


# ---- API -----------------------------------------------------------------------------------


def _error(status: int, error: str, detail: str | None = None) -> Response:
    body: dict[str, str] = {"error": error}
    if detail:
        body["detail"] = detail
    response = jsonify(body)
    response.status_code = status
    return response


@api.before_request
def check_signature() -> Response | None:
    """Every API call must be signed by the merchant with the shared secret, recently."""
    cfg = current_app.config
    try:
        if request.headers.get(MERCHANT_HEADER) != cfg["BANK_MERCHANT_ID"]:
            raise BadSignature("unknown merchant")
        # Freshness is checked against wall-clock time, not the (possibly frozen) business clock.
        verify_request(
            cfg["BANK_SHARED_SECRET"],
            request.method,
            request.path,
            request.get_data(),
            request.headers,
            now=int(time.time()),
        )
    except BadSignature:
        return _error(401, "bad_signature")
    return None


class _Invalid(Exception):
    pass


def _field(body: dict[str, Any], name: str, kind: type, check: Callable[[Any], bool]) -> Any:
    value = body.get(name)
    # bool is an int in Python: a JSON true is not an amount.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or not check(value):
        raise _Invalid(f"{name}: missing or invalid")
    if kind is str and "\x00" in value:  # PostgreSQL can neither store nor compare a NUL byte
        raise _Invalid(f"{name}: missing or invalid")
    return value


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and len(value) <= 2000


def _text(limit: int) -> Callable[[Any], bool]:
    return lambda v: 0 < len(v.strip()) <= limit


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _Invalid("body must be a JSON object")
    return body


def _idempotent_create(
    action: Callable[[], tuple[Any, bool]], to_json: Callable[[Any], dict[str, Any]]
) -> Response:
    """Run an idempotent create and commit: 201 when created, 200 with the same body on a replay.

    If a concurrent twin won the UNIQUE key, the action runs again and finds the twin's row.
    """
    try:
        try:
            row, created = action()
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            row, created = action()
    except services.IdempotencyConflict:
        return _error(409, "idempotency_conflict")
    except services.UnknownToken:
        return _error(404, "unknown_token")
    response = jsonify(to_json(row))
    response.status_code = 201 if created else 200
    return response


@api.post("/payments")
def create_payment() -> Response:
    """Create a hosted payment (idempotent by key)."""
    try:
        body = _json_body()
        amount = _field(body, "amount_cents", int, lambda v: 0 <= v <= 100_000_000)
        currency = _field(body, "currency", str, lambda v: v == "EUR")
        order_ref = _field(body, "order_ref", str, _text(64))
        description = _field(body, "description", str, lambda v: len(v) <= 200)
        return_url = _field(body, "return_url", str, _is_http_url)
        notify_url = body.get("notify_url")
        if notify_url is not None:
            notify_url = _field(body, "notify_url", str, _is_http_url)
        save_card = _field(body, "save_card", bool, lambda v: True)
        key = _field(body, "idempotency_key", str, _text(128))
        if amount == 0 and not save_card:
            raise _Invalid("a card verification (amount_cents 0) needs save_card true")
    except _Invalid as exc:
        return _error(400, "invalid_request", str(exc))

    def action() -> tuple[Payment, bool]:
        return services.create_payment(
            amount_cents=amount,
            currency=currency,
            order_ref=order_ref,
            description=description,
            return_url=return_url,
            notify_url=notify_url,
            save_card=save_card,
            idempotency_key=key,
            now=bank_now(),
        )

    return _idempotent_create(
        action,
        lambda payment: {
            "payment_id": payment.id,
            "redirect_url": _card_page_url(payment),
            "status": str(payment.status),
        },
    )


def _card_page_url(payment: Payment) -> str:
    """Absolute URL of the hosted page: BANK_PUBLIC_URL if set, else the host the shop called."""
    public = current_app.config.get("BANK_PUBLIC_URL")
    if public:
        return public.rstrip("/") + url_for("pages.card_page", payment_id=payment.id)
    return url_for("pages.card_page", payment_id=payment.id, _external=True)


@api.get("/payments/<payment_id>")
def payment_status(payment_id: str) -> Response:
    """The payment's status; the shop asks this before marking anything paid."""
    payment = services.get_payment(payment_id)
    if payment is None:
        return _error(404, "not_found")
    return jsonify(services.payment_to_dict(payment))


@api.post("/charges")
def create_charge() -> Response:
    """Charge a saved card by token (idempotent by key)."""
    try:
        body = _json_body()
        token = _field(body, "token", str, _text(64))
        amount = _field(body, "amount_cents", int, lambda v: 0 < v <= 100_000_000)
        currency = _field(body, "currency", str, lambda v: v == "EUR")
        order_ref = _field(body, "order_ref", str, _text(64))
        description = _field(body, "description", str, lambda v: len(v) <= 200)
        initiator = _field(body, "initiator", str, lambda v: v in ("customer", "merchant"))
        key = _field(body, "idempotency_key", str, _text(128))
    except _Invalid as exc:
        return _error(400, "invalid_request", str(exc))

    def action() -> tuple[Any, bool]:
        return services.charge_token(
            token=token,
            amount_cents=amount,
            currency=currency,
            order_ref=order_ref,
            description=description,
            initiator=initiator,
            idempotency_key=key,
            now=bank_now(),
        )

    return _idempotent_create(action, services.charge_to_dict)


@api.get("/charges/by-key/<path:idempotency_key>")
def charge_by_key(idempotency_key: str) -> Response:
    """Find the outcome of a charge the shop missed (timeout)."""
    charge = services.find_charge_by_key(idempotency_key)
    if charge is None:
        return _error(404, "not_found")
    return jsonify(services.charge_to_dict(charge))


@api.delete("/tokens/<token>")
def delete_token(token: str) -> Response:
    """Forget a saved card (idempotent)."""
    services.revoke_token(token, now=bank_now())
    db.session.commit()
    return Response(status=204)


@api.get("/stats")
def stats() -> Response:
    """Counters used by tests."""
    return jsonify(dict(services.stats()))


# ---- hosted pages --------------------------------------------------------------------------


def _load(payment_id: str) -> Payment:
    payment = services.get_payment(payment_id)
    if payment is None:
        abort(404)
    return payment


def _see_other(url: str) -> Response:
    return redirect(url, code=303)


def _step_url(payment: Payment) -> str:
    """Where the customer belongs now, given the payment's status."""
    if payment.status.is_final:
        return url_for("pages.result", payment_id=payment.id)
    return url_for("pages.card_page", payment_id=payment.id)


def _commit_and_notify() -> None:
    db.session.commit()
    notifier.wake(current_app)


def _card_form(payment: Payment, errors: dict[str, str], form: dict[str, str]) -> Response:
    year = bank_now().year
    html = render_template(
        "bank/card_form.html",
        payment=payment,
        errors=errors,
        form=form,
        years=range(year, year + 16),
    )
    return make_response(html, 422 if errors else 200)


@pages.get("/")
def home() -> str:
    """The sandbox's front door: what it is, and the test cards with what each one does."""
    cards = [
        (grouped(number), BRAND_LABELS[detect_brand(number)], BEHAVIOUR_LABELS[behaviour])
        for number, behaviour in TEST_CARDS.items()
    ]
    return render_template("bank/home.html", cards=cards)


@pages.get("/pay/<payment_id>")
def card_page(payment_id: str) -> Response | str:
    """The current step: card form, summary, 3-D Secure challenge, or the result."""
    payment = _load(payment_id)
    if payment.status == S.CREATED:
        return _card_form(payment, {}, {})
    if payment.status == S.PENDING_CONFIRMATION:
        return render_template("bank/summary.html", payment=payment)
    if payment.status == S.CHALLENGE and payment.challenge_method == services.CHALLENGE_SMS:
        return _otp_page(payment, None)
    if payment.status == S.CHALLENGE:
        return render_template("bank/app_wait.html", payment=payment)
    return _see_other(_step_url(payment))


@pages.get("/pay/<payment_id>/edit")
def edit_card(payment_id: str) -> Response:
    """Back from the summary to correct the card (the number must be typed again)."""
    payment = _load(payment_id)
    if payment.status not in (S.CREATED, S.PENDING_CONFIRMATION):
        return _see_other(_step_url(payment))
    form = {"holder": payment.holder or ""}
    if payment.exp_month and payment.exp_year:
        form |= {"exp_month": f"{payment.exp_month:02d}", "exp_year": str(payment.exp_year)}
    return _card_form(payment, {}, form)


@pages.post("/pay/<payment_id>")
def submit_card(payment_id: str) -> Response:
    """'Procedi': validate and keep the card, then show the summary."""
    payment = _load(payment_id)
    f = request.form
    try:
        services.submit_card(
            payment,
            holder=f.get("holder", ""),
            number=f.get("number", ""),
            exp_month=f.get("exp_month", ""),
            exp_year=f.get("exp_year", ""),
            cvv=f.get("cvv", ""),
            now=bank_now(),
        )
    except services.InvalidTransition:
        return _see_other(_step_url(payment))
    except services.CardInvalid as exc:
        # Echo holder and expiry only: the number and the CVV are never sent back.
        form = {k: f.get(k, "") for k in ("holder", "exp_month", "exp_year")}
        return _card_form(payment, exc.errors, form)
    db.session.commit()
    return _see_other(url_for("pages.card_page", payment_id=payment.id))


@pages.post("/pay/<payment_id>/confirm")
def confirm(payment_id: str) -> Response:
    """'Invio dati': run the card's behaviour; then the challenge or the result."""
    payment = _load(payment_id)
    try:
        services.confirm_payment(payment, now=bank_now())
    except services.InvalidTransition:
        return _see_other(_step_url(payment))
    _commit_and_notify()
    return _see_other(_step_url(payment))


def _otp_page(payment: Payment, error: str | None, status: int = 200) -> Response:
    html = render_template("bank/otp.html", payment=payment, error=error)
    return make_response(html, status)


@pages.post("/pay/<payment_id>/otp")
@limiter.limit(OTP_RATE_LIMIT)
def submit_otp(payment_id: str) -> Response:
    """'Conferma' on the SMS OTP page."""
    payment = _load(payment_id)
    code = request.form.get("otp", "").strip()
    waiting_sms = payment.challenge_method == services.CHALLENGE_SMS
    if payment.status == S.CHALLENGE and waiting_sms and not (code.isdigit() and len(code) == 6):
        return _otp_page(payment, "Il codice OTP è formato da 6 cifre.", 422)
    try:
        services.verify_otp(
            payment,
            code,
            max_attempts=current_app.config["BANK_OTP_MAX_ATTEMPTS"],
            now=bank_now(),
        )
    except services.InvalidTransition:
        return _see_other(_step_url(payment))
    except services.WrongOtp as exc:
        db.session.commit()
        return _otp_page(payment, f"Codice errato. Tentativi rimasti: {exc.attempts_left}", 422)
    _commit_and_notify()
    return _see_other(_step_url(payment))


@pages.get("/pay/<payment_id>/app/status")
def app_status(payment_id: str) -> Response:
    """Polled by htmx while the customer decides in the bank app."""
    payment = _load(payment_id)
    htmx = request.headers.get("HX-Request") == "true"
    if not htmx:
        response = _see_other(_step_url(payment))
    else:
        response = make_response(render_template("bank/_app_status.html", payment=payment))
        if payment.status.is_final:
            response.headers["HX-Redirect"] = _step_url(payment)
    response.headers["Vary"] = "HX-Request"
    response.headers["Cache-Control"] = "no-store"
    return response


@pages.get("/app/<payment_id>")
def bank_app(payment_id: str) -> str:
    """The simulated bank app on the customer's phone."""
    return render_template("bank/app_phone.html", payment=_load(payment_id))


@pages.post("/app/<payment_id>/<any(approve, refuse):decision>")
def decide(payment_id: str, decision: str) -> Response:
    """'Approva' / 'Rifiuta' in the simulated bank app."""
    payment = _load(payment_id)
    try:
        services.decide_in_app(payment, approve=decision == "approve", now=bank_now())
    except services.InvalidTransition:
        pass  # already decided: the app page shows the outcome, nothing changes
    else:
        _commit_and_notify()
    return _see_other(url_for("pages.bank_app", payment_id=payment.id))


@pages.get("/pay/<payment_id>/result")
def result(payment_id: str) -> Response | str:
    """The outcome and the signed link 'torna al negozio' (the same link on every reload)."""
    payment = _load(payment_id)
    if not payment.status.is_final:
        return _see_other(_step_url(payment))
    back = services.return_url(payment, current_app.config["BANK_SHARED_SECRET"])
    return render_template("bank/result.html", payment=payment, return_url=back)
