"""scripts/backup.sh and scripts/restore.sh: a backup restored into a new database holds the
orders, invoices and services (PostgreSQL only: the scripts are pg_dump and pg_restore)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, make_url, select

from tests.conftest import PG_URL
from tests.unit.invoicing_helpers import confirmed_order, pay
from webapp.invoicing.models import Invoice
from webapp.renewals.models import Service
from webapp.shop.order_models import Order

ROOT = Path(__file__).resolve().parents[2]
needs_postgres = pytest.mark.skipif(not PG_URL, reason="backups are PostgreSQL's (pg_dump)")


@pytest.fixture
def empty_database():
    base = make_url(PG_URL)
    name = f"restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _run(script: str, *args: str, database_url: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _counts(url: str) -> tuple[int, int, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = tuple(
            conn.scalar(select(func.count()).select_from(model))
            for model in (Order, Invoice, Service)
        )
    engine.dispose()
    return found


@needs_postgres
def test_a_backup_restores_into_a_new_database_with_orders_invoices_services(
    app, db, catalogue, create_customer, now, tmp_path, empty_database
):
    customer = create_customer()
    products = catalogue["products"]
    for skus in (("PEC-STD",), ("SPID-PF", "FIRMA-R")):
        pay(confirmed_order(customer, products, now, skus=skus), now)
        db.session.commit()
    expected = _counts(PG_URL)
    assert expected[0] == 2 and expected[1] == 2 and expected[2] >= 2

    archive = tmp_path / "shop.dump"
    backup = _run("backup.sh", str(archive), database_url=PG_URL)
    assert backup.returncode == 0, backup.stderr
    assert archive.stat().st_size > 0

    restored = _run("restore.sh", str(archive), empty_database)
    assert restored.returncode == 0, restored.stderr
    assert _counts(empty_database) == expected

    again = _run("restore.sh", str(archive), empty_database)  # never over a live database
    assert again.returncode == 2 and "not empty" in again.stderr


def test_backup_refuses_a_database_that_is_not_postgresql(tmp_path):
    result = _run("backup.sh", str(tmp_path / "x.dump"), database_url="sqlite:///x.db")
    assert result.returncode == 2 and "not PostgreSQL" in result.stderr
