"""Lighthouse (pinned, mobile) on the catalogue, the cart and the checkout of a `make run` system.

    python scripts/lighthouse.py        (make lighthouse)

It installs Lighthouse LIGHTHOUSE_VERSION with npm into .lighthouse/ (once), starts the system
as `make run` does (migrate, seed-demo, webapp.devserver) on free ports with a throwaway
database, logs the demo customer in, puts two products in the cart, chooses the card, and runs
Lighthouse on the three pages with the customer's session cookie. It prints the four scores of
each page and fails unless all twelve are 100. Each page is measured RUNS times and the median
score counts (Lighthouse's advice for its variance: the performance score moves with the load of
the machine). Reports go to .lighthouse/reports/.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess  # nosec B404 # this project's own commands and the pinned Lighthouse
import sys
import tempfile
import time
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parent.parent
LIGHTHOUSE_VERSION = "12.2.3"
FOLDER = PROJECT / ".lighthouse"
BINARY = FOLDER / "node_modules" / ".bin" / "lighthouse"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
PAGES = (("catalogo", "/"), ("carrello", "/carrello"), ("checkout", "/checkout"))
DEMO = ("demo@pecshop.test", "demo12345")
RUNS = int(os.environ.get("LIGHTHOUSE_RUNS", "3"))
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def install() -> None:
    """Lighthouse at the pinned version, in the project's .lighthouse/ (not global)."""
    package = FOLDER / "node_modules" / "lighthouse" / "package.json"
    if package.exists() and json.loads(package.read_text())["version"] == LIGHTHOUSE_VERSION:
        return
    FOLDER.mkdir(exist_ok=True)
    command = ["npm", "install", "--prefix", str(FOLDER), "--no-audit", "--no-fund"]
    subprocess.run([*command, f"lighthouse@{LIGHTHOUSE_VERSION}"], check=True)  # nosec B603


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_system(folder: Path) -> tuple[subprocess.Popen, str]:
    """`make run` on free ports and a throwaway database: returns the process and shop URL."""
    ports = {name: str(free_port()) for name in ("SHOP", "BANK", "SDI", "MAIL")}
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT),
        "APP_ENV": "development",
        "FLASK_APP": "wsgi",
        "DATABASE_URL": f"sqlite:///{folder / 'shop.db'}",
        "BANK_DATABASE_URL": f"sqlite:///{folder / 'bank.db'}",
        "SDI_DATABASE_URL": f"sqlite:///{folder / 'sdi.db'}",
        "SANDBOX_TOKEN": "lighthouse",
        **{f"{name}_PORT": port for name, port in ports.items()},
    }
    flask = [sys.executable, "-m", "flask"]
    for step in (["db", "upgrade"], ["seed-demo"]):
        subprocess.run([*flask, *step], env=env, cwd=PROJECT, check=True, capture_output=True)  # nosec B603
    log = (folder / "system.log").open("w")
    process = subprocess.Popen(  # nosec B603 # this project's development server
        [sys.executable, "-m", "webapp.devserver"], env=env, cwd=PROJECT, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{ports['SHOP']}"
    for _ in range(120):
        try:
            if requests.get(url + "/", timeout=2).ok:
                return process, url
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"the shop did not start: see {folder / 'system.log'}")


def customer_session(url: str) -> str:
    """The demo customer logged in, two products in the cart, the card chosen: its cookie."""
    http = requests.Session()
    token = CSRF.search(http.get(f"{url}/accedi", timeout=10).text).group(1)
    email, password = DEMO
    data = {"email": email, "password": password, "csrf_token": token}
    http.post(f"{url}/accedi", data=data, timeout=10).raise_for_status()
    catalogue = http.get(f"{url}/", timeout=10).text
    token = CSRF.search(catalogue).group(1)
    for product_id in re.findall(r'action="/carrello/aggiungi/(\d+)"', catalogue)[:2]:
        http.post(f"{url}/carrello/aggiungi/{product_id}", data={"csrf_token": token}, timeout=10)
    choice = {"payment_method": "card", "csrf_token": token}
    http.post(f"{url}/checkout/metodo", data=choice, timeout=10).raise_for_status()
    checkout = http.get(f"{url}/checkout", timeout=10)
    if checkout.url.rstrip("/") != f"{url}/checkout" or "Carta di credito" not in checkout.text:
        raise SystemExit("the demo customer could not reach the checkout")
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def audit(url: str, cookie: str, name: str) -> dict[str, int]:
    """Lighthouse's four scores (0-100) for one page, mobile (its default form factor)."""
    reports = FOLDER / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    headers = reports / "headers.json"
    headers.write_text(json.dumps({"Cookie": cookie}))
    output = reports / f"{name}.json"
    command = [
        str(BINARY),
        url,
        "--quiet",
        f"--only-categories={','.join(CATEGORIES)}",
        "--chrome-flags=--headless=new --no-sandbox --disable-gpu",
        f"--extra-headers={headers}",
        "--output=json",
        "--output=html",
        f"--output-path={reports / name}",
    ]
    env = {**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")}
    subprocess.run(command, env=env, check=True)  # nosec B603 # the pinned Lighthouse
    report = json.loads((reports / f"{name}.report.json").read_text())
    output.unlink(missing_ok=True)
    return {c: round(report["categories"][c]["score"] * 100) for c in CATEGORIES}


def median_scores(url: str, cookie: str, name: str) -> dict[str, int]:
    """The median of RUNS audits, category by category."""
    runs = [audit(url, cookie, f"{name}-{n}") for n in range(1, RUNS + 1)]
    return {c: round(statistics.median(run[c] for run in runs)) for c in CATEGORIES}


def main() -> int:
    install()
    with tempfile.TemporaryDirectory(prefix="lighthouse-") as tmp:
        process, url = start_system(Path(tmp))
        try:
            cookie = customer_session(url)
            scores = {name: median_scores(url + path, cookie, name) for name, path in PAGES}
        finally:
            process.terminate()
            process.wait(20)
    for name, page in scores.items():
        print(f"{name:10} " + "  ".join(f"{c} {s}" for c, s in page.items()))
    below = [f"{n} {c} {s}" for n, page in scores.items() for c, s in page.items() if s < 100]
    if below:
        print("below 100: " + ", ".join(below) + f" (reports in {FOLDER / 'reports'})")
    return 1 if below else 0


if __name__ == "__main__":
    raise SystemExit(main())
