"""Command-line commands: `flask seed-demo`, `flask outbox send`, `flask renewals run|scheduler`,
`flask staff create`, `flask invoices export`. Like the app factory, it gathers every package."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from webapp.backoffice.cli import seed_demo_staff, staff_cli
from webapp.clock import now_utc
from webapp.config import DEV_ENVIRONMENTS
from webapp.demo import DEMO_EMAIL, DEMO_PASSWORD, seed
from webapp.demo_story import seed_story
from webapp.extensions import db
from webapp.invoicing.cli import invoices_cli
from webapp.invoicing.sdi_jobs import transmit_pass
from webapp.outbox.services import send_outbox
from webapp.renewals.scheduler import MINUTE_JOBS, renewals_cli

outbox_cli = AppGroup("outbox", help="The e-mail outbox.")


@outbox_cli.command("send")
def send_outbox_command() -> None:
    """Send the e-mails that are due (retries included)."""
    click.echo(f"{send_outbox()} e-mails sent.")


@click.command("seed-demo")
def seed_demo_command() -> None:
    """Load demo products, discount codes, the demo customer and staff (idempotent).

    Only with APP_ENV=development or testing: the demo logins are printed in the README.
    """
    env = current_app.config["ENV_NAME"]
    if env not in DEV_ENVIRONMENTS:
        raise click.ClickException(
            f"seed-demo rifiutato con APP_ENV={env!r}: i dati demo (con password note) si "
            "caricano solo con APP_ENV=development o testing."
        )
    now = now_utc()
    demo = seed(now)
    db.session.commit()
    if seed_story(now, demo):
        db.session.commit()
        click.echo("Demo story added: the demo customer's year and 90 days of sales.")
    click.echo(f"Dati demo pronti. Accesso demo: {DEMO_EMAIL} / {DEMO_PASSWORD}")
    seed_demo_staff()


def transmit_invoices() -> str:
    """The scheduler's job: documents to the SdI, and its notifications back."""
    return str(transmit_pass(now_utc()))


def register(app: Flask) -> None:
    MINUTE_JOBS["fatture"] = transmit_invoices
    for command in (seed_demo_command, staff_cli, outbox_cli, renewals_cli, invoices_cli):
        app.cli.add_command(command)
