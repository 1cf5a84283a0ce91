"""The checkout's inputs (htmx posts): one parse per field; the services say what is allowed."""

from __future__ import annotations

from wtforms import BooleanField, StringField
from wtforms.validators import Length, ValidationError

from webapp.forms import InputForm, to_int
from webapp.shop.models import PaymentMethod


def _method(value: object) -> PaymentMethod | None:
    try:
        return PaymentMethod(value)
    except ValueError:
        return None


class PaymentMethodForm(InputForm):
    payment_method = StringField(filters=[_method])

    def validate_payment_method(self, field) -> None:
        if field.data is None:
            raise ValidationError("Scegli un metodo di pagamento valido.")


class YearsForm(InputForm):
    """Frequenza di rinnovo of a cart line; an unreadable number is refused like a wrong one."""

    years = StringField(filters=[to_int])


class DiscountForm(InputForm):
    code = StringField(filters=[lambda value: (value or "").strip()], validators=[Length(max=200)])


class ConfirmForm(InputForm):
    checkout_token = StringField(validators=[Length(max=64)])
    terms = BooleanField(false_values=("", "0", "false", "off", "n", "no"))
    # "Voglio che il servizio inizi subito" and the acknowledged loss of the right of withdrawal.
    immediate_start = BooleanField(false_values=("", "0", "false", "off", "n", "no"))
