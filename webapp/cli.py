"""Command-line commands: `flask seed-demo`, `flask outbox send`, `flask renewals run|scheduler`,
`flask invoices export`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from webapp.clock import now_utc
from webapp.extensions import db

outbox_cli = AppGroup("outbox", help="The e-mail outbox.")


@outbox_cli.command("send")
def send_outbox_command() -> None:
    """Send the e-mails that are due (retries included)."""
    from webapp.outbox.services import send_outbox

    click.echo(f"{send_outbox()} e-mail inviate.")


def register(app: Flask) -> None:
    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Load demo products, discount codes and the demo customer (idempotent)."""
        from webapp.demo import DEMO_EMAIL, DEMO_PASSWORD, seed

        seed(now_utc())
        db.session.commit()
        click.echo(f"Dati demo pronti. Accesso demo: {DEMO_EMAIL} / {DEMO_PASSWORD}")
        from webapp.backoffice.cli import seed_demo_staff

        seed_demo_staff()

    from webapp.backoffice.cli import staff_cli

    app.cli.add_command(staff_cli)

    app.cli.add_command(outbox_cli)

    from webapp.renewals.scheduler import renewals_cli

    app.cli.add_command(renewals_cli)

    from webapp.invoicing.cli import invoices_cli

    app.cli.add_command(invoices_cli)
