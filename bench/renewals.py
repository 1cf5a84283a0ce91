"""Renewal-engine throughput and peak memory for N due services, on PostgreSQL.

Seeds N auto-renewing services that entered the renewal window (bulk Core inserts), then times
one engine pass, `run_renewals(now)`: it opens N renewals and charges each once, with a claim
and a commit per service, the receipt e-mail queued in the outbox (not sent: that is the outbox
job's). The bank is an in-process fake whose charges always succeed at once, so the figures are
the shop side's engine (database work, rendering, Python), not a bank's latency. Each pass runs
in a process of its own: memory is its resident size before the pass and the peak sampled during
it (with --tracemalloc also the Python heap peak; tracemalloc slows the pass about 3 times, so
that run's rate is not comparable). Not a test: figures only. EMPTIES the database it is given.

Usage: scripts/with-postgres.sh .venv/bin/python bench/renewals.py --services 10000 100000
(without TEST_DATABASE_URL or --database-url it starts itself under scripts/with-postgres.sh)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.extensions import db  # noqa: E402
from webapp.payments.gateway import ChargeResult, HostedPayment, PaymentStatusInfo  # noqa: E402

NOW = datetime(2027, 1, 5, 10, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=10)  # inside the 15-day window: every service is due now
SERVICES_PER_CUSTOMER = 10
BATCH = 5000


class InstantBank:
    """A Gateway whose token charges always succeed at once (no network, no latency)."""

    def __init__(self) -> None:
        self.charges = 0

    def charge_token(
        self, *, token, amount_cents, currency, order_ref, description, initiator, idempotency_key
    ) -> ChargeResult:
        self.charges += 1
        return ChargeResult(
            f"ch_{self.charges}", "succeeded", amount_cents, currency, order_ref, None, None
        )

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        return None  # no outcome is ever left unknown here

    def forget_token(self, token: str) -> None:
        pass

    def create_payment(self, **_kwargs) -> HostedPayment:
        raise NotImplementedError("renewals charge saved cards only")

    def get_payment(self, payment_id: str) -> PaymentStatusInfo:
        raise NotImplementedError("renewals charge saved cards only")

    def verify_return(self, params) -> None:
        raise NotImplementedError

    def verify_notification(self, path, body, headers) -> None:
        raise NotImplementedError


def seed(n: int) -> None:
    """The demo catalogue, n/10 customers with a card each, and n services due for renewal."""
    from webapp.demo import seed as seed_catalogue
    from webapp.payments.models import SavedCard
    from webapp.renewals.models import Service, ServiceStatus
    from webapp.shop.models import Customer, Order, OrderLine, OrderStatus, PaymentMethod, Product

    seed_catalogue(NOW)
    db.session.commit()
    products = [
        p for p in db.session.scalars(select(Product).order_by(Product.id)) if p.auto_renewable
    ]
    customers = -(-n // SERVICES_PER_CUSTOMER)
    started = EXPIRES - timedelta(days=365)
    # Explicit ids after those of the demo data: customer k has card k and order k (10 lines).
    c0, k0, o0, l0, s0 = (
        db.session.scalar(select(func.coalesce(func.max(m.id), 0)))
        for m in (Customer, SavedCard, Order, OrderLine, Service)
    )
    with db.engine.begin() as conn:
        for first in range(1, customers + 1, BATCH):
            ks = range(first, min(first + BATCH, customers + 1))
            conn.execute(
                insert(Customer),
                [
                    dict(
                        id=c0 + k,
                        email=f"cliente{k}@example.it",
                        name=f"Cliente {k}",
                        tax_code="RSSMRA85T10A562S",
                        password_hash="!",
                        created_at=started,
                    )
                    for k in ks
                ],
            )
            conn.execute(
                insert(SavedCard),
                [
                    dict(
                        id=k0 + k,
                        customer_id=c0 + k,
                        gateway_token=f"tok_{k}",
                        brand="visa",
                        last4="4242",
                        exp_month=12,
                        exp_year=2030,
                        holder=f"Cliente {k}",
                        created_at=started,
                    )
                    for k in ks
                ],
            )
            conn.execute(
                insert(Order),
                [
                    dict(
                        id=o0 + k,
                        customer_id=c0 + k,
                        status=OrderStatus.PAID,
                        payment_method=PaymentMethod.CARD,
                        subtotal_cents=0,
                        net_cents=0,
                        vat_cents=0,
                        total_cents=0,
                        created_at=started,
                        paid_at=started,
                    )
                    for k in ks
                ],
            )
        for first in range(1, n + 1, BATCH):
            lines, services = [], []
            for i in range(first, min(first + BATCH, n + 1)):
                product = products[i % len(products)]
                k = (i - 1) // SERVICES_PER_CUSTOMER + 1
                lines.append(
                    dict(
                        id=l0 + i,
                        order_id=o0 + k,
                        product_id=product.id,
                        product_name=product.name,
                        kind=product.kind,
                        years=1,
                        yearly_price_cents=product.yearly_price_cents,
                        list_cents=product.yearly_price_cents,
                        discount_cents=0,
                        net_cents=product.yearly_price_cents,
                        auto_renew=True,
                    )
                )
                services.append(
                    dict(
                        id=s0 + i,
                        customer_id=c0 + k,
                        product_id=product.id,
                        order_line_id=l0 + i,
                        status=ServiceStatus.ACTIVE,
                        started_at=started,
                        expires_at=EXPIRES,
                        auto_renew=True,
                        frequency_years=1,
                        saved_card_id=k0 + k,
                        created_at=started,
                    )
                )
            conn.execute(insert(OrderLine), lines)
            conn.execute(insert(Service), services)
        if conn.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in ("customer", "saved_card", "orders", "order_line", "service"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
            conn.execute(text("ANALYZE"))


def check(n: int) -> dict[str, int]:
    """What the pass left: one succeeded charge and one extended period per service."""
    from webapp.outbox.models import OutboxEmail
    from webapp.payments.models import Payment, PaymentChannel, PaymentStatus
    from webapp.renewals.models import Service

    paid = select(Payment.order_id).where(
        Payment.channel == PaymentChannel.RENEWAL, Payment.status == PaymentStatus.SUCCEEDED
    )
    return {
        "renewal_charges": db.session.scalar(select(func.count()).select_from(paid.subquery())),
        "orders_paid_twice": db.session.scalar(
            select(func.count()).select_from(
                paid.group_by(Payment.order_id).having(func.count() > 1).subquery()
            )
        ),
        "services_extended": db.session.scalar(
            select(func.count(Service.id)).where(
                Service.expires_at == EXPIRES.replace(year=EXPIRES.year + 1)
            )
        ),
        "emails_queued": db.session.scalar(select(func.count(OutboxEmail.id))),
    }


def rss_mib() -> float:
    """This process's resident memory now (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssPeak(threading.Thread):
    """Samples the resident memory every 50 ms until stopped; `peak` is the highest seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_mib()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.peak = max(self.peak, rss_mib())

    def stop(self) -> float:
        self.done.set()
        self.join()
        self.peak = max(self.peak, rss_mib())
        return self.peak


def make_app(url: str):
    """The shop as the scheduler runs it (production config), on `url`, e-mails left queued."""
    from webapp import create_app
    from webapp.config import Config

    return create_app(Config, {"SQLALCHEMY_DATABASE_URI": url, "MAIL_SEND_AFTER_COMMIT": False})


def prepare(n: int, url: str) -> float:
    """A fresh schema with n due services; returns the seconds it took."""
    with make_app(url).app_context():
        db.drop_all()
        db.create_all()
        started = time.perf_counter()
        seed(n)
        db.session.remove()
        return time.perf_counter() - started


def run_one(n: int, url: str, trace: bool) -> dict:
    """One engine pass over the prepared database, measured; in a process of its own."""
    from webapp.renewals.engine import run_renewals

    app = make_app(url)
    bank = InstantBank()
    app.extensions["gateway"] = bank
    with app.app_context():
        gc.collect()
        rss_before = rss_mib()
        sampler = RssPeak()
        sampler.start()
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        report = run_renewals(NOW)
        elapsed = time.perf_counter() - started
        heap_peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
        tracemalloc.stop()
        rss_peak = sampler.stop()
        result = dict(
            services=n,
            seconds=elapsed,
            per_second=n / elapsed,
            rss_before_mib=rss_before,
            rss_peak_mib=rss_peak,
            heap_peak_mib=heap_peak,
            bank_charges=bank.charges,
            report=str(report),
            **check(n),
        )
        db.session.remove()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also the Python heap peak (the pass runs about 3 times slower)",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure a pass
    args = parser.parse_args()
    if not args.database_url:
        script = ROOT / "scripts" / "with-postgres.sh"
        os.execvp("bash", ["bash", str(script), sys.executable, *sys.argv])
    if args.one:
        print(json.dumps(run_one(args.one, args.database_url, args.tracemalloc)))
        return
    print(
        f"motore dei rinnovi: una passata, banca finta istantanea, "
        f"{args.database_url.split(':')[0]}, {os.cpu_count()} CPU"
    )
    for n in args.services:
        seeded = prepare(n, args.database_url)
        cmd = [sys.executable, __file__, "--one", str(n), "--database-url", args.database_url]
        out = subprocess.run(
            cmd + (["--tracemalloc"] if args.tracemalloc else []),
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        heap = f", heap peak {r['heap_peak_mib']:.1f} MiB" if r["heap_peak_mib"] else ""
        print(
            f"{n:>7} servizi: {r['seconds']:8.1f} s, {r['per_second']:5.0f} servizi/s, "
            f"RSS {r['rss_before_mib']:.0f} -> picco {r['rss_peak_mib']:.0f} MiB "
            f"(+{r['rss_peak_mib'] - r['rss_before_mib']:.1f}){heap}"
            f"  [seed {seeded:.1f} s]"
        )
        print(f"         {r['report']}")
        print(
            f"         addebiti {r['renewal_charges']} (ordini pagati due volte: "
            f"{r['orders_paid_twice']}), servizi prorogati {r['services_extended']}, "
            f"e-mail in coda {r['emails_queued']}"
        )
        ok = r["renewal_charges"] == r["services_extended"] == r["bank_charges"] == n
        if not ok or r["orders_paid_twice"]:
            raise SystemExit("la passata non ha rinnovato ogni servizio esattamente una volta")
    with make_app(args.database_url).app_context():
        db.drop_all()


if __name__ == "__main__":
    main()
