"""The checkout's inputs (htmx posts): one parse per field; the services say what is allowed.

Also the billing data form (dati di fatturazione), shared by the checkout and the customer area.
"""

from __future__ import annotations

from wtforms import BooleanField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from webapp.forms import BrowserForm, InputForm, MaxLength, to_int
from webapp.i18n import lazy_gettext as _l
from webapp.shop.billing import MAX_LENGTH, BillingData, check, clean
from webapp.shop.models import BillingProfile, CustomerType, PaymentMethod


def _method(value: object) -> PaymentMethod | None:
    try:
        return PaymentMethod(value)
    except ValueError:
        return None


class PaymentMethodForm(InputForm):
    payment_method = StringField(filters=[_method])

    def validate_payment_method(self, field) -> None:
        if field.data is None:
            raise ValidationError(_l("Scegli un metodo di pagamento valido."))


class YearsForm(InputForm):
    """Frequenza di rinnovo of a cart line; an unreadable number is refused like a wrong one."""

    years = StringField(filters=[to_int])


class DiscountForm(InputForm):
    code = StringField(filters=[lambda value: (value or "").strip()], validators=[MaxLength(200)])


class ConfirmForm(InputForm):
    checkout_token = StringField(validators=[MaxLength(64)])
    # The total the page showed with this token: confirming another total is refused (422).
    quoted_total = StringField(validators=[MaxLength(12)])
    terms = BooleanField(false_values=("", "0", "false", "off", "n", "no"))
    # "Voglio che il servizio inizi subito" and the acknowledged loss of the right of withdrawal.
    immediate_start = BooleanField(false_values=("", "0", "false", "off", "n", "no"))


def _longest(name: str) -> MaxLength:
    return MaxLength(MAX_LENGTH[name])


class BillingForm(BrowserForm):
    """Each field shows the Italian message of `webapp.shop.billing.check` under it."""

    customer_type = RadioField(
        _l("Intestatario delle fatture"),
        choices=[SelectChoice(t.value, t.label) for t in CustomerType],
        default=CustomerType.PRIVATE.value,
        validate_choice=False,  # `check` answers with the message in Italian
    )
    first_name = StringField(_l("Nome"), validators=[_longest("first_name")])
    last_name = StringField(_l("Cognome"), validators=[_longest("last_name")])
    company_name = StringField(
        _l("Denominazione o ragione sociale"), validators=[_longest("company_name")]
    )
    tax_code = StringField(_l("Codice fiscale"), validators=[_longest("tax_code")])
    vat_number = StringField(_l("Partita IVA"), validators=[_longest("vat_number")])
    address = StringField(_l("Indirizzo (via e numero civico)"), validators=[_longest("address")])
    postal_code = StringField(_l("CAP"), validators=[_longest("postal_code")])
    city = StringField(_l("Comune"), validators=[_longest("city")])
    province = StringField(_l("Provincia (sigla)"), validators=[_longest("province")])
    country = StringField(_l("Nazione (sigla)"), default="IT", validators=[_longest("country")])
    sdi_code = StringField(
        _l("Codice destinatario SdI / codice univoco ufficio"), validators=[_longest("sdi_code")]
    )
    pec = StringField(_l("PEC per le fatture"), validators=[_longest("pec")])
    cig = StringField(_l("CIG (facoltativo)"), validators=[_longest("cig")])
    cup = StringField(_l("CUP (facoltativo)"), validators=[_longest("cup")])

    @classmethod
    def for_profile(cls, profile: BillingProfile | None) -> BillingForm:
        """The form filled with the saved data (or empty for a first time)."""
        if profile is None:
            return cls()
        return cls(data=vars(BillingData.from_profile(profile)))

    @classmethod
    def for_customer(cls, profile: BillingProfile | None, name: str, tax_code: str) -> BillingForm:
        """The saved data; the first time, what the registration gave: the name and the codice
        fiscale (a person: Privato), or the partita IVA (11 digits: Azienda o professionista)."""
        if profile is not None:
            return cls.for_profile(profile)
        code = (tax_code or "").strip().upper()
        if len(code) == 11 and code.isdigit():
            data = {"customer_type": CustomerType.BUSINESS.value, "company_name": name}
            return cls(data={**data, "vat_number": code, "country": "IT"})
        first, _sep, last = (name or "").strip().partition(" ")
        data = {"customer_type": CustomerType.PRIVATE.value, "first_name": first}
        return cls(data={**data, "last_name": last, "tax_code": code, "country": "IT"})

    def billing_data(self) -> BillingData:
        return BillingData.from_mapping({name: field.data for name, field in self._fields.items()})

    def validate(self, extra_validators=None) -> bool:
        """The lengths first (the fields' validators); only short values reach `check`."""
        if not super().validate(extra_validators):
            return False
        valid = True
        for name, message in check(clean(self.billing_data())).items():
            self[name].errors = [*self[name].errors, message]
            valid = False
        return valid
