"""The mock bank's domain errors, and the words of its refusals (declines, refunds)."""

from __future__ import annotations

DECLINE_MESSAGES = {
    "card_declined": "Carta rifiutata dalla banca emittente.",
    "insufficient_funds": "Fondi insufficienti.",
    "expired_card": "Carta scaduta.",
    "authentication_failed": "Autenticazione 3-D Secure non riuscita.",
    "authentication_refused": (
        "Autenticazione 3-D Secure non riuscita: pagamento rifiutato nell'app della banca."
    ),
    "cancelled": "Pagamento annullato: sei tornato al negozio senza pagare.",
    "authentication_required": (
        "La banca richiede l'autenticazione 3-D Secure del titolare: "
        "paga inserendo di nuovo i dati della carta."
    ),
}

#: Why a refund is refused (the API's error code -> an English detail for the merchant).
REFUND_REFUSALS = {
    "not_captured": "only an authorised payment or a succeeded charge with money taken",
    "amount_exceeds_captured": "the refunds would exceed the captured amount",
    "currency_mismatch": "the refund currency differs from the payment's",
}


class BankError(Exception):
    """Base of the bank's domain errors."""


class InvalidTransition(BankError):
    """A step was attempted that the payment's current status does not allow."""


class IdempotencyConflict(BankError):
    """An idempotency key was reused with a different request."""


class UnknownToken(BankError):
    """The card token does not exist or was deleted."""


class NotFound(BankError):
    """No payment or charge with this id."""


class RefundRefused(BankError):
    """The refund cannot be made (code: a key of REFUND_REFUSALS)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
        self.detail = REFUND_REFUSALS[code]


class CardInvalid(BankError):
    """The hosted card form has errors (field -> Italian message)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid card data")
        self.errors = errors


class WrongOtp(BankError):
    """The OTP was wrong but attempts are left."""

    def __init__(self, attempts_left: int) -> None:
        super().__init__("wrong otp")
        self.attempts_left = attempts_left
