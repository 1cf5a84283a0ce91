#!/usr/bin/env bash
# `make mutants`: mutation testing (mutmut, configured in pyproject.toml) of the money and state
# modules. Not part of `make test`: it takes long. Prints the score per module and writes the
# survivors' diffs to mutants-survivors/ (git-ignored).
#
#   scripts/mutants.sh PYTHON [MUTANT_GLOB ...]
#   e.g. scripts/mutants.sh .venv/bin/python 'webapp.payments.verify*' 'webapp.payments.refunds*'
#
# MUTANTS_JOBS (default 2) mutants run at once.
set -euo pipefail
PY=${1:-.venv/bin/python}
shift || true
cd "$(dirname "$0")/.."
# The mutated copy in mutants/ must be what the tests import: no PYTHONPATH pointing at the
# sources (the editable install's finder comes after sys.path, where mutmut puts mutants/ first).
unset PYTHONPATH
BIN=$(dirname "$PY")
status=0
"$BIN/mutmut" run --max-children "${MUTANTS_JOBS:-2}" "$@" || status=$?
"$PY" scripts/mutants_report.py "$BIN/mutmut" "$@"
exit $status
