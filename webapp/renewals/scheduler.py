"""`flask renewals run` (one pass, optionally as of another date) and `flask renewals scheduler`.

The scheduler runs in its own process, never inside a web worker: a web server with several
workers (or the reloader) would otherwise start one scheduler each. Even so, two schedulers
would charge once: the engine claims its rows (see webapp.renewals.engine).
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time

import click
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask, current_app
from flask.cli import AppGroup
from flask_babel import gettext as _

from webapp.clock import ROME, now_utc
from webapp.extensions import db
from webapp.outbox.services import send_outbox
from webapp.payments.flows import reconcile
from webapp.renewals.engine import run_renewals
from webapp.renewals.outcomes import RenewalReport

log = logging.getLogger(__name__)

renewals_cli = AppGroup("renewals", help="Automatic renewals: one pass, or the scheduler.")


def parse_as_of(value: str) -> datetime:
    """`2027-11-20` (noon in Italy that day) or `2027-11-20T08:30` (Italian time), as UTC."""
    try:
        return parse_instant(value)
    except ValueError:
        raise click.BadParameter(_("usa il formato AAAA-MM-GG oppure AAAA-MM-GGTHH:MM")) from None


def parse_instant(value: str) -> datetime:
    """parse_as_of's rule, raising ValueError (the sandbox's test clock reads it from JSON)."""
    parsed = datetime.fromisoformat(value.strip())
    if len(value.strip()) == 10:
        parsed = datetime.combine(parsed.date(), time(12, 0))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ROME)
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class PassReport:
    """What one pass did: the engine's report and the payments or refunds reconciled."""

    now: datetime
    renewals: RenewalReport
    reconciled: int

    def __str__(self) -> str:
        return _(
            "%(report)s, pagamenti riconciliati %(reconciled)s",
            report=self.renewals,
            reconciled=self.reconciled,
        )


def run_pass(now: datetime | None = None, worker: str | None = None) -> PassReport:
    """One engine pass, then the reconciliation of payments and refunds left open.

    The scheduler, `flask renewals run [--as-of]` and the sandbox's test clock all call this.
    """
    now = now or now_utc()
    report = run_renewals(now, worker)
    return PassReport(now, report, reconcile(now))


def renewal_pass(now: datetime | None = None, worker: str | None = None) -> str:
    """One pass (run_pass), as the line the scheduler logs and the CLI prints."""
    return str(run_pass(now, worker))


@renewals_cli.command("run")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="The pass's date (YYYY-MM-DD, or YYYY-MM-DDTHH:MM in Italy), for tests.",
)
@click.option(
    "--worker", default=None, help="This process's name in the claims (default host:pid)."
)
def run_command(as_of: str | None, worker: str | None) -> None:
    """Run one renewal pass now, or as of the given date."""
    now = parse_as_of(as_of) if as_of else now_utc()
    click.echo(pass_line(run_pass(now, worker)))


def pass_line(report: PassReport) -> str:
    """The line the CLI prints: "Passata rinnovi al 10/11/2027 12:00: promemoria 0, …"."""
    return _(
        "Passata rinnovi al %(when)s: %(report)s",
        when=report.now.astimezone(ROME).strftime("%d/%m/%Y %H:%M"),
        report=report,
    )


def _job(app: Flask, fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        with app.app_context():
            try:
                result = fn()
                if result:
                    log.info("%s: %s", fn.__name__, result)
            finally:
                db.session.remove()

    run.__name__ = fn.__name__
    return run


#: Other packages' jobs run every minute by the same scheduler process (name -> function);
#: webapp.cli adds them (renewals may not import its sibling packages, e.g. invoicing).
MINUTE_JOBS: dict[str, Callable[[], object]] = {}


def build_scheduler(app: Flask) -> BlockingScheduler:
    """The renewal pass every SCHEDULER_INTERVAL_MINUTES, the outbox and MINUTE_JOBS every
    minute."""
    scheduler = BlockingScheduler(timezone=UTC)
    start = datetime.now(UTC)
    scheduler.add_job(
        _job(app, renewal_pass),
        "interval",
        id="renewals",
        name="rinnovi",
        next_run_time=start,
        minutes=app.config["SCHEDULER_INTERVAL_MINUTES"],
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        _job(app, send_outbox),
        "interval",
        id="outbox",
        name="e-mail",
        next_run_time=start,
        minutes=1,
        max_instances=1,
        coalesce=True,
    )
    for name, fn in MINUTE_JOBS.items():
        scheduler.add_job(
            _job(app, fn),
            "interval",
            id=name,
            name=name,
            next_run_time=start,
            minutes=1,
            max_instances=1,
            coalesce=True,
        )
    return scheduler


@renewals_cli.command("scheduler")
def scheduler_command() -> None:
    """Run the renewal scheduler in this process until interrupted (Ctrl-C)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = current_app._get_current_object()
    scheduler = build_scheduler(app)
    click.echo(
        _(
            "Scheduler dei rinnovi avviato: una passata ogni %(minutes)s minuti. "
            "Ctrl-C per fermarlo.",
            minutes=f"{app.config['SCHEDULER_INTERVAL_MINUTES']:g}",
        )
    )
    # Ctrl-C or a process manager's SIGTERM: let the running pass finish its service, then stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit)
    try:
        with contextlib.suppress(KeyboardInterrupt, SystemExit):
            scheduler.start()
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=True)
        click.echo(_("Scheduler dei rinnovi fermato."))


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)
