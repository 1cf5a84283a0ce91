"""Registration and login forms."""

from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm
from stdnum.it import codicefiscale, iva
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import Email, EqualTo, InputRequired, Length, ValidationError


def normalise_tax_code(value: str) -> str:
    """A valid codice fiscale (persons) or partita IVA (companies), compact, else ValueError."""
    raw = (value or "").strip().upper()
    for module in (codicefiscale, iva):
        if module.is_valid(raw):
            return module.compact(raw)
    raise ValueError(raw)


def _strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class BrowserForm(FlaskForm):
    """A form a browser posts: its fields come from the form body, never from a JSON body."""

    class Meta:
        def wrap_formdata(self, form, formdata):
            # Flask-WTF reads a JSON body as the form: a list there, or a number for the e-mail,
            # raises (500). A browser never posts JSON here: it is an empty form (422).
            if request.is_json:
                formdata = request.form
            return super().wrap_formdata(form, formdata)


class RegisterForm(BrowserForm):
    name = StringField(
        "Nome e cognome o ragione sociale",
        validators=[InputRequired("Inserisci il nome."), Length(max=200)],
    )
    email = EmailField(
        "E-mail",
        filters=[_strip],  # a pasted address often ends with a space
        validators=[
            InputRequired("Inserisci l'indirizzo e-mail."),
            Email("Indirizzo e-mail non valido.", check_deliverability=False),
            Length(max=254),
        ],
    )
    tax_code = StringField(
        "Codice fiscale o partita IVA",
        validators=[InputRequired("Inserisci il codice fiscale o la partita IVA.")],
    )
    password = PasswordField(
        "Password",
        validators=[
            InputRequired("Scegli una password."),
            Length(min=8, max=128, message="La password deve avere almeno 8 caratteri."),
        ],
    )
    password2 = PasswordField(
        "Ripeti la password",
        validators=[EqualTo("password", message="Le due password non coincidono.")],
    )

    def validate_tax_code(self, field) -> None:
        try:
            field.data = normalise_tax_code(field.data)
        except ValueError:
            raise ValidationError("Codice fiscale o partita IVA non valido.") from None


class LoginForm(BrowserForm):
    email = EmailField("E-mail", validators=[InputRequired("Inserisci l'indirizzo e-mail.")])
    password = PasswordField("Password", validators=[InputRequired("Inserisci la password.")])
    remember = BooleanField("Ricordami")
