"""`flask staff create`: the first administrator; the demo staff for `flask seed-demo`."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from flask_babel import gettext as _
from sqlalchemy import select

from webapp.backoffice.auth import create_staff, provisioning_uri
from webapp.backoffice.models import StaffRole, StaffUser
from webapp.errors import DomainError
from webapp.extensions import db
from webapp.transaction import commit

staff_cli = AppGroup("staff", help="Back-office staff accounts.")

#: Demo only: printed by `flask seed-demo` with their TOTP secrets.
DEMO_STAFF = [
    ("operatore@pecshop.test", "Olga Operatrice", StaffRole.OPERATORE, "operatore12345"),
    ("admin@pecshop.test", "Aldo Amministratore", StaffRole.AMMINISTRATORE, "admin1234567"),
]


@staff_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice([r.value for r in StaffRole]), required=True)
@click.password_option(help="Asked on the terminal when not given.")
def create_command(email: str, name: str, role: str, password: str) -> None:
    """Create a staff account; prints the TOTP secret and otpauth URI for the app."""
    try:
        staff = create_staff(email, name, role, password)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    commit()
    click.echo(_("Account %(email)s (%(role)s) creato.", email=staff.email, role=staff.role.label))
    click.echo(_("Segreto TOTP: %(secret)s", secret=staff.totp_secret))
    click.echo(f"URI: {provisioning_uri(staff)}")


def seed_demo_staff() -> None:
    """One operator and one administrator (idempotent); prints their logins and TOTP secrets."""
    for email, name, role, password in DEMO_STAFF:
        staff = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
        if staff is None:
            staff = create_staff(email, name, role.value, password)
        commit()
        click.echo(
            _(
                "Back office (%(role)s): %(email)s / %(password)s · segreto TOTP %(secret)s",
                role=role.label,
                email=email,
                password=password,
                secret=staff.totp_secret,
            )
        )
