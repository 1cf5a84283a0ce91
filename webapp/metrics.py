"""`/metrics` in Prometheus format: requests by route and status, and the business gauges.

Under gunicorn every worker is a process with its own counters. With `PROMETHEUS_MULTIPROC_DIR`
set (gunicorn.conf.py sets it and removes a dead worker's live gauges) prometheus-client writes
them to files in that folder and a scrape adds them up over the node's workers (its multiprocess
mode); without it (`make run`, tests) the process's own registry answers. The business gauges are
read from the database at scrape time, so every node reports the same figures and none keeps
state of its own.

Not public: a request needs `Authorization: Bearer <METRICS_TOKEN>`, or, with no token set, must
come from the loopback address (a Prometheus on the same host, or an SSH tunnel).
"""

from __future__ import annotations

import hmac
import os
import time
from datetime import datetime

from flask import Blueprint, Flask, Response, abort, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from webapp.clock import now_utc
from webapp.extensions import db

bp = Blueprint("metrics", __name__)

REQUESTS = Counter(
    "pecshop_http_requests_total",
    "HTTP requests answered, by route (the URL rule), method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "pecshop_http_request_duration_seconds",
    "Time to answer an HTTP request, by route and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observe(environ: dict, status: int, seconds: float) -> None:
    """Count one answered request (called by the access-log wrapper, after the view)."""
    rule = environ.get("webapp.url_rule")  # set by the access-log wrapper
    route = rule.rule if rule is not None else "unmatched"  # no label per unknown path
    method = environ.get("REQUEST_METHOD", "")
    if method not in _METHODS:
        method = "other"
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(seconds)


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class BusinessCollector:
    """The figures an operator alerts on, asked of the database at each scrape."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self):
        with self.app.app_context():
            try:
                yield from self._families(now_utc())
            finally:
                db.session.rollback()
                db.session.remove()

    def _families(self, now: datetime):
        from webapp.outbox.models import OutboxEmail
        from webapp.renewals.models import OPEN_RENEWAL_STATUSES, Renewal, RenewalStatus

        oldest_due = db.session.scalar(
            select(func.min(Renewal.next_attempt_at)).where(
                Renewal.status.in_(OPEN_RENEWAL_STATUSES),
                Renewal.next_attempt_at <= now,
                (Renewal.claimed_until.is_(None)) | (Renewal.claimed_until < now),
            )
        )
        yield _gauge(
            "pecshop_renewal_oldest_due_unclaimed_age_seconds",
            "Age of the oldest renewal due and not claimed by a scheduler (0: none waits).",
            _age(oldest_due, now),
        )
        by_status = dict(
            db.session.execute(select(Renewal.status, func.count()).group_by(Renewal.status)).all()
        )
        family = GaugeMetricFamily(
            "pecshop_renewals",
            "Renewal rows by state (succeeded: charged; failed: waiting for a retry).",
            labels=["status"],
        )
        for status in RenewalStatus:
            family.add_metric([status.value], by_status.get(status, 0))
        yield family

        backlog, oldest_unsent = db.session.execute(
            select(func.count(), func.min(OutboxEmail.created_at)).where(
                OutboxEmail.sent_at.is_(None)
            )
        ).one()
        yield _gauge("pecshop_outbox_backlog", "E-mails queued and not sent yet.", backlog)
        yield _gauge(
            "pecshop_outbox_oldest_unsent_age_seconds",
            "Age of the oldest e-mail not sent yet (0: none).",
            _age(oldest_unsent, now),
        )
        yield from _invoice_families(now)
        yield from _payment_families()


def _payment_families():
    """Second captures refunded: each one a customer charged twice for a moment."""
    from webapp.payments.models import Payment, Refund, RefundKind, RefundStatus

    duplicates = db.session.scalar(
        select(func.count())
        .select_from(Refund)
        .join(Payment, Payment.id == Refund.payment_id)
        .where(Refund.kind == RefundKind.DUPLICATE, Refund.status == RefundStatus.SUCCEEDED)
    )
    yield _gauge(
        "pecshop_duplicate_captures_refunded",
        "Second captures of an already paid order, refunded automatically.",
        duplicates,
    )


def _invoice_families(now: datetime):
    """Invoices not yet issued at the SdI (when the shop transmits them) and the oldest one."""
    from webapp.invoicing import models as invoicing

    pending = getattr(invoicing, "unissued_invoices_query", None)
    if pending is None:
        return
    count, oldest = db.session.execute(pending()).one()
    yield _gauge(
        "pecshop_invoices_not_issued",
        "Invoices the Sistema di Interscambio has not taken yet (not delivered nor notified).",
        count,
    )
    yield _gauge(
        "pecshop_invoices_oldest_not_issued_age_seconds",
        "Age of the oldest invoice not issued at the SdI (0: none).",
        _age(oldest, now),
    )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _age(since: datetime | None, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    return registry


@bp.get("/metrics")
def metrics():
    """The node's request metrics (all its workers) and the business gauges."""
    _allow_scraper()
    started = time.perf_counter()
    registry = _registry()
    output = generate_latest(registry) + generate_latest(_business_registry())
    output += (
        b"# HELP pecshop_metrics_scrape_seconds Time to gather these figures.\n"
        b"# TYPE pecshop_metrics_scrape_seconds gauge\n"
        + f"pecshop_metrics_scrape_seconds {time.perf_counter() - started:.6f}\n".encode()
    )
    return Response(output, mimetype=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


def _business_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BusinessCollector(current_app._get_current_object()))
    return registry


def _allow_scraper() -> None:
    token = current_app.config.get("METRICS_TOKEN") or ""
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            abort(404)  # no hint that something is there
    elif request.remote_addr not in {"127.0.0.1", "::1"}:
        abort(404)
