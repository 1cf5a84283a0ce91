"""Back office: a service's page (its state after expiry and its timeline) and the services in
their grace window, for the operators who call the big customers before they cease (issue 28)."""

from __future__ import annotations

from webapp.backoffice.blueprint import bp, get_or_404, page
from webapp.clock import now_utc, rome_date
from webapp.renewals.lifecycle import life_of
from webapp.renewals.models import Service
from webapp.renewals.timeline import in_grace, timeline_of
from webapp.shop.models import Customer


@bp.get("/servizi/<int:service_id>")
def view_service(service_id: int):
    """The service: owner, product, expiry, state ("Attivo" … "Cessato") and its timeline."""
    service = get_or_404(Service, service_id)
    return page(
        "backoffice/service.html",
        service=service,
        customer=get_or_404(Customer, service.customer_id),
        life=life_of(service, rome_date(now_utc())),
        timeline=timeline_of(service.id),
    )


@bp.get("/servizi/in-periodo-di-grazia")
def list_grace():
    """Services expired and still renewable: the soonest to cease first."""
    return page("backoffice/grace.html", rows=in_grace(rome_date(now_utc())))
