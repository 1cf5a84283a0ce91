"""`flask staff create|link`: the first administrator and its links; the demo staff for
`flask seed-demo` (development only, with known TOTP secrets)."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from flask_babel import gettext as _
from sqlalchemy import select

from webapp.backoffice import links
from webapp.backoffice.auth import create_staff
from webapp.backoffice.models import StaffLinkPurpose, StaffRole, StaffUser
from webapp.clock import now_utc
from webapp.errors import DomainError
from webapp.extensions import db
from webapp.transaction import commit

staff_cli = AppGroup("staff", help="Back-office staff accounts.")

#: Development only (`flask seed-demo` refuses outside APP_ENV=development/testing): the demo
#: staff, enrolled with these known TOTP secrets, printed on the console of `make run`.
DEMO_STAFF = [
    (
        "operatore@pecshop.test",
        "Olga Operatrice",
        StaffRole.OPERATORE,
        "operatore12345",
        "DEMOOPERATORETOTPSOLOSVILUPPOABC",
    ),
    (
        "admin@pecshop.test",
        "Aldo Amministratore",
        StaffRole.AMMINISTRATORE,
        "admin1234567",
        "DEMOAMMINISTRATORETOTPSVILUPPOXY",
    ),
]


def _print_link(member: StaffUser, purpose: StaffLinkPurpose) -> None:
    """A one-time link for `member`, printed (the console is the first administrator's)."""
    from webapp.backoffice.link_views import link_url

    hours = current_app.config["STAFF_LINK_HOURS"]
    token = links.issue_link(member, purpose, now_utc(), timedelta(hours=hours))
    commit()
    with current_app.test_request_context():
        url = link_url(token)
    click.echo(_("Link monouso (valido %(hours)d ore): %(url)s", hours=int(hours), url=url))


@staff_cli.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice([r.value for r in StaffRole]), required=True)
@click.password_option(help="Asked on the terminal when not given.")
def create_command(email: str, name: str, role: str, password: str) -> None:
    """Create a staff account; prints the one-time link that enrols its authenticator."""
    try:
        staff = create_staff(email, name, role, password)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    commit()
    click.echo(_("Account %(email)s (%(role)s) creato.", email=staff.email, role=staff.role.label))
    _print_link(staff, StaffLinkPurpose.TOTP)


@staff_cli.command("link")
@click.option("--email", required=True)
@click.option("--purpose", type=click.Choice(["password", "totp"]), required=True)
def link_command(email: str, purpose: str) -> None:
    """Print a one-time link for a new password or a new authenticator (lost phone)."""
    staff = db.session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if staff is None:
        raise click.ClickException(_("Nessun account staff %(email)s.", email=email))
    _print_link(staff, StaffLinkPurpose(purpose))


def seed_demo_staff() -> None:
    """One operator and one administrator, enrolled with the known demo TOTP secrets
    (idempotent: run again, it puts them back); prints their logins and secrets."""
    for email, name, role, password, secret in DEMO_STAFF:
        staff = db.session.scalar(select(StaffUser).where(StaffUser.email == email))
        if staff is None:
            staff = create_staff(email, name, role.value, password)
        staff.totp_secret, staff.totp_confirmed = secret, True
        staff.totp_failures, staff.locked_at, staff.active = 0, None, True
        commit()
        click.echo(
            _(
                "Back office (%(role)s): %(email)s / %(password)s · segreto TOTP %(secret)s "
                "(solo sviluppo)",
                role=role.label,
                email=email,
                password=password,
                secret=secret,
            )
        )
