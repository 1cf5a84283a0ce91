"""Card rules of the sandbox: Luhn, brand, CVV length, expiry and the test-card table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Behaviour(StrEnum):
    """What the sandbox does with a card number."""

    SMS_OTP = "sms_otp"
    APP = "app"
    HW_TOKEN = "hw_token"
    SCA_REQUIRED = "sca_required"
    FRICTIONLESS = "frictionless"
    DECLINED = "declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXPIRED = "expired"
    # Wrong answers on purpose (like real sandboxes' magic values), for amounts > 0 only, so
    # a zero-amount verification succeeds and the card can be saved (docs/bank-api.md).
    WRONG_AMOUNT = "wrong_amount"  # takes, and answers, 1,00 EUR more than asked
    WRONG_ORDER = "wrong_order"  # answers (and books) another order reference
    PENDING = "pending"  # answers "pending": the issuer never confirms, no money taken
    SHORT_REFUND = "short_refund"  # a refund of its payments gives back half of what is asked
    NO_ANSWER = "no_answer"  # charges and refunds are made, the answer is lost (504)


#: The documented test cards (docs/bank-api.md); any other Luhn-valid number is frictionless.
TEST_CARDS: dict[str, Behaviour] = {
    "4111111111111111": Behaviour.SMS_OTP,
    "5555555555554444": Behaviour.APP,
    "4000000000003063": Behaviour.HW_TOKEN,
    "4000002760003184": Behaviour.SCA_REQUIRED,
    "4242424242424242": Behaviour.FRICTIONLESS,
    "378282246310005": Behaviour.FRICTIONLESS,
    "4000000000000002": Behaviour.DECLINED,
    "4000000000009995": Behaviour.INSUFFICIENT_FUNDS,
    "4000000000000069": Behaviour.EXPIRED,
    "4000000000000101": Behaviour.WRONG_AMOUNT,
    "4000000000000200": Behaviour.WRONG_ORDER,
    "4000000000000309": Behaviour.PENDING,
    "4000000000000408": Behaviour.SHORT_REFUND,
    "4000000000000507": Behaviour.NO_ANSWER,
}

#: What each behaviour does, as the sandbox's home page tells testers.
BEHAVIOUR_LABELS: dict[Behaviour, str] = {
    Behaviour.SMS_OTP: "Pagamento riuscito dopo il codice SMS (mostrato sul telefono simulato)",
    Behaviour.APP: "Pagamento riuscito dopo l'approvazione nell'app della banca (simulata)",
    Behaviour.HW_TOKEN: (
        "Pagamento riuscito dopo il codice generato dal token (mostrato sul token simulato)"
    ),
    Behaviour.SCA_REQUIRED: (
        "Pagamento riuscito dopo il codice SMS; salvata, ogni addebito avviato dal cliente "
        "è rifiutato perché richiede l'autenticazione (authentication_required), "
        "i rinnovi avviati dall'esercente riescono"
    ),
    Behaviour.FRICTIONLESS: "Pagamento riuscito senza verifica aggiuntiva",
    Behaviour.DECLINED: "Pagamento rifiutato dalla banca",
    Behaviour.INSUFFICIENT_FUNDS: "Fondi insufficienti (la verifica a importo zero riesce)",
    Behaviour.EXPIRED: "Carta scaduta",
    Behaviour.WRONG_AMOUNT: "Risposta sbagliata: addebita e risponde € 1,00 in più del chiesto",
    Behaviour.WRONG_ORDER: "Risposta sbagliata: risponde con un altro riferimento d'ordine",
    Behaviour.PENDING: "Risposta sbagliata: lo stato resta «pending», nessun addebito",
    Behaviour.SHORT_REFUND: "Risposta sbagliata: i rimborsi restituiscono la metà del chiesto",
    Behaviour.NO_ANSWER: "Nessuna risposta: addebiti e rimborsi eseguiti, risposta persa (504)",
}

#: How much more the WRONG_AMOUNT card takes than it was asked for.
WRONG_AMOUNT_EXTRA_CENTS = 100
#: The prefix the WRONG_ORDER card puts before the order reference it was given.
WRONG_ORDER_PREFIX = "ALTRO-"


def answered_charge(
    behaviour: Behaviour | None, amount_cents: int, order_ref: str
) -> tuple[int, str]:
    """The amount and order reference a charge of this card books and answers with."""
    if amount_cents > 0 and behaviour is Behaviour.WRONG_AMOUNT:
        return amount_cents + WRONG_AMOUNT_EXTRA_CENTS, order_ref
    if amount_cents > 0 and behaviour is Behaviour.WRONG_ORDER:
        return amount_cents, WRONG_ORDER_PREFIX + order_ref
    return amount_cents, order_ref


def answered_refund(behaviour: Behaviour | None, amount_cents: int) -> int:
    """What a refund of a payment made with this card gives back (and answers)."""
    if behaviour is Behaviour.SHORT_REFUND:
        return max(amount_cents // 2, 1)
    return amount_cents


BRAND_LABELS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express"}

MSG_HOLDER = "Inserisci l'intestatario della carta."
MSG_NUMBER_MISSING = "Inserisci il numero della carta."
MSG_NUMBER_INVALID = "Il numero della carta non è valido."
MSG_BRAND = "Circuito non accettato: usa una carta Visa, Mastercard o American Express."
MSG_EXPIRY = "Indica la scadenza della carta (mese e anno)."
MSG_EXPIRED = "La carta è scaduta."


@dataclass(frozen=True)
class CardInput:
    """A card as entered on the hosted page, already validated and normalised."""

    holder: str
    number: str
    brand: str
    exp_month: int
    exp_year: int

    @property
    def last4(self) -> str:
        """The last four digits, the only part of the number shown back."""
        return self.number[-4:]


def normalize_number(raw: str) -> str:
    """The number without the spaces and dashes people type (other characters are kept)."""
    return re.sub(r"[\s-]", "", raw or "")


def luhn_ok(number: str) -> bool:
    """True when number is all digits (12 to 19) and passes the Luhn checksum."""
    if not _ascii_digits(number) or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def detect_brand(number: str) -> str | None:
    """'visa', 'mastercard', 'amex' by prefix and length, or None for other circuits."""
    if number.startswith("4") and len(number) in (13, 16, 19):
        return "visa"
    if len(number) == 16 and (51 <= int(number[:2]) <= 55 or 2221 <= int(number[:4]) <= 2720):
        return "mastercard"
    if number[:2] in ("34", "37") and len(number) == 15:
        return "amex"
    return None


def cvv_length(brand: str | None) -> int:
    """4 digits for Amex, 3 for the others."""
    return 4 if brand == "amex" else 3


def is_expired(exp_month: int, exp_year: int, today: date) -> bool:
    """A card is valid until the end of its expiry month."""
    return (exp_year, exp_month) < (today.year, today.month)


def behaviour_for(number: str) -> Behaviour:
    """The sandbox behaviour of a (normalised) card number."""
    return TEST_CARDS.get(number, Behaviour.FRICTIONLESS)


def _ascii_digits(value: str) -> bool:
    return value.isascii() and value.isdecimal()


def _parse_expiry(raw_month: str, raw_year: str) -> tuple[int, int] | None:
    month, year = (raw_month or "").strip(), (raw_year or "").strip()
    # ASCII digits only: "²".isdigit() is True and int("²") raises; a 5,000-digit int() too.
    if not (_ascii_digits(month) and len(month) <= 2 and _ascii_digits(year)):
        return None
    if len(year) not in (2, 4):
        return None
    m, y = int(month), int(year)
    if len(year) == 2:
        y += 2000
    return (m, y) if 1 <= m <= 12 else None


def validate_card(
    holder: str, number: str, exp_month: str, exp_year: str, cvv: str, today: date
) -> tuple[CardInput | None, dict[str, str]]:
    """Check the hosted-page fields: the card, or the Italian error message of each bad field."""
    errors: dict[str, str] = {}
    holder = " ".join((holder or "").split())
    if not holder or len(holder) > 100:
        errors["holder"] = MSG_HOLDER
    digits = normalize_number(number)
    brand = None
    if not digits:
        errors["number"] = MSG_NUMBER_MISSING
    elif not luhn_ok(digits):
        errors["number"] = MSG_NUMBER_INVALID
    else:
        brand = detect_brand(digits)
        if brand is None:
            errors["number"] = MSG_BRAND
    expiry = _parse_expiry(exp_month, exp_year)
    if expiry is None:
        errors["expiry"] = MSG_EXPIRY
    elif is_expired(*expiry, today):
        errors["expiry"] = MSG_EXPIRED
    size = cvv_length(brand)
    cvv = (cvv or "").strip()
    if not (_ascii_digits(cvv) and len(cvv) == size):
        errors["cvv"] = f"Il CVV deve avere {size} cifre."
    if errors:
        return None, errors
    assert brand is not None and expiry is not None
    return CardInput(holder, digits, brand, expiry[0], expiry[1]), {}


def grouped(number: str) -> str:
    """The number as printed on the card: 4-6-5 for American Express, groups of 4 otherwise."""
    if detect_brand(number) == "amex":
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
