"""The invoices' numbers: one gap-free series a year (a counter row per year), and the
ProgressivoInvio of the SdI file name."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from webapp.extensions import db
from webapp.invoicing.models import InvoiceCounter

_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def next_number(year: int) -> int:
    """Take the next number of the year's series, in the caller's transaction."""
    return take_numbers(year, 1)[0]


def take_numbers(year: int, n: int) -> range:
    """Take the next n numbers of the year's series at once, in the caller's transaction.

    Guard: the INSERT ... ON CONFLICT DO NOTHING makes the year's row exist (a concurrent twin's
    insert waits on the unique key), then the UPDATE ... SET last = last + n ... RETURNING takes
    the row lock until the transaction ends: concurrent payers (and batches) queue up, each gets
    a run of consecutive numbers, and a rollback gives the whole run back (no gap). Take them
    as late as possible in the transaction: the lock is held until its commit.
    """
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    db.session.execute(
        insert(InvoiceCounter)
        .values(year=year, last=0)
        .on_conflict_do_nothing(index_elements=["year"])
    )
    last = db.session.execute(
        update(InvoiceCounter)
        .where(InvoiceCounter.year == year)
        .values(last=InvoiceCounter.last + n)
        .returning(InvoiceCounter.last)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    return range(last - n + 1, last + 1)


def progressive(invoice_id: int) -> str:
    """The 5-character ProgressivoInvio of the file name: the invoice id in base 36."""
    digits = ""
    value = invoice_id
    while value:
        value, rest = divmod(value, 36)
        digits = _BASE36[rest] + digits
    if len(digits) > 5:
        raise ValueError("invoice id beyond the 5-character progressivo")
    return digits.rjust(5, "0")
