"""The base of the small forms behind htmx inputs: one parse and one message per field."""

from __future__ import annotations

from functools import cache

from babel import support
from flask import current_app, request
from flask_babel import get_locale, gettext
from flask_wtf import FlaskForm
from wtforms import Field
from wtforms.i18n import messages_path
from wtforms.validators import StopValidation


@cache
def _wtforms_catalogue(locale: str) -> support.Translations:
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


class _WTFormsTranslations:
    """WTForms' own messages in the request's language, each catalogue read once per process
    (Flask-WTF parses the .mo file again for every request that builds a form)."""

    def gettext(self, string: str) -> str:
        return _wtforms_catalogue(str(get_locale())).ugettext(string)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return _wtforms_catalogue(str(get_locale())).ungettext(singular, plural, n)


_TRANSLATIONS = _WTFormsTranslations()


class BrowserForm(FlaskForm):
    """A form a browser posts: its fields come from the form body, never from a JSON body."""

    class Meta:
        def get_translations(self, form):
            if not current_app.config.get("WTF_I18N_ENABLED", True):
                return super().get_translations(form)
            return _TRANSLATIONS

        def wrap_formdata(self, form, formdata):
            # Flask-WTF reads a JSON body as the form: a list there, or a number for a text
            # field, raises (500). A browser never posts JSON here: it is an empty form (422).
            if request.is_json:
                formdata = request.form
            return super().wrap_formdata(form, formdata)


class InputForm(BrowserForm):
    """A form read from `request.form`; CSRFProtect already checks every POST (header or field)."""

    class Meta:
        csrf = False

    def first_error(self) -> str | None:
        """The message of the first field that failed, in field order."""
        for field in self:
            if field.errors:
                return field.errors[0]
        return None


def to_int(value: object) -> int | None:
    """An ASCII whole number, or None (the service then says why it is not acceptable)."""
    text = str(value).strip() if value is not None else ""
    if not text or len(text) > 10 or not text.lstrip("-").isascii():
        return None
    try:
        return int(text)
    except ValueError:
        return None


class ValuesField(Field):
    """Every value posted under the field's name (a hidden 0 plus a checkbox's 1, say)."""

    def process_formdata(self, valuelist: list[str]) -> None:
        self.data = list(valuelist)


class MaxLength:
    """The first validator of a text field: a longer value stops the chain (no other validator,
    pattern or library reads it), unlike WTForms' Length, after which the others still run."""

    def __init__(self, limit: int, message: str | None = None) -> None:
        self.limit = limit
        self.message = message

    def __call__(self, form, field) -> None:
        data = field.data
        if isinstance(data, str) and len(data) > self.limit:
            raise StopValidation(
                str(self.message or gettext("Massimo %(num)d caratteri.", num=self.limit))
            )
