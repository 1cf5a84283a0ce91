"""Back office: the electronic invoices of a period as a zip of FatturaPA XML files."""

from __future__ import annotations

from datetime import date

from flask import Response, render_template, request
from flask_babel import gettext as _

from webapp.backoffice.blueprint import bp
from webapp.clock import now_utc, rome_date
from webapp.errors import DomainError
from webapp.invoicing.archive import export_zip
from webapp.queryargs import parse_day


@bp.get("/fatture")
def export_invoices():
    """Choose a period; with both dates, download its invoices and credit notes as a zip."""
    if "dal" not in request.args:
        today = rome_date(now_utc())
        return render_template("backoffice/invoices.html", dal=today.replace(day=1), al=today)
    # Only the two fields, as typed (never request.args whole: its keys are the visitor's).
    dal, al = request.args.get("dal", "")[:10], request.args.get("al", "")[:10]
    try:
        start, end = parse_day(dal, _("Dal")), parse_day(al, _("Al"))
        if start > end:
            raise DomainError(_("La data iniziale viene dopo quella finale."))
    except DomainError as exc:
        page = render_template("backoffice/invoices.html", error=exc.message, dal=dal, al=al)
        return page, 422
    return _zip(start, end)


def _zip(start: date, end: date) -> Response:
    name = f"fatture_{start:%Y%m%d}_{end:%Y%m%d}.zip"
    return Response(
        export_zip(start, end),
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
