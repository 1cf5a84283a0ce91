"""HTMX fragment throughput against a bare Flask route, both under the production gunicorn config.

Prints requests/second of each (wrk on loopback) and the ratio. Not a test: figures only.
Usage: .venv/bin/python bench/fragments.py [--seconds 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
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
            "--access-logfile",
            "/dev/null",
            "--chdir",
            str(ROOT),
            app_spec,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wrk(url: str, seconds: int, headers: dict[str, str]) -> float:
    cmd = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def prepare_shop(db_url: str) -> str:
    """A database with the demo catalogue and an anonymous cart of 3 lines; returns its cookie."""
    from webapp import create_app
    from webapp.config import Config
    from webapp.demo import seed
    from webapp.extensions import db
    from webapp.shop.models import Product

    app = create_app(
        Config,
        {"SQLALCHEMY_DATABASE_URI": db_url, "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False},
    )
    with app.app_context():
        db.create_all()
        from webapp.clock import now_utc

        seed(now_utc())
        db.session.commit()
        client = app.test_client()
        product_ids = [p.id for p in db.session.scalars(db.select(Product)).all()[:3]]
        for pid in product_ids:
            client.post(f"/carrello/aggiungi/{pid}", headers={"HX-Request": "true"})
        cookie = client.get_cookie("session")
        return f"session={cookie.value}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk non trovato: apt-get install wrk")
    tmp = tempfile.mkdtemp()
    db_url = f"sqlite:///{tmp}/bench.db"
    cookie = prepare_shop(db_url)
    env = {**os.environ, "DATABASE_URL": db_url, "RATELIMIT_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    shop_port, bare_port = free_port(), free_port()
    procs = [
        gunicorn("wsgi:app", shop_port, args.workers, env),
        gunicorn("bench._bare:app", bare_port, args.workers, env),
    ]
    try:
        wait_up(f"http://127.0.0.1:{shop_port}/")
        wait_up(f"http://127.0.0.1:{bare_port}/bare")
        fragment = wrk(
            f"http://127.0.0.1:{shop_port}/carrello",
            args.seconds,
            {"HX-Request": "true", "Cookie": cookie},
        )
        bare = wrk(f"http://127.0.0.1:{bare_port}/bare", args.seconds, {})
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    print(f"gunicorn workers={args.workers} threads=4, wrk -t2 -c16 -d{args.seconds}s")
    print(f"cart fragment (GET /carrello, HX-Request, 3 lines): {fragment:10.0f} req/s")
    print(f"bare Flask route:                                   {bare:10.0f} req/s")
    print(f"ratio fragment/bare:                                {fragment / bare:10.2f}")


if __name__ == "__main__":
    main()
