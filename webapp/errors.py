"""Domain errors: each carries the Italian message the customer reads."""

from __future__ import annotations


class DomainError(Exception):
    """A refused request; `message` is shown to the customer as it is."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """The object does not exist or belongs to another customer (both look the same)."""

    def __init__(self, message: str = "Risorsa non trovata."):
        super().__init__(message)


class InvalidChoice(DomainError):
    """A posted value outside the allowed ones (years, payment method, card)."""


class DiscountRefused(DomainError):
    """A codice sconto that cannot be applied, with the reason."""


class CheckoutError(DomainError):
    """The order cannot be confirmed as it is."""


class InvalidTransition(DomainError):
    """A state change that the state machine does not allow (e.g. paying a paid order)."""


class PaymentError(DomainError):
    """A payment that did not go through; the order stays payable."""
