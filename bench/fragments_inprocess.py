"""The fragments of bench/fragments.py in process (Flask's test client, SQLite, one thread): the
time per request of each, next to the floors a fragment cannot go below.

No gunicorn, no wrk, no other process: what the machine's load does to wall-clock throughput
mostly cancels out of these ratios (rounds are interleaved; the median is printed). The floors
are the same apps with a view that returns at once: the lean app's GET, and the shop's POST
through what every customer-area form pays before its view runs (signed session, CSRF check,
the customer's row for Flask-Login, the form parsed).
Not a test: figures only.
Usage: .venv/bin/python bench/fragments_inprocess.py [--requests 300] [--rounds 7]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fragments import USER_AGENT, _bench_app, prepare_shop  # noqa: E402


def clients(db_url: str, data: dict) -> dict:
    """(client, method, path, body) of each measured route."""
    os.environ["DATABASE_URL"] = db_url
    import bench._lean as lean

    cookie = data["logged"].split("=", 1)[1]
    lean_client = lean.app.test_client()
    lean_client.set_cookie("session", cookie)
    app = _bench_app(db_url)
    app.app_context().push()
    shop = app.test_client()
    shop.set_cookie("session", cookie)
    frequency = f"/area-clienti/servizi/{data['service_id']}/frequenza"
    picker = f"/portale-pagamenti/ordini/{data['order_id']}/scelta"
    choice = f"choice={data['card_id']}&attempt=bench-attempt&amount_cents={data['order_total']}"
    floor = app.test_client()  # the same shop, but its frequency view returns at once
    floor.set_cookie("session", cookie)
    return {
        "lean reference": (lean_client, "get", "/lean", None),
        "lean POST reference": (
            lean_client,
            "post",
            f"/lean-post/{data['service_id']}",
            "frequency_years=1",
        ),
        "cart fragment, logged in": (shop, "get", "/carrello", None),
        "card picker (POST scelta)": (shop, "post", picker, choice),
        "renewal frequency (POST)": (shop, "post", frequency, "frequency_years=1"),
        "floor: shop POST, empty view": (floor, "post", frequency, "frequency_years=1"),
    }, app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the access line would be timed too; the servers log it
    db_url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    data = prepare_shop(db_url)
    routes, app = clients(db_url, data)
    headers = {
        "HX-Request": "true",
        "X-CSRFToken": data["csrf"],
        "User-Agent": USER_AGENT,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    real_view = app.view_functions["area.set_frequency"]
    times: dict[str, list[float]] = {label: [] for label in routes}
    for _ in range(args.rounds):
        for label, (client, method, path, body) in routes.items():
            empty = label.startswith("floor")
            app.view_functions["area.set_frequency"] = (lambda **_: "") if empty else real_view
            send = getattr(client, method)
            answer = send(path, headers=headers, data=body)
            if answer.status_code != 200:
                raise SystemExit(f"{label} answered {answer.status_code}")
            started = time.process_time()
            for _ in range(args.requests):
                send(path, headers=headers, data=body)
            times[label].append((time.process_time() - started) * 1000 / args.requests)
    lean = times["lean reference"]
    print(f"in process, SQLite; {args.rounds} rounds of {args.requests} requests; median")
    print(f"{'route':32} {'ms/request':>10} {'ratio to lean':>14}")
    for label, values in times.items():
        ratio = statistics.median(ref / t for ref, t in zip(lean, values, strict=True))
        print(f"{label:32} {statistics.median(values):10.3f} {ratio:14.2f}")


if __name__ == "__main__":
    main()
