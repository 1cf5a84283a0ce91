"""HTMX fragment throughput against a bare Flask route, both under the production gunicorn config.

Runs, side by side in one run and interleaved: a bare Flask route, the lean reference
(bench/_lean.py: session + customer SELECT + cart SELECT + one template, Core), a lean POST
reference (the same plus the CSRF check, a row, a guarded UPDATE and a commit) and four shop
fragments (cart anonymous and logged in, the card picker, the renewal frequency), on SQLite and
PostgreSQL. Prints, per route over at least three rounds, min, median and max of requests/second
and of the ratios to its reference (a GET fragment: the lean reference; a POST fragment: the lean
POST reference) for throughput, p99 and the server's CPU per request; the fragment cache's hit
rate during the route's runs (from the shop's /metrics); the CPU the rest of the machine used
before, during and after the run. Then a verdict per fragment against issue 25's targets, which
it refuses to give when that load moved by more than one core.
Not a test: figures only.
Usage: .venv/bin/python bench/fragments.py [--seconds 4] [--rounds 3] [--db sqlite postgresql]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"server at {url} did not start")


# --pin: the servers on the last core, wrk (and this script) on the others, so the load
# generator and the measured server do not take turns on the same core.
PINNED: dict[str, set[int]] = {}


def pin(server_cores: set[int], client_cores: set[int]) -> None:
    PINNED.update(server=server_cores, client=client_cores)
    os.sched_setaffinity(0, client_cores)


def _on(role: str):
    cores = PINNED.get(role)
    return (lambda: os.sched_setaffinity(0, cores)) if cores else None


def gunicorn(app_spec: str, port: int, workers: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--chdir",
            str(ROOT),
            app_spec,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_on("server"),
    )


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()  # the fields after "(comm)"


def server_cpu(master: int) -> float:
    """CPU seconds (user + system) the gunicorn master's workers have used: the live ones, plus
    the ones it reaped (recycled workers), which the kernel adds to the master's children's.
    Time stolen by other machines' load is not in it, unlike wall-clock throughput."""
    fields = _stat(master)
    total = int(fields[13]) + int(fields[14])  # cutime, cstime
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat(int(entry))
            except OSError:  # gone meanwhile
                continue
            if int(fields[1]) == master:  # ppid
                total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def wrk(url: str, seconds: int, headers: dict[str, str], body: str | None = None) -> tuple:
    """(requests/s, p99 ms, non-2xx answers, requests) of `seconds` of wrk; a POST when `body`
    is given."""
    cmd = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    script = None
    if body is not None:
        fd, script = tempfile.mkstemp(suffix=".lua")
        with os.fdopen(fd, "w") as f:
            f.write(f'wrk.method = "POST"\nwrk.body = "{body}"\n')
        cmd += ["-s", script, "-H", "Content-Type: application/x-www-form-urlencoded"]
    out = subprocess.run(
        cmd + [url], capture_output=True, text=True, check=True, preexec_fn=_on("client")
    ).stdout
    if script:
        os.unlink(script)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    done = int(re.search(r"(\d+) requests in", out).group(1))
    return rate, p99, int(bad.group(1)) if bad else 0, done


# wrk and the test client that made the cookies present themselves alike, as one browser does:
# Flask-Login's session protection hashes the User-Agent, and a session that meets another one
# is rewritten (Set-Cookie) on every request, which a real browser pays once.
USER_AGENT = "bench-fragments"


def browser(app):
    """A test client that keeps its cookies and sends the bench's User-Agent."""
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = USER_AGENT
    return client


def _bench_app(db_url: str):
    from flask import g as flask_g

    from webapp import create_app
    from webapp.config import Config

    app = create_app(
        Config,
        # The cookies are read over plain HTTP here: the test client must send them back.
        {
            "SQLALCHEMY_DATABASE_URI": db_url,
            "ENV_NAME": "development",  # the development secrets: a local benchmark
            "RATELIMIT_ENABLED": False,
            "SESSION_COOKIE_SECURE": False,
        },
    )

    @app.before_request
    def _fresh_g() -> None:
        # The app context below stays pushed, so the two clients' requests share its `g`.
        for key in ("csrf_token", "_login_user"):
            flask_g.pop(key, None)

    return app


def _token(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)


def _fill_cart(client, products, csrf: str) -> None:
    for p in products:
        client.post(
            f"/carrello/aggiungi/{p.id}", headers={"HX-Request": "true", "X-CSRFToken": csrf}
        )


def _order_to_pay(customer, product):
    """A card order of one line, still to pay (the card picker's)."""
    from webapp.extensions import db
    from webapp.shop.models import PaymentMethod
    from webapp.shop.order_models import Order, OrderLine

    net = product.yearly_price_cents
    order = Order(
        customer_id=customer.id,
        payment_method=PaymentMethod.CARD,
        subtotal_cents=net,
        net_cents=net,
        vat_cents=round(net * 0.22),
        total_cents=net + round(net * 0.22),
    )
    order.lines.append(
        OrderLine(
            product_id=product.id,
            product_name=product.name,
            kind=product.kind,
            years=1,
            yearly_price_cents=net,
            list_cents=net,
            net_cents=net,
            auto_renew=True,
        )
    )
    db.session.add(order)
    return order


def prepare_shop(db_url: str) -> dict:
    """Demo catalogue; an anonymous cart and a logged-in customer's (3 lines each), a saved
    card, a service and an order to pay. Returns cookies, CSRF token and ids."""
    from webapp.clock import now_utc
    from webapp.demo import DEMO_EMAIL, DEMO_PASSWORD, seed
    from webapp.extensions import db
    from webapp.shop.models import Customer, Product

    sys.path.insert(0, str(ROOT))
    from tests.unit.renewal_fakes import make_card, make_service

    app = _bench_app(db_url)
    with app.app_context():
        db.drop_all()
        db.create_all()
        now = now_utc()
        seed(now)
        db.session.commit()
        products = [p for p in db.session.scalars(db.select(Product)) if p.auto_renewable][:3]
        anon = browser(app)
        _fill_cart(anon, products, _token(anon, "/"))
        logged = browser(app)
        login = {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
        logged.post("/accedi", data=login, headers={"X-CSRFToken": _token(logged, "/accedi")})
        csrf = _token(logged, "/")
        _fill_cart(logged, products, csrf)
        customer = db.session.scalar(db.select(Customer).where(Customer.email == DEMO_EMAIL))
        card = make_card(customer)
        expires = now.replace(year=now.year + 1)
        service = make_service(customer, products[0], expires_at=expires, card=card)
        order = _order_to_pay(customer, products[1])
        db.session.commit()
        for client in (anon, logged):  # the cookie a browser would hold from now on
            client.get("/carrello", headers={"HX-Request": "true"})
        result = dict(
            anon=f"session={anon.get_cookie('session').value}",
            logged=f"session={logged.get_cookie('session').value}",
            csrf=csrf,
            card_id=card.id,
            service_id=service.id,
            order_id=order.id,
            order_total=order.total_cents,
            customer_name=customer.name,
        )
        db.session.remove()
        db.engine.dispose()
    return result


def targets(shop: str, bare: str, lean: str, data: dict, floor: str | None = None) -> list[tuple]:
    """(name, url, headers, body) of each measured route; with `floor` (bench/_floor.py's
    server), the shop's floors too."""
    hx = {"HX-Request": "true", "User-Agent": USER_AGENT}
    logged = {**hx, "Cookie": data["logged"], "X-CSRFToken": data["csrf"]}
    floors = []
    if floor is not None:
        floors = [
            (ANON_FLOOR, f"{floor}/carrello", {**hx, "Cookie": data["anon"]}, None),
            (GET_FLOOR, f"{floor}/carrello", logged, None),
            (
                POST_FLOOR,
                f"{floor}/area-clienti/servizi/{data['service_id']}/frequenza",
                logged,
                "frequency_years=1",
            ),
        ]
    return [
        ("bare Flask route", f"{bare}/bare", {"User-Agent": USER_AGENT}, None),
        ("lean reference", f"{lean}/lean", {**hx, "Cookie": data["logged"]}, None),
        (
            "lean POST reference",
            f"{lean}/lean-post/{data['service_id']}",
            logged,
            "frequency_years=1",
        ),
        ("cart fragment, anonymous", f"{shop}/carrello", {**hx, "Cookie": data["anon"]}, None),
        ("cart fragment, logged in", f"{shop}/carrello", logged, None),
        (
            "card picker (POST scelta)",
            f"{shop}/portale-pagamenti/ordini/{data['order_id']}/scelta",
            logged,
            # What the picker's form posts on a change (hx-include="#card-picker"): the choice,
            # the form's attempt and the amount; the token travels in the header.
            f"choice={data['card_id']}&attempt=bench-attempt&amount_cents={data['order_total']}",
        ),
        (
            "renewal frequency (POST)",
            f"{shop}/area-clienti/servizi/{data['service_id']}/frequenza",
            logged,
            "frequency_years=1",
        ),
        *floors,
    ]


REFERENCES = ("bare Flask route", "lean reference", "lean POST reference")
# The shop answering a constant (bench/_floor.py): not judged, but no fragment can beat its floor.
ANON_FLOOR = "floor: anonymous GET"
GET_FLOOR = "floor: logged-in GET"
POST_FLOOR = "floor: logged-in POST"
FLOOR_OF = {
    "cart fragment, anonymous": ANON_FLOOR,
    "cart fragment, logged in": GET_FLOOR,
    "card picker (POST scelta)": POST_FLOOR,
    "renewal frequency (POST)": POST_FLOOR,
}
POST_FRAGMENTS = ("card picker (POST scelta)", "renewal frequency (POST)", POST_FLOOR)


def preflight(routes: list[tuple], data: dict) -> None:
    """Every route answers 2xx once before it is measured, and the lean reference sees the
    logged-in customer (a reference that fails or reads less would flatter the fragments)."""
    for label, url, headers, body in routes:
        if body is None:
            r = requests.get(url, headers=headers, timeout=10)
        else:
            headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
            r = requests.post(url, headers=headers, data=body, timeout=10)
        if not 200 <= r.status_code < 300:
            raise SystemExit(f"{label} ({url}) answered {r.status_code}: fix it before measuring")
        if label == "lean reference" and data["customer_name"] not in r.text:
            raise SystemExit("the lean reference did not see the logged-in customer")


def refuse_failed_reference(db_name: str, label: str, result: tuple) -> None:
    """A reference that answered any non-2xx measured an error page, not the reference."""
    if label in REFERENCES and result[2]:
        raise SystemExit(
            f"{db_name}: the {label} answered {result[2]} non-2xx responses under wrk: "
            "its figures would be meaningless, fix it first"
        )


def run_db(name: str, db_url: str, args) -> dict:
    data = prepare_shop(db_url)
    metrics_dir = tempfile.mkdtemp(prefix="bench-metrics-")
    env = {**os.environ, "DATABASE_URL": db_url, "PYTHONPATH": str(ROOT), "APP_ENV": "development"}
    env.pop("METRICS_TOKEN", None)  # /metrics answers the loopback
    floor_metrics = tempfile.mkdtemp(prefix="bench-metrics-")
    ports = {"shop": free_port(), "bare": free_port(), "lean": free_port(), "floor": free_port()}
    procs = {
        # The shop as in production: its workers' counters added up on /metrics.
        "shop": gunicorn("wsgi:app", ports["shop"], args.workers, {**env, PROM_DIR: metrics_dir}),
        "bare": gunicorn("bench._bare:app", ports["bare"], args.workers, env),
        "lean": gunicorn("bench._lean:app", ports["lean"], args.workers, env),
        "floor": gunicorn(
            "bench._floor:app", ports["floor"], args.workers, {**env, PROM_DIR: floor_metrics}
        ),
    }
    base = {server: f"http://127.0.0.1:{port}" for server, port in ports.items()}
    try:
        wait_up(base["shop"] + "/")
        wait_up(base["bare"] + "/bare")
        wait_up(base["lean"] + "/lean")
        wait_up(base["floor"] + "/")
        routes = targets(base["shop"], base["bare"], base["lean"], data, base["floor"])
        preflight(routes, data)
        masters = {base[s]: p.pid for s, p in procs.items()}
        meter = LoadMeter(list(masters.values()))
        before = meter.idle_sample(args.settle)
        runs, during = measure(name, routes, masters, meter, base["shop"], args)
        after = meter.idle_sample(args.settle)
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(10)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        shutil.rmtree(floor_metrics, ignore_errors=True)
    return dict(name=name, rows=summarise(name, runs), load=(before, during, after))


PROM_DIR = "PROMETHEUS_MULTIPROC_DIR"


class LoadMeter:
    """What the rest of the machine does while the bench runs: the CPU time of every process
    but the bench's own (its servers' workers, wrk and this script), in cores, from /proc."""

    def __init__(self, masters: list[int]) -> None:
        self.masters = masters

    @staticmethod
    def _machine_busy() -> float:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
        return (sum(ticks) - ticks[3] - ticks[4]) / _TICK  # all but idle and iowait

    def _ours(self) -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once reaped
        own = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
        return own + sum(server_cpu(m) for m in self.masters)

    def snapshot(self) -> tuple[float, float, float]:
        return time.monotonic(), self._machine_busy(), self._ours()

    def foreign_cores(self, since: tuple[float, float, float]) -> float:
        now, busy, ours = self.snapshot()
        elapsed = max(now - since[0], 1e-6)
        return max(0.0, (busy - since[1]) - (ours - since[2])) / elapsed

    def idle_sample(self, seconds: float) -> float:
        """The other processes' load, in cores, over `seconds` while the bench does nothing."""
        start = self.snapshot()
        time.sleep(seconds)
        return self.foreign_cores(start)


_CACHE_LINE = re.compile(
    r'^pecshop_fragment_cache_total\{[^}]*result="(hit|miss)"[^}]*\} (\S+)$', re.M
)


def cache_counts(shop: str) -> tuple[float, float]:
    """(hits, misses) of the shop's fragment caches so far, all workers (webapp.htmx)."""
    text = requests.get(f"{shop}/metrics", timeout=10).text
    counts = {"hit": 0.0, "miss": 0.0}
    for result, value in _CACHE_LINE.findall(text):
        counts[result] += float(value)
    return counts["hit"], counts["miss"]


def schedule(labels: list[str]) -> list[str]:
    """A round's order: each reference runs right before and right after its fragments
    (bare, lean, GET fragments, lean, lean POST, POST fragments, lean POST), so a fragment is
    compared with its reference's runs on either side of it, not with one taken a minute
    earlier while the machine did something else."""
    bare, lean, lean_post = REFERENCES
    fragments = [label for label in labels if label not in REFERENCES]
    gets = [label for label in fragments if reference_of(label) == lean]
    posts = [label for label in fragments if reference_of(label) == lean_post]
    return [
        *(label for label in labels if label == bare),
        lean,
        *gets,
        lean,
        lean_post,
        *posts,
        lean_post,
    ]


def bracketed(results: list[tuple]) -> tuple:
    """A reference's two runs around its fragments as one: mean rate, p99 and CPU per request,
    errors and requests added up, no hit rate."""
    if len(results) == 1:
        return results[0]
    rate, p99, cpu = (statistics.fmean(r[i] for r in results) for i in (0, 1, 4))
    return (rate, p99, sum(r[2] for r in results), sum(r[3] for r in results), cpu, None)


def measure(name: str, routes: list[tuple], masters: dict[str, int], meter, shop, args):
    """Each route's (requests/s, p99 ms, non-2xx, requests, server CPU ms per request, cache hit
    rate) per round, and the other processes' load (cores) during each route's run. The rounds
    are interleaved and each reference brackets its fragments (`schedule`), so the machine's
    load hits a fragment and its reference alike."""
    runs: dict[str, list] = {r[0]: [] for r in routes}
    by_label = {r[0]: r for r in routes}
    during: list[float] = []
    for _ in range(args.rounds):
        this_round: dict[str, list] = {label: [] for label in runs}
        for label in schedule(list(by_label)):
            _, url, headers, body = by_label[label]
            master = next(pid for server, pid in masters.items() if url.startswith(server + "/"))
            hits, misses = cache_counts(shop)
            cpu = server_cpu(master)
            start = meter.snapshot()
            result = wrk(url, args.seconds, headers, body)
            during.append(meter.foreign_cores(start))
            cpu_ms = (server_cpu(master) - cpu) * 1000 / max(result[3], 1)
            hits2, misses2 = cache_counts(shop)
            asked = (hits2 - hits) + (misses2 - misses)
            # Only the shop's own routes: answers still in flight from the route before would
            # count in the next route's window (the floor's server has no fragment cache).
            ours = url.startswith(shop + "/")
            hit_rate = (hits2 - hits) / asked if asked and ours else None
            this_round[label].append((*result, cpu_ms, hit_rate))
            refuse_failed_reference(name, label, result)
        for label, results in this_round.items():
            runs[label].append(bracketed(results))
    return runs, during


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def reference_of(label: str) -> str:
    """A GET fragment is measured against the lean GET reference, a POST one against the lean
    POST reference (the yardstick of issue 25)."""
    return "lean POST reference" if label in POST_FRAGMENTS else "lean reference"


def summarise(name: str, runs: dict[str, list]) -> list[dict]:
    """Per route and against its reference, round by round: the throughput ratio, the p99
    ratio and the CPU ratio (the reference's CPU per request over the route's), each as
    (median, min, max); the cache hit rate; the errors."""
    rows = []
    for label, results in runs.items():
        ref = runs[reference_of(label)]
        pairs = list(zip(results, ref, strict=True))
        rates = [r[5] for r in results if r[5] is not None]
        rows.append(
            dict(
                db=name,
                route=label,
                reference=reference_of(label),
                rate=_spread([r[0] for r in results]),
                ratio=_spread([r[0] / f[0] for r, f in pairs]),
                p99=statistics.median(r[1] for r in results),
                p99_ratio=_spread([r[1] / f[1] for r, f in pairs]),
                cpu=statistics.median(r[4] for r in results),
                cpu_ratio=_spread([f[4] / r[4] for r, f in pairs]),
                hit_rate=statistics.median(rates) if rates else None,
                errors=sum(r[2] for r in results),
            )
        )
    return rows


TARGET_RATIO = 0.8  # each fragment, in every round, against its reference
TARGET_P99 = 2.0  # its p99 at most twice the reference's, in every round
MAX_LOAD_SHIFT = 1.0  # cores: beyond, the rounds are not comparable and no verdict is given


def verdict(run: dict) -> list[str]:
    """One line per fragment: met or not, by its worst round; none if the load moved."""
    before, during, after = run["load"]
    samples = [before, *during, after]
    shift = max(samples) - min(samples)
    if shift > MAX_LOAD_SHIFT:
        return [
            f"{run['name']}: NO VERDICT - the rest of the machine's load moved by {shift:.1f} "
            f"cores during the run (more than {MAX_LOAD_SHIFT:.0f}): run it again on a quiet "
            "machine"
        ]
    lines = []
    floors = {row["route"]: row for row in run["rows"] if row["route"] in FLOOR_OF.values()}
    for row in run["rows"]:
        if row["route"] in REFERENCES or row["route"] in floors:
            continue
        worst, worst_p99 = row["ratio"][1], row["p99_ratio"][2]
        ok = worst >= TARGET_RATIO and worst_p99 <= TARGET_P99
        line = (
            f"{run['name']}: {row['route']}: {'MET' if ok else 'NOT MET'} (worst round "
            f"{worst:.2f} of the {row['reference']}, target {TARGET_RATIO}; worst p99 ratio "
            f"{worst_p99:.2f}, target <= {TARGET_P99})"
        )
        floor = floors.get(FLOOR_OF.get(row["route"]))
        if not ok and floor is not None and floor["ratio"][1] < TARGET_RATIO:
            line += (
                f"; out of reach of any view here: the shop answering a constant ({floor['route']}"
                f") is at {floor['ratio'][1]:.2f} in its worst round"
            )
        lines.append(line)
    return lines


def _fmt(spread: tuple[float, float, float], digits: int = 2) -> str:
    med, lo, hi = spread
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def report(runs: list[dict], args) -> None:
    print(
        f"gunicorn.conf.py, workers={args.workers}; wrk -t2 -c16 -d{args.seconds}s, "
        f"{args.rounds} interleaved rounds"
        + (f"; servers on core(s) {sorted(PINNED['server'])}" if PINNED else "")
        + ". Each ratio is to the route's reference in the same "
        "round (GET fragments: the lean reference; POST fragments: the lean POST reference), "
        "as median (min-max) over the rounds."
    )
    print(
        "CPU: the server's CPU time per request (user + system, all workers); its ratio is the "
        "reference's over the route's, so it reads like the throughput ratio. hit: the share of "
        "fragments the fragment cache served again during the route's runs."
    )
    for run in runs:
        before, during, after = run["load"]
        print(
            f"\n{run['name']}: the rest of the machine used {before:.2f} cores before the run, "
            f"{min(during):.2f}-{max(during):.2f} during it, {after:.2f} after; load average now "
            f"{os.getloadavg()[0]:.2f}"
        )
        print(
            f"{'route':28} {'req/s median (min-max)':>24} {'ratio':>17} {'p99 ms':>7} "
            f"{'p99 ratio':>17} {'CPU ms':>6} {'CPU ratio':>17} {'hit':>5} {'err':>3}"
        )
        for row in run["rows"]:
            hit = "" if row["hit_rate"] is None else f"{row['hit_rate']:.0%}"
            print(
                f"{row['route']:28} {_fmt(row['rate'], 0):>24} {_fmt(row['ratio']):>17} "
                f"{row['p99']:7.1f} {_fmt(row['p99_ratio']):>17} {row['cpu']:6.3f} "
                f"{_fmt(row['cpu_ratio']):>17} {hit:>5} {row['errors']:3}"
            )
    print("\nVerdict (issue 25: >= 0.8 of the reference and p99 <= 2x, in every round):")
    for run in runs:
        for line in verdict(run):
            print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds of quiet load sampling before/after"
    )
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument(
        "--pin", action="store_true", help="servers on the last core, wrk on the others"
    )
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3: min, median and max need three")
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    pg = os.environ.get("TEST_DATABASE_URL")
    if "postgresql" in args.db and not pg:
        script = ROOT / "scripts" / "with-postgres.sh"
        os.execvp("bash", ["bash", str(script), sys.executable, *sys.argv])
    cores = sorted(os.sched_getaffinity(0))
    if args.pin and len(cores) > 1:
        pin({cores[-1]}, set(cores[:-1]))
    runs = []
    for name in args.db:
        url = f"sqlite:///{tempfile.mkdtemp()}/bench.db" if name == "sqlite" else pg
        runs.append(run_db(name, url, args))
    report(runs, args)


if __name__ == "__main__":
    main()
