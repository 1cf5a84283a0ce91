"""The base of the small forms behind htmx inputs: one parse and one message per field."""

from __future__ import annotations

from flask_wtf import FlaskForm


class InputForm(FlaskForm):
    """A form read from `request.form`; CSRFProtect already checks every POST (header or field)."""

    class Meta:
        csrf = False

    def first_error(self) -> str | None:
        """The message of the first field that failed, in field order."""
        for field in self:
            if field.errors:
                return field.errors[0]
        return None
