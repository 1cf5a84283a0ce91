"""The payment portal's inputs: the card choice and Procedi."""

from __future__ import annotations

from wtforms import IntegerField, StringField
from wtforms.validators import InputRequired, Regexp

from webapp.forms import InputForm, MaxLength
from webapp.i18n import lazy_gettext as _l

NEW_CARD = "new"
CHOICE_MESSAGE = _l("Scegli una delle tue carte di pagamento oppure «Nuova carta di pagamento».")


class CardChoiceForm(InputForm):
    """A saved card's id, or NEW_CARD for "Nuova carta di pagamento"."""

    choice = StringField(
        validators=[
            MaxLength(10, CHOICE_MESSAGE),
            InputRequired(CHOICE_MESSAGE),
            Regexp(rf"^({NEW_CARD}|[0-9]{{1,10}})$", message=CHOICE_MESSAGE),
        ]
    )


class ProceedForm(CardChoiceForm):
    """Procedi: the choice, the form's attempt token and the amount the customer saw."""

    attempt = StringField(validators=[MaxLength(40)])
    amount_cents = IntegerField(
        validators=[InputRequired(_l("Importo mancante: ricarica la pagina."))]
    )
