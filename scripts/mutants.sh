#!/usr/bin/env bash
# `make mutants`: mutation testing (mutmut, configured in pyproject.toml) of the money and state
# modules. Not part of `make test`: it takes long. Prints the score per module and writes the
# survivors' diffs to mutants-survivors/ (git-ignored).
#
#   scripts/mutants.sh PYTHON [MUTANT_GLOB ...]
#   e.g. scripts/mutants.sh .venv/bin/python 'webapp.payments.verify*' 'webapp.payments.refunds*'
#
# MUTANTS_JOBS (default 2) mutants run at once.
#
# The renewal engine's batch path (PG_ONLY below) runs on PostgreSQL only: on SQLite no test
# reaches it. Without globs, the SQLite run leaves those modules out of its report and they are
# then run again on a throwaway PostgreSQL (scripts/with-postgres.sh). MUTANTS_PG=1 runs only
# the PostgreSQL pass (the globs given, else PG_ONLY). With TEST_DATABASE_URL set (under
# with-postgres.sh) the run is a PostgreSQL pass: its state, stats and survivors live in
# mutants-pg/ (a root of links to this checkout), apart from the SQLite run's mutants/.
set -euo pipefail
PY=${1:-.venv/bin/python}
shift || true
cd "$(dirname "$0")/.."
PG_ONLY=('webapp.renewals.batch*' 'webapp.invoicing.batch*')
# The mutated copy in mutants/ must be what the tests import: no PYTHONPATH pointing at the
# sources (the editable install's finder comes after sys.path, where mutmut puts mutants/ first).
unset PYTHONPATH
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")
BIN=$(dirname "$PY")
REPO=$PWD

if [ "${MUTANTS_PG:-}" = "1" ] && [ -z "${TEST_DATABASE_URL:-}" ]; then
  exec bash scripts/with-postgres.sh bash scripts/mutants.sh "$PY" "$@"
fi

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  # The PostgreSQL pass: mutmut keeps its state in ./mutants of the directory it runs in.
  # Each mutant runs in a process forked from mutmut's fork server, which only collected the
  # tests: every test makes its own app, engine and connections, none is inherited. One job at
  # a time, or two mutants would empty the same database's tables under each other.
  [ $# -gt 0 ] || set -- "${PG_ONLY[@]}"
  mkdir -p mutants-pg
  for entry in pyproject.toml webapp tests bench templates static migrations translations wsgi.py babel.cfg; do
    [ -e "mutants-pg/$entry" ] || ln -s "$REPO/$entry" "mutants-pg/$entry"
  done
  cd mutants-pg
  status=0
  "$BIN/mutmut" run --max-children 1 "$@" || status=$?
  "$PY" "$REPO/scripts/mutants_report.py" "$BIN/mutmut" "$@"
  exit $status
fi

status=0
"$BIN/mutmut" run --max-children "${MUTANTS_JOBS:-2}" "$@" || status=$?
if [ $# -gt 0 ]; then
  "$PY" scripts/mutants_report.py "$BIN/mutmut" "$@"
else
  "$PY" scripts/mutants_report.py "$BIN/mutmut" "${PG_ONLY[@]/#/!}"
  echo "The batch path, on PostgreSQL:"
  bash scripts/with-postgres.sh bash scripts/mutants.sh "$PY" || status=$?
fi
exit $status
