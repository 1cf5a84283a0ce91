#!/usr/bin/env bash
# The whole suite on SQLite (the embedded default), then the unit and reliability tests again on a
# throwaway PostgreSQL (the database-level guarantees: twins, gapless numbering, batch renewals).
# The browser tests run once: what they check is the pages, which do not depend on the database.
# pytest's exit code 5 ("no tests collected") is not a failure; any other non-zero is.
# A test skipped in both passes fails the run (scripts/skipped_in_both.py, from the passes' JUnit
# reports): what one database skips, the other must run.
set -u
py=${1:-.venv/bin/python}
shift || true
# Hypothesis's "ci" profile: derandomized, so this command gives the same answer on every run.
# pytest-xdist: one worker per core (at most 4), each with its own files and, on PostgreSQL, its
# own database (tests/conftest.py); TEST_WORKERS=0 runs in one process. "worksteal": a worker
# that runs out of tests takes half of another's queue, so one long test at the end (the URL-map
# fuzz, a browser layout walk) does not leave the other core idle.
set -- --hypothesis-profile=ci -n "${TEST_WORKERS:-auto}" --maxprocesses 4 --dist worksteal "$@"
status=0
run() {
  "$@"
  local rc=$?
  [ "$rc" -eq 5 ] && rc=0
  [ "$rc" -ne 0 ] && status=$rc
}
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
echo "=== Tests on SQLite ==="
run "$py" -m pytest tests -p no:cacheprovider --junitxml="$reports/sqlite.xml" "$@"
echo "=== Tests on PostgreSQL ==="
run bash scripts/with-postgres.sh "$py" -m pytest tests/unit tests/reliability -p no:cacheprovider \
  --junitxml="$reports/postgres.xml" "$@"
echo "=== Tests skipped in both passes ==="
if [ -f "$reports/sqlite.xml" ] && [ -f "$reports/postgres.xml" ]; then
  run "$py" scripts/skipped_in_both.py "$reports/sqlite.xml" "$reports/postgres.xml"
else
  echo "a pass wrote no report: not checked"
  [ "$status" -eq 0 ] && status=1
fi
exit "$status"
