"""`python -m webapp.sdi [--port 5002]` serves the sandbox; `python -m webapp.sdi clock
--advance-days 15` moves its clock forward (and emits the DT/AT now due)."""

from __future__ import annotations

import argparse
import logging

from werkzeug.serving import run_simple

from . import create_sdi_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webapp.sdi", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    sub = parser.add_subparsers(dest="command")
    clock = sub.add_parser("clock", help="move the sandbox's clock forward")
    clock.add_argument("--advance-days", type=float, required=True)
    args = parser.parse_args(argv)
    if args.command == "clock":
        _advance(args.advance_days)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = create_sdi_app()
    logging.getLogger(__name__).info("SdI · Sandbox on http://%s:%d", args.host, args.port)
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)


def _advance(days: float) -> None:
    from .extensions import db, sdi_now
    from .services import advance_clock

    app = create_sdi_app({"SDI_NOTIFY_ENABLED": False})
    with app.app_context():
        moved = advance_clock(days, sdi_now())
        db.session.commit()
    print(f"Orologio del sandbox: {moved:%d/%m/%Y %H:%M} UTC")


if __name__ == "__main__":
    main()
