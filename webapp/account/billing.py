"""Area clienti › Dati di fatturazione: who future invoices are made out to.

Issued invoices keep their own copy of the data: a change here only affects future documents.
"""

from __future__ import annotations

from flask import Blueprint, flash, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from webapp.htmx import redirect_to, render
from webapp.invoicing.transmission import complete_missing_data
from webapp.shop import billing
from webapp.shop.forms import BillingForm
from webapp.transaction import commit

bp = Blueprint("billing", __name__, url_prefix="/area-clienti")


def _page(form: BillingForm, status: int = 200):
    return render(
        "area/billing.html",
        "area/_billing_form.html",
        status=status,
        form=form,
        profile=billing.get_profile(current_user.id),
    )


@bp.get("/fatturazione")
@login_required
def edit_billing():
    profile = billing.get_profile(current_user.id)
    return _page(BillingForm.for_customer(profile, current_user.name, current_user.tax_code))


@bp.post("/fatturazione")
@login_required
def save_billing():
    form = BillingForm()
    if not form.validate():
        return _page(form, 422)
    billing.save_profile(current_user.id, form.billing_data())
    # Documents held back for missing data are rebuilt now, with the same number.
    completed = complete_missing_data(current_user.id)
    commit()
    flash(_("Dati di fatturazione salvati: valgono per le prossime fatture."), "success")
    if completed:
        flash(_("Le fatture in attesa dei tuoi dati saranno ora inviate allo SdI."), "success")
    return redirect_to(url_for("billing.edit_billing"))
