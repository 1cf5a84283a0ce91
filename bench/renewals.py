"""Renewal-engine throughput and peak memory for N due services, on PostgreSQL.

Seeds N auto-renewing services that entered the renewal window (bulk Core inserts), then times
one engine pass, `run_renewals(now)`: it opens N renewals and charges each once (on PostgreSQL
in claimed batches), issues each paid renewal's FatturaPA invoice (gap-free numbers) and queues
its receipt e-mail in the outbox (not sent: that is the outbox job's). The raw floor (bare
psycopg, INSERT payment + UPDATE service, a commit each) is measured right before and after
every pass, since it moves with the machine's load; the ratio is the pass's rate over the mean
of the two. The bank is an in-process fake whose charges always succeed at once, so the figures
are the shop side's engine (database work, rendering, Python), not a bank's latency. Each pass runs
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
        self.lock = threading.Lock()  # the engine asks from a thread pool

    def charge_token(
        self, *, token, amount_cents, currency, order_ref, description, initiator, idempotency_key
    ) -> ChargeResult:
        with self.lock:
            self.charges += 1
            number = self.charges
        return ChargeResult(
            f"ch_{os.getpid()}_{number}",
            "succeeded",
            amount_cents,
            currency,
            order_ref,
            None,
            None,
            merchant_id=os.environ.get("BANK_MERCHANT_ID", "pec-shop"),
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


UNANNOUNCED = os.environ.get("BENCH_UNANNOUNCED") == "1"


def _announced(product, card_id: int) -> dict:
    """What the reminder records on a service: the period, amount (VAT included), years, card."""
    from webapp.money import vat_cents

    net = product.yearly_price_cents
    return dict(
        announced_period=EXPIRES,
        announced_cents=net + vat_cents(net, 22),
        announced_years=1,
        announced_card_id=card_id,
    )


def seed(n: int) -> None:
    """The demo catalogue, n/10 customers with a card each, and n services due for renewal."""
    from webapp.demo import seed as seed_catalogue
    from webapp.payments.models import SavedCard
    from webapp.renewals.models import Service, ServiceStatus
    from webapp.shop.models import BillingProfile, Customer, PaymentMethod, Product
    from webapp.shop.order_models import Order, OrderLine, OrderStatus

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
            conn.execute(  # billing data, as the checkout asks: each invoice's XML is valid
                insert(BillingProfile),
                [
                    dict(
                        customer_id=c0 + k,
                        customer_type="private",
                        first_name="Cliente",
                        last_name=f"Numero {k}",
                        tax_code="RSSMRA85T10A562S",
                        address="Via Garibaldi 10",
                        postal_code="20121",
                        city="Milano",
                        province="MI",
                        country="IT",
                        updated_at=started,
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
                        # As in production, where the reminder announced this renewal's amount
                        # weeks before (issue 20); BENCH_UNANNOUNCED=1 leaves it out, and the
                        # pass then queues each notice itself before charging (a slower path).
                        **({} if UNANNOUNCED else _announced(product, k0 + k)),
                    )
                )
            conn.execute(insert(OrderLine), lines)
            conn.execute(insert(Service), services)
        if conn.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in (
                "customer",
                "billing_profile",
                "saved_card",
                "orders",
                "order_line",
                "service",
            ):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
            conn.execute(text("ANALYZE"))


def check(n: int) -> dict[str, int]:
    """What the pass left: one succeeded charge and one extended period per service."""
    from webapp.invoicing.models import Invoice
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
        "invoices": db.session.scalar(select(func.count(Invoice.id))),
        "invoice_numbers": db.session.scalar(select(func.count(func.distinct(Invoice.number)))),
        "invoice_max": db.session.scalar(select(func.coalesce(func.max(Invoice.number), 0))),
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

    return create_app(
        Config,
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "MAIL_SEND_AFTER_COMMIT": False,
            "ENV_NAME": "development",
        },
    )


def prepare(n: int, url: str) -> float:
    """A fresh schema with n due services; returns the seconds it took."""
    with make_app(url).app_context():
        db.drop_all()
        db.create_all()
        started = time.perf_counter()
        seed(n)
        db.session.remove()
        return time.perf_counter() - started


def run_one(n: int, url: str, trace: bool, worker: str = "w1", start_at: float = 0.0) -> dict:
    """One engine pass over the prepared database, measured; in a process of its own.

    With `start_at` (a time.time() value) the pass starts then: two workers start together.
    """
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
        if start_at:
            time.sleep(max(0.0, start_at - time.time()))
        wall_start = time.time()
        started = time.perf_counter()
        report = run_renewals(NOW, worker=worker)
        elapsed = time.perf_counter() - started
        wall_end = time.time()
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
            worker=worker,
            charged=report.charged,
            skipped=report.skipped,
            errors=report.errors,
            wall_start=wall_start,
            wall_end=wall_end,
        )
        db.session.remove()
    return result


def raw_rate(url: str, seconds: float = 3.0) -> float:
    """The floor: INSERT a payment + UPDATE a service, one commit each, bare psycopg."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        ids = [
            row
            for row in conn.execute(
                "SELECT s.id, l.order_id FROM service s "
                "JOIN order_line l ON l.id = s.order_line_id "
                "ORDER BY s.id LIMIT 20000"
            )
        ]
        conn.commit()
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            service_id, order_id = ids[done % len(ids)]
            conn.execute(
                "INSERT INTO payment (order_id, channel, status, amount_cents, currency, "
                "idempotency_key, refunded_cents, created_at) "
                "VALUES (%s, 'renewal', 'pending', 610, 'EUR', %s, 0, now())",
                (order_id, f"raw-{done}"),
            )
            conn.execute(
                "UPDATE service SET frequency_years = frequency_years WHERE id = %s",
                (service_id,),
            )
            conn.commit()
            done += 1
        elapsed = time.perf_counter() - started
        conn.execute("DELETE FROM payment WHERE idempotency_key LIKE 'raw-%%'")
        conn.commit()
    return done / elapsed


def passes(n: int, url: str, workers: int, trace: bool) -> list[dict]:
    """`workers` engine processes over the same n due services, started at the same instant."""
    start_at = time.time() + 3.0  # past every child's app setup
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--one", str(n), "--database-url", url]
            + ["--worker", f"w{i + 1}", "--start-at", repr(start_at)]
            + (["--tracemalloc"] if trace else []),
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for i in range(workers)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"worker failed ({proc.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def measure(n: int, workers: int, url: str, trace: bool) -> dict:
    """Seed n due services, measure the raw floor next to the pass (it moves with the machine's
    load), run the pass with `workers` processes and check what it left."""
    seeded = prepare(n, url)
    raw_before = raw_rate(url)
    results = passes(n, url, workers, trace)
    raw_after = raw_rate(url)
    raw = (raw_before + raw_after) / 2
    wall = max(r["wall_end"] for r in results) - min(r["wall_start"] for r in results)
    rate = n / wall
    with make_app(url).app_context():
        last = check(n)  # after every worker: the whole database
        db.session.remove()
    print(
        f"{n:>7} services, {workers} workers: {wall:7.1f} s, {rate:6.0f} services/s, raw "
        f"{raw:,.0f}/s (before {raw_before:,.0f}, after {raw_after:,.0f}), ratio to raw "
        f"{rate / raw:.2f}  [seed {seeded:.1f} s]"
    )
    for r in results:
        heap = f", heap peak {r['heap_peak_mib']:.1f} MiB" if r["heap_peak_mib"] else ""
        print(
            f"         {r['worker']}: charged {r['charged']}, skipped {r['skipped']}, "
            f"errors {r['errors']}, RSS {r['rss_before_mib']:.0f} -> peak "
            f"{r['rss_peak_mib']:.0f} MiB (+{r['rss_peak_mib'] - r['rss_before_mib']:.1f})"
            f"{heap}"
        )
    print(
        f"         charges {last['renewal_charges']} (orders paid twice: "
        f"{last['orders_paid_twice']}), services extended {last['services_extended']}, "
        f"e-mails queued {last['emails_queued']}, invoices {last['invoices']} "
        f"(numbers 1..{last['invoice_max']}, distinct {last['invoice_numbers']}), "
        f"calls to the bank {sum(r['bank_charges'] for r in results)}"
    )
    ok = (
        last["renewal_charges"]
        == last["services_extended"]
        == sum(r["bank_charges"] for r in results)
        == sum(r["charged"] for r in results)
        == last["invoices"]
        == last["invoice_numbers"]
        == last["invoice_max"]
        == n
    )
    if not ok or last["orders_paid_twice"]:
        raise SystemExit("the pass did not renew every service exactly once")
    return dict(
        n=n,
        workers=workers,
        raw=raw,
        rate=rate,
        wall=wall,
        skipped=[r["skipped"] for r in results],
        rss=max(r["rss_peak_mib"] for r in results),
    )


def summary(rows: list[dict]) -> None:
    """The figures side by side, and the peak RSS growth from the smallest n to the largest."""
    print(
        f"\n  {'services':>8}  {'workers':>7}  {'raw/s':>8}  {'engine/s':>8}  {'ratio':>8}"
        f"  {'skipped':>7}  {'RSS peak':>13}"
    )
    for r in rows:
        skipped = "/".join(str(s) for s in r["skipped"])
        print(
            f"  {r['n']:>8}  {r['workers']:>7}  {r['raw']:>8,.0f}  {r['rate']:>8,.0f}  "
            f"{r['rate'] / r['raw']:>8.2f}  {skipped:>7}  {r['rss']:>9.0f} MiB"
        )
    sizes = sorted({r["n"] for r in rows})
    for workers in sorted({r["workers"] for r in rows}):
        peaks = {r["n"]: r["rss"] for r in rows if r["workers"] == workers}
        if len(sizes) > 1 and sizes[0] in peaks and sizes[-1] in peaks:
            print(
                f"  RSS peak {workers} workers, from {sizes[0]:,} to {sizes[-1]:,}: "
                f"{peaks[sizes[-1]] / peaks[sizes[0]]:.2f}x"
            )


ONE_WORKER_FLOOR = 0.6  # issue 25: one worker keeps at least 0.6 of the raw write rate


def verdict(rows: list[dict]) -> list[str]:
    """Whether a change broke the engine's targets: per size, one worker at >= 0.6 of the raw
    write rate, and two workers faster than one (each against the raw floor of its own run, so
    the machine's load between the runs cancels out)."""
    lines = []
    for n in sorted({r["n"] for r in rows}):
        ratios = {r["workers"]: r["rate"] / r["raw"] for r in rows if r["n"] == n}
        if 1 in ratios:
            ok = ratios[1] >= ONE_WORKER_FLOOR
            lines.append(
                f"{n:,} services, 1 worker: {'MET' if ok else 'BROKEN'} "
                f"({ratios[1]:.2f} of raw, target >= {ONE_WORKER_FLOOR})"
            )
        if 1 in ratios and 2 in ratios:
            ok = ratios[2] > ratios[1]
            lines.append(
                f"{n:,} services, 2 workers beat 1: {'MET' if ok else 'BROKEN'} "
                f"({ratios[2]:.2f} vs {ratios[1]:.2f} of raw)"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also the Python heap peak (the pass runs about 3 times slower)",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure a pass
    parser.add_argument("--worker", default="w1", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.database_url:
        script = ROOT / "scripts" / "with-postgres.sh"
        os.execvp("bash", ["bash", str(script), sys.executable, *sys.argv])
    if args.one:
        result = run_one(args.one, args.database_url, args.tracemalloc, args.worker, args.start_at)
        print(json.dumps(result))
        return
    batch = make_app(args.database_url).config.get("RENEWAL_BATCH_SIZE", "default")
    print(
        f"renewal engine: one pass, instant fake bank, "
        f"{args.database_url.split(':')[0]}, {os.cpu_count()} CPUs, batch {batch}"
    )
    rows = []
    for n in args.services:
        for workers in args.workers:
            rows.append(measure(n, workers, args.database_url, args.tracemalloc))
    summary(rows)
    print("\nVerdict (issue 25):")
    for line in verdict(rows):
        print("  " + line)
    with make_app(args.database_url).app_context():
        db.drop_all()


if __name__ == "__main__":
    main()
