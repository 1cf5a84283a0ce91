"""Registration and login forms."""

from __future__ import annotations

from stdnum.it import codicefiscale, iva
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import Email, EqualTo, InputRequired, Length, Regexp, ValidationError

from webapp.forms import BrowserForm, InputForm, MaxLength, ValuesField, to_int
from webapp.i18n import lazy_gettext as _l

AUTO_RENEW_MESSAGE = _l(
    "Richiesta non valida: usa l'interruttore Rinnovo automatico per attivarlo o disattivarlo."
)
CARD_MESSAGE = _l("Scegli una delle tue carte di pagamento.")


def normalise_tax_code(value: str) -> str:
    """A valid codice fiscale (persons) or partita IVA (companies), compact, else ValueError."""
    raw = (value or "").strip().upper()
    for module in (codicefiscale, iva):
        if module.is_valid(raw):
            return module.compact(raw)
    raise ValueError(raw)


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


PASSWORD_RULE = _l("Almeno 8 caratteri (al massimo 128).")


def _new_password(label=None) -> PasswordField:
    """A new password as the registration asks it (the rule is shown before the first error)."""
    return PasswordField(
        label or _l("Password"),
        description=PASSWORD_RULE,
        validators=[
            # The length first: no other validator reads a longer value.
            MaxLength(128, message=_l("La password può avere al massimo 128 caratteri.")),
            InputRequired(_l("Scegli una password.")),
            Length(min=8, message=_l("La password deve avere almeno 8 caratteri.")),
        ],
    )


def _repeat_password() -> PasswordField:
    return PasswordField(
        _l("Ripeti la password"),
        validators=[
            MaxLength(128, message=_l("Le due password non coincidono.")),
            EqualTo("password", message=_l("Le due password non coincidono.")),
        ],
    )


def _email_field(label=None) -> EmailField:
    return EmailField(
        label or _l("E-mail"),
        filters=[_strip],  # a pasted address often ends with a space
        validators=[
            # The length first: no other validator reads a longer value.
            MaxLength(254, message=_l("Indirizzo e-mail troppo lungo.")),
            InputRequired(_l("Inserisci l'indirizzo e-mail.")),
            Email(_l("Indirizzo e-mail non valido."), check_deliverability=False),
        ],
    )


class RegisterForm(BrowserForm):
    name = StringField(
        _l("Nome e cognome o ragione sociale"),
        validators=[MaxLength(200), InputRequired(_l("Inserisci il nome."))],
    )
    email = _email_field()
    tax_code = StringField(
        _l("Codice fiscale o partita IVA"),
        validators=[
            MaxLength(32, message=_l("Codice fiscale o partita IVA non valido.")),
            InputRequired(_l("Inserisci il codice fiscale o la partita IVA.")),
        ],
    )
    password = _new_password()
    password2 = _repeat_password()

    def validate_tax_code(self, field) -> None:
        try:
            field.data = normalise_tax_code(field.data)
        except ValueError:
            raise ValidationError(_l("Codice fiscale o partita IVA non valido.")) from None


class LoginForm(BrowserForm):
    email = EmailField(
        _l("E-mail"),
        validators=[
            MaxLength(254, message=_l("E-mail o password errate.")),
            InputRequired(_l("Inserisci l'indirizzo e-mail.")),
        ],
    )
    password = PasswordField(
        _l("Password"),
        validators=[
            MaxLength(128, message=_l("E-mail o password errate.")),
            InputRequired(_l("Inserisci la password.")),
        ],
    )
    remember = BooleanField(_l("Ricordami"))


class ForgotPasswordForm(BrowserForm):
    email = _email_field()


class NewPasswordForm(BrowserForm):
    password = _new_password(_l("Nuova password"))
    password2 = _repeat_password()


class ChangePasswordForm(BrowserForm):
    current = PasswordField(
        _l("Password attuale"), validators=[InputRequired(_l("Inserisci la password attuale."))]
    )
    password = _new_password(_l("Nuova password"))
    password2 = _repeat_password()


class ChangeEmailForm(BrowserForm):
    email = _email_field(_l("Nuovo indirizzo e-mail"))
    current = PasswordField(
        _l("Password attuale"),
        id="email-current",  # three forms on the profile page: unique ids
        validators=[InputRequired(_l("Inserisci la password attuale."))],
    )


class CloseAccountForm(BrowserForm):
    current = PasswordField(
        _l("Password"),
        id="close-current",
        validators=[InputRequired(_l("Inserisci la password per confermare."))],
    )


class AutoRenewForm(InputForm):
    """The Rinnovo automatico switch: a hidden 0 and, when ticked, the checkbox's 1."""

    auto_renew = ValuesField()

    def validate_auto_renew(self, field) -> None:
        if not field.data or any(value not in {"0", "1"} for value in field.data):
            raise ValidationError(AUTO_RENEW_MESSAGE)

    @property
    def enabled(self) -> bool:
        return "1" in (self.auto_renew.data or [])


class FrequencyForm(InputForm):
    """Frequenza di rinnovo of a service; what the product allows is the service's to say."""

    frequency_years = StringField(filters=[to_int])


class RenewForm(InputForm):
    """ "Rinnova": how many years the renewal by hand buys (the service's product says which)."""

    years = StringField(filters=[to_int])


class ServiceCardForm(InputForm):
    card_id = StringField(
        validators=[
            MaxLength(10, CARD_MESSAGE),
            InputRequired(CARD_MESSAGE),
            Regexp(r"^[0-9]{1,10}$", message=CARD_MESSAGE),
        ]
    )
