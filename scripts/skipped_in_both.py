"""Fail when a test is skipped in both passes of scripts/run-tests.sh (SQLite, then PostgreSQL).

A test that needs PostgreSQL is skipped on SQLite and must run in the PostgreSQL pass (and the
SQLite fallbacks the other way round); one skipped in both is a check nobody runs. Only the tests
collected in both passes count: the browser tests run in the SQLite pass alone, which is not a
skip. Reads the two passes' JUnit XML reports (pytest --junitxml).
Usage: python scripts/skipped_in_both.py SQLITE.xml POSTGRES.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET  # nosec B405: our own pytest's report, not foreign input


def outcomes(junit_xml: str) -> dict[str, tuple[bool, str]]:
    """Test id -> (skipped?, the skip's reason) for every test case of a JUnit report."""
    found = {}
    for case in ET.fromstring(junit_xml).iter("testcase"):  # nosec B314: see above
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        skip = case.find("skipped")
        found[test_id] = (skip is not None, "" if skip is None else skip.get("message", ""))
    return found


def skipped_in_both(first: str, second: str) -> dict[str, tuple[str, str]]:
    """The tests present in both reports and skipped in both: id -> (reason 1, reason 2)."""
    one, two = outcomes(first), outcomes(second)
    return {
        test_id: (one[test_id][1], two[test_id][1])
        for test_id in sorted(one.keys() & two.keys())
        if one[test_id][0] and two[test_id][0]
    }


def main(first_path: str, second_path: str) -> int:
    with open(first_path, encoding="utf-8") as first, open(second_path, encoding="utf-8") as second:
        both = skipped_in_both(first.read(), second.read())
    for test_id, (reason_one, reason_two) in both.items():
        print(f"skipped in both passes: {test_id} ({reason_one} / {reason_two})")
    if both:
        print(f"{len(both)} test(s) skipped on SQLite and on PostgreSQL: no pass runs them")
    return 1 if both else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
