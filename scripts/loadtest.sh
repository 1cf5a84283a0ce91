#!/usr/bin/env bash
# Load test (Locust, headless, fixed duration) and the money check after it: `make loadtest`.
#   LOAD_URL    the shop (default: the cluster of `make cluster`, http://127.0.0.1:8080)
#   USERS       virtual customers (default 20), SPAWN_RATE per second (default 5)
#   DURATION    how long (default 60s)
#   SHOP_DB, BANK_DB  the databases the check reads: by default the cluster's (instance/cluster/env,
#               written by `make cluster`) for the cluster, instance/shop.db and bank.db otherwise
# Reports (CSV, HTML) in loadtest/<run id>/ (git-ignored).
set -euo pipefail
py=${1:-.venv/bin/python}
url=${LOAD_URL:-http://127.0.0.1:8080}
if [ -z "${SHOP_DB:-}" ] && [ -f instance/cluster/env ] && [ "$url" = "http://127.0.0.1:${CLUSTER_PORT:-8080}" ]; then
  # shellcheck disable=SC1091
  . instance/cluster/env
  SHOP_DB=$DATABASE_URL BANK_DB=$BANK_DATABASE_URL
  export SANDBOX_TOKEN=${SANDBOX_TOKEN:-}
fi
if [ -z "${SANDBOX_TOKEN:-}" ] && [ -f instance/sandbox-token ]; then
  SANDBOX_TOKEN=$(cat instance/sandbox-token)  # make run's development token
fi
export SANDBOX_TOKEN=${SANDBOX_TOKEN:-}
shop_db=${SHOP_DB:-sqlite:///$PWD/instance/shop.db}
bank_db=${BANK_DB:-sqlite:///$PWD/instance/bank.db}
run_id=$(date -u +%Y%m%d%H%M%S)
out=loadtest/$run_id
mkdir -p "$out"
echo "Load test $run_id against $url: ${USERS:-20} customers for ${DURATION:-60s}"
LOAD_RUN_ID=$run_id "$py" -m locust -f bench/locustfile.py --headless --host "$url" \
  --users "${USERS:-20}" --spawn-rate "${SPAWN_RATE:-5}" --run-time "${DURATION:-60s}" \
  --csv "$out/stats" --html "$out/report.html" --only-summary --exit-code-on-error 0 \
  2>&1 | tee "$out/locust.log" | tail -n 45
"$py" bench/loadtest_check.py --run-id "$run_id" --shop-db "$shop_db" --bank-db "$bank_db"
echo "Reports: $out/report.html, $out/stats_stats.csv"
