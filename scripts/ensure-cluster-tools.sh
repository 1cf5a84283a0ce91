#!/usr/bin/env bash
# Redis and HAProxy for the cluster test (tests/reliability/test_cluster.py) and `make cluster`:
# Debian's packages, installed when missing and we can (root + apt), as the PostgreSQL of
# scripts/with-postgres.sh is. Without them the cluster test fails and says what is missing.
set -u
missing=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing ${missing[*]} from Debian's packages..."
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}") \
    >/tmp/apt-cluster-tools.log 2>&1 || echo "apt-get install ${missing[*]} failed (see /tmp/apt-cluster-tools.log)"
else
  echo "Missing ${missing[*]}: install the Debian packages of the same name."
fi
exit 0
