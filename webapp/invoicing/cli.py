"""`flask invoices export --from 2026-01-01 --to 2026-12-31 [--out file.zip]` and
`flask invoices transmit` (one transmission pass to the SdI now, as the scheduler's)."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup

from webapp.clock import now_utc
from webapp.invoicing.archive import documents_between, export_zip
from webapp.invoicing.sdi_jobs import transmit_pass

invoices_cli = AppGroup("invoices", help="Electronic invoices (FatturaPA).")


@invoices_cli.command("export")
@click.option("--from", "date_from", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--to", "date_to", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def export_command(date_from, date_to, out: Path | None) -> None:
    """Zip the XML of the documents issued between two days (Italian dates, both included)."""
    start, end = date_from.date(), date_to.date()
    if end < start:
        raise click.BadParameter("--to comes before --from", param_hint="--to")
    out = out or Path(f"fatture_{start.isoformat()}_{end.isoformat()}.zip")
    out.write_bytes(export_zip(start, end))
    count = len(documents_between(start, end))
    click.echo(f"{count} documents exported to {out}")


@invoices_cli.command("transmit")
def transmit_command() -> None:
    """Send the documents waiting for the SdI and read its notifications, now."""
    click.echo(f"Transmission to the SdI: {transmit_pass(now_utc())}")
