"""scripts/skipped_in_both.py: make test fails when a test is skipped on SQLite and on PG."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "skipped_in_both.py"
_spec = importlib.util.spec_from_file_location("skipped_in_both", SCRIPT)
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)


def report(*cases: str) -> str:
    """A JUnit report as pytest writes it (--junitxml), with these <testcase> elements."""
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0"'
        f' failures="0" skipped="0" tests="{len(cases)}">{"".join(cases)}</testsuite></testsuites>'
    )


def ran(module: str, name: str) -> str:
    return f'<testcase classname="{module}" name="{name}" time="0.010" />'


def skipped(module: str, name: str, reason: str) -> str:
    return (
        f'<testcase classname="{module}" name="{name}" time="0.000">'
        f'<skipped type="pytest.skip" message="{reason}">{module}:3: {reason}</skipped></testcase>'
    )


SQLITE = report(
    skipped("tests.unit.test_backup_pg", "test_dump", "needs PostgreSQL"),
    ran("tests.unit.test_batches", "test_fallback"),
    skipped("tests.unit.test_cluster", "test_nodes", "no haproxy"),
    skipped("tests.unit.test_sdi", "test_issue[one]", "needs PostgreSQL"),
    ran("tests.unit.test_sdi", "test_issue[two]"),
    skipped("tests.e2e.test_checkout", "test_pay[chromium]", "no browser"),
)
POSTGRES = report(
    ran("tests.unit.test_backup_pg", "test_dump"),
    skipped("tests.unit.test_batches", "test_fallback", "SQLite's fallback"),
    skipped("tests.unit.test_cluster", "test_nodes", "no haproxy on PG either"),
    ran("tests.unit.test_sdi", "test_issue[one]"),
    skipped("tests.unit.test_sdi", "test_issue[two]", "SQLite only"),
)


def test_only_a_test_skipped_in_both_passes_is_reported_with_both_reasons():
    assert check.skipped_in_both(SQLITE, POSTGRES) == {
        "tests.unit.test_cluster::test_nodes": ("no haproxy", "no haproxy on PG either"),
    }


def test_a_browser_test_absent_from_the_postgres_pass_is_not_skipped_in_both():
    # The browser tests run in the SQLite pass only: skipped there and absent in the other.
    both = check.skipped_in_both(SQLITE, POSTGRES)
    assert not any(test_id.startswith("tests.e2e.") for test_id in both)


def test_each_parametrized_case_counts_on_its_own():
    # test_issue[one] is skipped on SQLite, test_issue[two] on PostgreSQL: each ran once.
    assert check.skipped_in_both(SQLITE, POSTGRES).keys() == {"tests.unit.test_cluster::test_nodes"}


def test_the_command_fails_and_names_the_test_only_when_one_is_skipped_in_both(tmp_path, capsys):
    sqlite, postgres = tmp_path / "sqlite.xml", tmp_path / "postgres.xml"
    sqlite.write_text(SQLITE)
    postgres.write_text(POSTGRES)
    assert check.main(str(sqlite), str(postgres)) == 1
    assert "tests.unit.test_cluster::test_nodes" in capsys.readouterr().out

    postgres.write_text(
        report(
            ran("tests.unit.test_backup_pg", "test_dump"),
            ran("tests.unit.test_cluster", "test_nodes"),
        )
    )
    assert check.main(str(sqlite), str(postgres)) == 0
    assert capsys.readouterr().out == ""


PASSES = """
import os
import pytest

DB = os.environ["FAKE_DB"]

@pytest.mark.skipif(DB == "sqlite", reason="needs PostgreSQL")
def test_postgres_only():
    pass

@pytest.mark.skipif(DB == "postgres", reason="SQLite's fallback")
def test_sqlite_only():
    pass

def test_no_tool():
    pytest.skip("tool missing on both")

@pytest.mark.parametrize("n", [1, 2])
def test_each(n):
    if n == 1 and DB == "sqlite":
        pytest.skip("one")
"""


def test_real_pytest_reports_of_two_passes(tmp_path):
    (tmp_path / "test_passes.py").write_text(PASSES)
    reports = []
    for db in ("sqlite", "postgres"):
        xml = tmp_path / f"{db}.xml"
        env = {**os.environ, "FAKE_DB": db}
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist"]
        command += ["-q", f"--junitxml={xml}", "test_passes.py"]
        subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, check=True)
        reports.append(xml.read_text())
    both = check.skipped_in_both(*reports)
    assert both == {"test_passes::test_no_tool": ("tool missing on both", "tool missing on both")}
