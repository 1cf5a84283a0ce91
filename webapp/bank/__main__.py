"""Serve the mock bank on its own: `python -m webapp.bank --port 5001`."""

from __future__ import annotations

import argparse
import logging

from werkzeug.serving import run_simple

from . import create_bank_app
from .notifier import start_notifier


def main(argv: list[str] | None = None) -> None:
    """Run the bank with werkzeug's threaded server and its notifier thread."""
    parser = argparse.ArgumentParser(prog="python -m webapp.bank", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.INFO)  # its own process: show the requests
    app = create_bank_app()
    if app.config["BANK_NOTIFY_ENABLED"]:
        start_notifier(app)  # already running when the factory started it; this is a no-op then
    logging.getLogger(__name__).info("Banca Sella · Sandbox on http://%s:%d", args.host, args.port)
    # Threaded: the shop calls the bank's API while a browser waits on the bank's pages.
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
