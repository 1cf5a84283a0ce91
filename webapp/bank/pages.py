"""The mock bank's hosted pages (Italian): card form, summary, 3-D Secure, result, sandbox."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from . import errors, ledger, notifier, payments
from .cards import BEHAVIOUR_LABELS, BRAND_LABELS, TEST_CARDS, detect_brand, grouped
from .extensions import OTP_RATE_LIMIT_PER_IP, OTP_RATE_LIMIT_PER_PAYMENT, bank_now, db, limiter
from .models import Payment, PaymentStatus

pages = Blueprint("pages", __name__)

S = PaymentStatus

MSG_OTP_FORMAT = "Il codice OTP è formato da 6 cifre."


def _load(payment_id: str) -> Payment:
    payment = payments.get_payment(payment_id)
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


def _otp_page(payment: Payment, error: str | None, status: int = 200) -> Response:
    html = render_template("bank/otp.html", payment=payment, error=error)
    return make_response(html, status)


def _payment_key() -> str:
    """The rate-limit key of the code form: the payment, whoever posts it."""
    return "otp-payment:" + str((request.view_args or {}).get("payment_id", ""))[:80]


@pages.get("/")
def home() -> str:
    """The sandbox's front door: what it is, and the test cards with what each one does."""
    cards = [
        (grouped(number), BRAND_LABELS[detect_brand(number)], BEHAVIOUR_LABELS[behaviour])
        for number, behaviour in TEST_CARDS.items()
    ]
    return render_template("bank/home.html", cards=cards)


@pages.get("/sandbox/movimenti")
def movements() -> str:
    """For QA: the money the sandbox took and gave back (payments, charges, refunds)."""
    return render_template("bank/movements.html", movements=ledger.movements())


@pages.get("/pay/<payment_id>")
def card_page(payment_id: str) -> Response | str:
    """The current step: card form, summary, 3-D Secure challenge, or the result."""
    payment = _load(payment_id)
    if payment.status == S.CREATED:
        return _card_form(payment, {}, {})
    if payment.status == S.PENDING_CONFIRMATION:
        return render_template("bank/summary.html", payment=payment)
    if payments.is_code_challenge(payment):
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
    fields = ("holder", "number", "exp_month", "exp_year", "cvv")
    try:
        payments.submit_card(payment, **{k: f.get(k, "") for k in fields}, now=bank_now())
    except errors.InvalidTransition:
        return _see_other(_step_url(payment))
    except errors.CardInvalid as exc:
        # Echo holder and expiry only: the number and the CVV are never sent back.
        form = {k: f.get(k, "")[:100] for k in ("holder", "exp_month", "exp_year")}
        return _card_form(payment, exc.errors, form)
    db.session.commit()
    return _see_other(url_for("pages.card_page", payment_id=payment.id))


@pages.post("/pay/<payment_id>/confirm")
def confirm(payment_id: str) -> Response:
    """'Invio dati': run the card's behaviour; then the challenge or the result."""
    payment = _load(payment_id)
    try:
        payments.confirm_payment(payment, now=bank_now())
    except errors.InvalidTransition:
        return _see_other(_step_url(payment))
    _commit_and_notify()
    return _see_other(_step_url(payment))


@pages.post("/pay/<payment_id>/cancel")
def cancel(payment_id: str) -> Response:
    """'Annulla e torna al negozio': the payment fails as cancelled, the customer goes back."""
    payment = _load(payment_id)
    try:
        payments.cancel_payment(payment, now=bank_now())
    except errors.InvalidTransition:
        return _see_other(_step_url(payment))
    _commit_and_notify()
    return _see_other(payments.return_url(payment, current_app.config["BANK_SHARED_SECRET"]))


@pages.post("/pay/<payment_id>/otp")
@limiter.limit(OTP_RATE_LIMIT_PER_IP)
@limiter.limit(OTP_RATE_LIMIT_PER_PAYMENT, key_func=_payment_key)
def submit_otp(payment_id: str) -> Response:
    """'Conferma' on the SMS or hardware-token code page."""
    payment = _load(payment_id)
    code = request.form.get("otp", "").strip()
    if payments.is_code_challenge(payment) and not payments.well_formed_otp(code):
        return _otp_page(payment, MSG_OTP_FORMAT, 422)
    max_attempts = current_app.config["BANK_OTP_MAX_ATTEMPTS"]
    try:
        payments.verify_otp(payment, code, max_attempts=max_attempts, now=bank_now())
    except errors.InvalidTransition:
        return _see_other(_step_url(payment))
    except errors.WrongOtp as exc:
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
        payments.decide_in_app(payment, approve=decision == "approve", now=bank_now())
    except errors.InvalidTransition:
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
    back = payments.return_url(payment, current_app.config["BANK_SHARED_SECRET"])
    return render_template("bank/result.html", payment=payment, return_url=back)
