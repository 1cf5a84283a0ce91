#!/usr/bin/env bash
# Restore a backup of scripts/backup.sh into a database: scripts/restore.sh FILE TARGET_URL
# TARGET_URL names an existing EMPTY database (create it first: createdb, or CREATE DATABASE);
# restoring over a live database is refused. The app's migrations table comes with the data, so
# `flask db upgrade` afterwards brings an older backup to the current schema.
set -euo pipefail
file=${1:?usage: restore.sh FILE TARGET_URL}
target=${2:?usage: restore.sh FILE TARGET_URL}
libpq_url=${target/+psycopg/}
tables=$(psql "$libpq_url" -Atc "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
if [ "$tables" != "0" ]; then
  echo "restore.sh: the target database is not empty ($tables tables): refused" >&2
  exit 2
fi
pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname="$libpq_url" "$file"
echo "Restored $file into $(echo "$libpq_url" | sed -E 's#//[^@]*@#//#')"
