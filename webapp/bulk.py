"""Set-based statements for PostgreSQL: many rows in one short statement, one array per column.

`INSERT ... SELECT * FROM unnest(:a, :b, ...)` keeps the SQL text the same whatever the number
of rows (a multi-row VALUES list is compiled and parsed again for every size), and psycopg
sends each column as one array parameter. Used by the renewal engine's batches.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Integer, Table, any_, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from webapp.extensions import db


def any_of(column, ids: Sequence[int]) -> ColumnElement[bool]:
    """`column = ANY(:ids)`, the ids as one array parameter: `IN (...)` renders a parameter
    per id, a new statement text for each batch size (compiled and parsed again each time)."""
    return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer), unique=True))


def next_ids(table: Table, n: int) -> list[int]:
    """n ids from the table's id sequence, in order (rows inserted with them keep that order)."""
    if n == 0:
        return []
    return list(
        db.session.scalars(
            text(
                # B608: the name of a Table of the models, never the request's.
                f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) "  # nosec B608
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
    of `suffix` (e.g. "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id") or [].

    A "json" column takes its values already serialised (JSON texts). The arrays travel in
    PostgreSQL's binary format (psycopg's `%b` placeholders): in the text format psycopg quotes
    and escapes every element with a regular expression, and bytea doubles in size as hex.
    """
    names = list(columns)
    arrays = ", ".join(_array(name, columns[name][0]) for name in names)
    # B608: table, column names, types and suffix come from the code; the values are bound.
    sql = f'INSERT INTO "{table.name}" ({", ".join(names)}) '
    sql += f"SELECT * FROM unnest({arrays}) {suffix}"  # nosec B608
    db.session.flush()  # as session.execute would: pending ORM rows go first (foreign keys)
    result = db.session.connection().exec_driver_sql(
        sql, {name: _values(*columns[name]) for name in names}
    )
    return result.all() if result.returns_rows else []


def _array(name: str, pg_type: str) -> str:
    if pg_type == "json":
        # One JSON array text: an array of JSON texts would be escaped quote by quote.
        # B608: a column name of the code; the values are bound parameters.
        return (
            f"ARRAY(SELECT e FROM json_array_elements(CAST(%({name})b AS json)) "  # nosec B608
            "WITH ORDINALITY AS t(e, i) ORDER BY i)"
        )
    return f"CAST(%({name})b AS {pg_type}[])"


def _values(pg_type: str, values: Sequence):
    if pg_type == "json":
        return "[" + ",".join(values) + "]"
    return list(values)
