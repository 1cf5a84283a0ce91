#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL server: a temporary data directory, a free
# loopback port, stopped and removed afterwards. The command sees TEST_DATABASE_URL.
set -u
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pg_bin" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing postgresql from Debian's packages..."
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql) \
      >/tmp/apt-postgresql.log 2>&1 || { echo "installing postgresql failed (see /tmp/apt-postgresql.log)"; exit 1; }
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  else
    echo "PostgreSQL not found: install the postgresql package"; exit 1
  fi
fi
data=$(mktemp -d /tmp/pecshop-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg=()
if [ "$(id -u)" = "0" ]; then  # initdb refuses to run as root
  chown postgres "$data"
  as_pg=(runuser -u postgres --)
fi
cleanup() {
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1
  rm -rf "$data"
}
trap cleanup EXIT
"${as_pg[@]}" "$pg_bin/initdb" -D "$data" -A trust -U postgres -E UTF8 >"$data.initdb.log" 2>&1 \
  || { cat "$data.initdb.log"; exit 1; }
rm -f "$data.initdb.log"
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$data" -w -l "$data/server.log" -o \
  "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null || { cat "$data/server.log"; exit 1; }
"${as_pg[@]}" "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U postgres pecshop_test
export TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$port/pecshop_test"
echo "Throwaway PostgreSQL on 127.0.0.1:$port"
"$@"
