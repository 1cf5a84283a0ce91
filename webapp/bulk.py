"""Set-based statements for PostgreSQL: many rows in one short statement, one array per column.

`INSERT ... SELECT * FROM unnest(:a, :b, ...)` keeps the SQL text the same whatever the number
of rows (a multi-row VALUES list is compiled and parsed again for every size), and psycopg
sends each column as one array parameter. Used by the renewal engine's batches.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table, text

from webapp.extensions import db


def next_ids(table: Table, n: int) -> list[int]:
    """n ids from the table's id sequence, in order (rows inserted with them keep that order)."""
    if n == 0:
        return []
    return list(
        db.session.scalars(
            text(
                f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": n},
        )
    )


def insert_unnest(
    table: Table,
    columns: dict[str, tuple[str, Sequence]],
    *,
    suffix: str = "",
) -> list:
    """INSERT the rows given column-wise ({name: (pg array type, values)}); returns the rows
    of `suffix` (e.g. "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id") or []."""
    names = list(columns)
    arrays = ", ".join(f"CAST(:{name} AS {columns[name][0]}[])" for name in names)
    stmt = text(
        f'INSERT INTO "{table.name}" ({", ".join(names)}) SELECT * FROM unnest({arrays}) {suffix}'
    )
    result = db.session.execute(stmt, {name: list(columns[name][1]) for name in names})
    return result.all() if result.returns_rows else []
