"""Back office: the electronic invoices' journey to the SdI. The list with each document's
state, a document's page (timeline of attempts and notifications, each XML downloadable),
the "Da correggere" queue and "Reinvia"."""

from __future__ import annotations

from flask import Response, abort, request, url_for
from flask_babel import gettext as _

from webapp.backoffice.audit import record
from webapp.backoffice.blueprint import bp, current_staff, get_or_404, page, request_id, save
from webapp.clock import now_utc
from webapp.invoicing import sdi_queue
from webapp.invoicing.models import Invoice
from webapp.invoicing.sdi_states import SdiState
from webapp.invoicing.services import display_name
from webapp.invoicing.transmission import resend


def _state_filter() -> SdiState | None:
    try:
        return SdiState(request.args.get("stato", ""))
    except ValueError:
        return None


@bp.get("/fatture/elenco")
def list_sdi_invoices():
    """The latest documents with their SdI state (filter: ?stato=scartata)."""
    state = _state_filter()
    return page(
        "backoffice/sdi_invoices.html",
        invoices=sdi_queue.list_documents(state),
        state=state,
        states=list(SdiState),
        display_name=display_name,
    )


def invoice_page(invoice: Invoice, status: int = 200, error: str | None = None):
    return page(
        "backoffice/sdi_invoice.html",
        status=status,
        invoice=invoice,
        attempts=sdi_queue.timeline(invoice.id),
        buyer=display_name(invoice.customer),
        error=error,
    )


@bp.get("/fatture/<int:invoice_id>")
def view_sdi_invoice(invoice_id: int):
    return invoice_page(get_or_404(Invoice, invoice_id))


@bp.get("/fatture/<int:invoice_id>/notifiche/<int:notification_id>.xml")
def download_notification(invoice_id: int, notification_id: int):
    note = sdi_queue.notification_of(invoice_id, notification_id)
    if note is None:
        abort(404)
    name = f"{note.transmission.file_name.removesuffix('.xml')}_{note.kind}_{note.message_id}.xml"
    return _xml(note.xml, name)


@bp.get("/fatture/<int:invoice_id>/invii/<int:attempt_id>.xml")
def download_sent_file(invoice_id: int, attempt_id: int):
    attempt = sdi_queue.attempt_of(invoice_id, attempt_id)
    if attempt is None:
        abort(404)
    return _xml(attempt.xml, attempt.file_name)


def _xml(body: bytes, name: str) -> Response:
    return Response(
        body,
        mimetype="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/fatture/da-correggere")
def list_to_correct():
    """NS to correct within five days, the PA's refusals to settle, what waits to be sent."""
    now = now_utc()
    return page(
        "backoffice/sdi_to_correct.html",
        rows=sdi_queue.to_correct(now),
        refused=sdi_queue.refused_tasks(),
        waiting=sdi_queue.waiting(),
        display_name=display_name,
    )


@bp.post("/fatture/<int:invoice_id>/reinvia")
def resend_invoice(invoice_id: int):
    """Reinvia: after the fix, a new attempt (new file name, same number), sent by the next pass."""
    invoice = get_or_404(Invoice, invoice_id)
    return save(
        lambda: _resend(invoice),
        lambda message: invoice_page(invoice, 422, message),
        lambda attempt: (
            _("Nuovo invio preparato: %(name)s.", name=attempt.file_name),
            url_for("backoffice.view_sdi_invoice", invoice_id=invoice.id),
        ),
    )


def _resend(invoice: Invoice):
    attempt = resend(invoice.id, now_utc())
    record(
        current_staff(),
        "fattura reinviata allo SdI",
        "invoice",
        invoice.id,
        after={"file_name": attempt.file_name},
        request_id=request_id(),
    )
    return attempt
