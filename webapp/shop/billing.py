"""Dati di fatturazione: who the invoices are made out to. Services flush; the caller commits.

The checks live here (not only in the form) so that every way in (checkout, customer area,
a script) refuses the same data with the same Italian message per field.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

from email_validator import EmailNotValidError, validate_email
from flask_babel import gettext as _
from sqlalchemy import select
from stdnum.exceptions import ValidationError
from stdnum.it import codicefiscale, iva

from webapp.errors import CheckoutError, DomainError
from webapp.extensions import db
from webapp.shop.models import BillingProfile, Customer, CustomerType
from webapp.shop.order_models import Order

#: The sigle automobilistiche of the Italian provinces and metropolitan cities (ISTAT), with
#: the Sardinian ones still found on addresses (CI, OG, OT, VS) and EE for "estero".
_SIGLE = """
    AG AL AN AO AP AQ AR AT AV BA BG BI BL BN BO BR BS BT BZ CA CB CE CH CI CL CN CO CR CS CT
    CZ EE EN FC FE FG FI FM FR GE GO GR IM IS KR LC LE LI LO LT LU MB MC ME MI MN MO MS MT NA
    NO NU OG OR OT PA PC PD PE PG PI PN PO PR PT PU PV PZ RA RC RE RG RI RM RN RO SA SI SO SP
    SR SS SU SV TA TE TN TO TP TR TS TV UD VA VB VC VE VI VR VS VT VV
"""
PROVINCES = frozenset(_SIGLE.split())

_CAP = re.compile(r"\d{5}")
_SDI_CODE = re.compile(r"[A-Z0-9]{7}")
_OFFICE_CODE = re.compile(r"[A-Z0-9]{6}")
_CIG = re.compile(r"[A-Z0-9]{10}")
_CUP = re.compile(r"[A-Z0-9]{15}")
_COUNTRY = re.compile(r"[A-Z]{2}")
NO_CODE = "0000000"
#: The longest value each field may have as typed, checked before anything else reads it
#: (the form's Length validators use the same numbers); codes leave room for spaces and dots.
MAX_LENGTH = {
    "customer_type": 20,
    "first_name": 60,
    "last_name": 60,
    "company_name": 80,
    "tax_code": 32,
    "vat_number": 32,
    "address": 60,
    "postal_code": 16,
    "city": 60,
    "province": 8,
    "country": 8,
    "sdi_code": 16,
    "pec": 254,
    "cig": 24,
    "cup": 32,
}


class BillingInvalid(DomainError):
    """Billing data refused; `errors` maps each field to its Italian message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(_("Controlla i dati di fatturazione evidenziati."))
        self.errors = errors


@dataclass
class BillingData:
    """The fields of a billing profile as typed (normalised by `clean`)."""

    customer_type: str = CustomerType.PRIVATE.value
    first_name: str = ""
    last_name: str = ""
    company_name: str = ""
    tax_code: str = ""
    vat_number: str = ""
    address: str = ""
    postal_code: str = ""
    city: str = ""
    province: str = ""
    country: str = "IT"
    sdi_code: str = ""
    pec: str = ""
    cig: str = ""
    cup: str = ""

    @classmethod
    def from_mapping(cls, data) -> BillingData:
        return cls(**{f.name: str(data.get(f.name) or "") for f in fields(cls)})

    @classmethod
    def from_profile(cls, profile: BillingProfile) -> BillingData:
        values = {f.name: getattr(profile, f.name) or "" for f in fields(cls)}
        values["customer_type"] = profile.customer_type.value
        return cls(**values)


def _compact(value: str) -> str:
    return re.sub(r"[\s.\-/]", "", value).upper()


def clean(data: BillingData) -> BillingData:
    """Trim and normalise: codes upper-case without spaces, 'IT' prefix off the partita IVA."""
    out = BillingData(**{k: (v or "").strip() for k, v in asdict(data).items()})
    for name in ("tax_code", "sdi_code", "cig", "cup", "province", "country", "postal_code"):
        setattr(out, name, _compact(getattr(out, name)))
    vat = _compact(out.vat_number)
    out.vat_number = vat[2:] if vat.startswith("IT") else vat
    out.pec = out.pec.lower()
    out.country = out.country or "IT"
    return out


def too_long(data: BillingData) -> dict[str, str]:
    """The fields longer than MAX_LENGTH allows, by field: checked first, on the raw values."""
    return {
        name: _("Massimo %(num)d caratteri.", num=limit)
        for name, limit in MAX_LENGTH.items()
        if len(getattr(data, name) or "") > limit
    }


def valid_email(value: str) -> bool:
    """An e-mail address (a PEC too), by email-validator: no pattern that can backtrack."""
    if len(value) > MAX_LENGTH["pec"]:
        return False
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def check(data: BillingData) -> dict[str, str]:
    """The errors of already cleaned data, by field (empty: the data is acceptable)."""
    long_fields = too_long(data)
    if long_fields:
        return long_fields
    try:
        kind = CustomerType(data.customer_type)
    except ValueError:
        return {"customer_type": _("Scegli il tipo di cliente.")}
    errors: dict[str, str] = {}
    for part in (_check_names, _check_tax_ids, _check_address, _check_delivery):
        part(data, kind, errors)
    return errors


def _required(data: BillingData, errors: dict[str, str], name: str, message: str) -> bool:
    """Record `message` for an empty field; True when the field has a value."""
    if not getattr(data, name):
        errors[name] = message
        return False
    return True


def _check_names(data: BillingData, kind: CustomerType, errors: dict[str, str]) -> None:
    if kind is CustomerType.PRIVATE:
        _required(data, errors, "first_name", _("Inserisci il nome."))
        _required(data, errors, "last_name", _("Inserisci il cognome."))
    else:
        _required(data, errors, "company_name", _("Inserisci la denominazione."))
    for name, limit in (("first_name", 60), ("last_name", 60), ("company_name", 80)):
        if len(getattr(data, name)) > limit:
            errors[name] = _("Massimo %(limit)d caratteri.", limit=limit)
    # FatturaPA accepts the Latin-1 alphabet only (accented letters yes, other scripts no).
    for name in ("first_name", "last_name", "company_name", "address", "city"):
        if not _latin1(getattr(data, name)) or any(ord(ch) < 32 for ch in getattr(data, name)):
            errors[name] = _("Usa solo lettere latine, cifre e punteggiatura comune.")


def _check_tax_ids(data: BillingData, kind: CustomerType, errors: dict[str, str]) -> None:
    invalid_vat = _("Partita IVA non valida: 11 cifre con il controllo corretto.")
    if kind is CustomerType.BUSINESS:
        if _required(data, errors, "vat_number", _("Inserisci la partita IVA.")) and not (
            iva.is_valid(data.vat_number)
        ):
            errors["vat_number"] = invalid_vat
    elif data.vat_number and not iva.is_valid(data.vat_number):
        errors["vat_number"] = invalid_vat
    if kind is CustomerType.PRIVATE and data.country == "IT":
        _required(data, errors, "tax_code", _("Inserisci il codice fiscale."))
    elif kind is CustomerType.PUBLIC:
        _required(data, errors, "tax_code", _("Inserisci il codice fiscale dell'ente."))
    if data.tax_code and "tax_code" not in errors:
        errors.update(_check_tax_code(data.tax_code, kind))


def _check_address(data: BillingData, kind: CustomerType, errors: dict[str, str]) -> None:
    italian = data.country == "IT"
    _required(data, errors, "address", _("Inserisci l'indirizzo (via e numero civico)."))
    _required(data, errors, "city", _("Inserisci il comune."))
    if len(data.address) > 60 or len(data.city) > 60:
        errors.setdefault(
            "address" if len(data.address) > 60 else "city", _("Massimo 60 caratteri.")
        )
    if not _COUNTRY.fullmatch(data.country):
        errors["country"] = _("Nazione non valida: usa la sigla di 2 lettere (IT per l'Italia).")
    elif kind is not CustomerType.PRIVATE and not italian:
        errors["country"] = _("Per aziende ed enti accettiamo per ora solo indirizzi in Italia.")
    if italian:
        if not data.postal_code:
            errors["postal_code"] = _("Inserisci il CAP.")
        elif not _CAP.fullmatch(data.postal_code):
            errors["postal_code"] = _("CAP non valido: servono 5 cifre.")
        if data.province not in PROVINCES or data.province == "EE":
            errors["province"] = _("Provincia non valida: usa la sigla di 2 lettere (es. MI, RM).")
    elif len(data.postal_code) > 5:
        errors["postal_code"] = _("CAP non valido: massimo 5 caratteri.")


def _check_delivery(data: BillingData, kind: CustomerType, errors: dict[str, str]) -> None:
    """Where SdI delivers the invoice: PEC, codice destinatario, or the PA's office (IPA)."""
    if data.pec and not valid_email(data.pec):
        errors["pec"] = _("Indirizzo PEC non valido.")
    if kind is CustomerType.BUSINESS and data.sdi_code and not _SDI_CODE.fullmatch(data.sdi_code):
        errors["sdi_code"] = _("Il codice destinatario ha 7 caratteri (lettere e cifre).")
    if kind is CustomerType.PUBLIC:
        office = _("Inserisci il codice univoco ufficio (IPA).")
        if _required(data, errors, "sdi_code", office) and not (
            _OFFICE_CODE.fullmatch(data.sdi_code)
        ):
            errors["sdi_code"] = _("Il codice univoco ufficio ha 6 caratteri (lettere e cifre).")
        if data.cig and not _CIG.fullmatch(data.cig):
            errors["cig"] = _("Il CIG ha 10 caratteri (lettere e cifre).")
        if data.cup and not _CUP.fullmatch(data.cup):
            errors["cup"] = _("Il CUP ha 15 caratteri (lettere e cifre).")


def _latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _check_tax_code(value: str, kind: CustomerType) -> dict[str, str]:
    if kind is CustomerType.PRIVATE and len(value) != 16:
        return {"tax_code": _("Codice fiscale non valido: 16 caratteri per una persona fisica.")}
    try:
        codicefiscale.validate(value)
    except ValidationError:
        return {"tax_code": _("Codice fiscale non valido: controlla lettere e cifre.")}
    return {}


def get_profile(customer_id: int) -> BillingProfile | None:
    """The customer's billing data, if given."""
    return db.session.scalar(
        select(BillingProfile).where(BillingProfile.customer_id == customer_id)
    )


def require_profile(customer_id: int) -> BillingProfile:
    """The billing data the checkout needs before confirming an order."""
    profile = get_profile(customer_id)
    if profile is None:
        raise CheckoutError(
            _("Inserisci i dati di fatturazione: servono per emettere la fattura dell'ordine.")
        )
    return profile


#: The billing fields copied into an order (at confirm) and into its documents.
SNAPSHOT_FIELDS = (
    "first_name",
    "last_name",
    "company_name",
    "tax_code",
    "vat_number",
    "address",
    "postal_code",
    "city",
    "province",
    "country",
    "sdi_code",
    "pec",
    "cig",
    "cup",
)


def snapshot_of(
    name: str, tax_code: str | None, email: str, profile: BillingProfile | None
) -> dict:
    """The buyer's data as a plain dict (type included), from values already read."""
    if profile is None:
        # Customers from before billing data was asked: name and tax code only. The XML will
        # lack the address (the issue logs it); the checkout asks everyone else first.
        first, _sep, last = name.rpartition(" ")
        data = dict.fromkeys(SNAPSHOT_FIELDS, "")
        data.update(
            first_name=first or name, last_name=last or name, tax_code=tax_code or "", country="IT"
        )
        data["customer_type"] = CustomerType.PRIVATE.value
    else:
        data = {field: getattr(profile, field) or "" for field in SNAPSHOT_FIELDS}
        data["customer_type"] = profile.customer_type.value
    data["email"] = email
    return data


def buyer_now(customer: Customer) -> dict:
    """The customer's billing data as they are now (what an order confirmed now copies)."""
    return snapshot_of(customer.name, customer.tax_code, customer.email, get_profile(customer.id))


def fix_buyer(order: Order, customer: Customer) -> None:
    """One buyer per order: copy the billing data (type included) onto the order and price
    split payment from it. Called when the order's amounts are fixed (confirm, renewal)."""
    order.buyer = buyer_now(customer)
    order.buyer_type = CustomerType(order.buyer["customer_type"])
    order.split_payment = order.buyer_type.split_payment


def buyer_type_of(order: Order) -> CustomerType:
    """Whom the order is invoiced to. Orders from before the copy: split payment says a public
    administration; otherwise the tax code (16 characters: a person) as it was then read."""
    if order.buyer_type is not None:
        return order.buyer_type
    if order.split_payment:
        return CustomerType.PUBLIC
    customer = db.session.get(Customer, order.customer_id)
    person = len((customer.tax_code or "").strip()) == 16
    return CustomerType.PRIVATE if person else CustomerType.BUSINESS


def is_consumer_order(order: Order) -> bool:
    """The diritto di recesso is a consumer's: an order invoiced to a private person."""
    return buyer_type_of(order) is CustomerType.PRIVATE


def split_payment_for(customer_id: int) -> bool:
    """True for a public administration: its orders are paid net of VAT."""
    profile = get_profile(customer_id)
    return profile is not None and profile.split_payment


def split_payment_customers(customer_ids: list[int]) -> set[int]:
    """Of these customers, the public administrations (split payment), in one query."""
    if not customer_ids:
        return set()
    return set(
        db.session.scalars(
            select(BillingProfile.customer_id).where(
                BillingProfile.customer_id.in_(customer_ids),
                BillingProfile.customer_type == CustomerType.PUBLIC,
            )
        )
    )


def save_profile(customer_id: int, data: BillingData) -> BillingProfile:
    """Create or replace the customer's billing data; raises BillingInvalid with the reasons.

    Only future documents use it: issued invoices keep their own copy of the data.
    """
    errors = too_long(data) or check(clean(data))
    if errors:
        raise BillingInvalid(errors)
    data = clean(data)
    kind = CustomerType(data.customer_type)
    profile = get_profile(customer_id)
    if profile is None:
        profile = BillingProfile(customer_id=customer_id)
        db.session.add(profile)
    keep = _fields_for(kind, data.country == "IT")
    for name, value in asdict(data).items():
        if name != "customer_type":
            setattr(profile, name, (value or None) if name in keep else None)
    profile.customer_type = kind
    profile.country = data.country
    if kind is CustomerType.BUSINESS and not profile.sdi_code:
        profile.sdi_code = NO_CODE
    db.session.flush()
    return profile


def _fields_for(kind: CustomerType, italian: bool) -> set[str]:
    common = {"tax_code", "address", "postal_code", "city", "country"}
    if italian:
        common.add("province")
    if kind is CustomerType.PRIVATE:
        return common | {"first_name", "last_name"}
    if kind is CustomerType.BUSINESS:
        return common | {"company_name", "vat_number", "sdi_code", "pec"}
    return common | {"company_name", "vat_number", "sdi_code", "cig", "cup"}
