"""The base of the small forms behind htmx inputs: one parse and one message per field."""

from __future__ import annotations

from flask import request
from flask_wtf import FlaskForm
from wtforms import Field


class BrowserForm(FlaskForm):
    """A form a browser posts: its fields come from the form body, never from a JSON body."""

    class Meta:
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
