#!/usr/bin/env bash
# Back up the shop's PostgreSQL database: scripts/backup.sh [FILE]
# DATABASE_URL as the app reads it (postgresql+psycopg://user:pass@host:port/db). Writes a
# pg_dump custom-format archive (compressed, restorable table by table) to FILE, by default
# backups/shop-YYYYMMDD-HHMMSS.dump. A consistent snapshot: pg_dump reads in one transaction,
# so the shop keeps selling while it runs.
set -euo pipefail
url=${DATABASE_URL:?set DATABASE_URL to the shop database}
case "$url" in postgresql*) ;; *) echo "backup.sh: DATABASE_URL is not PostgreSQL" >&2; exit 2 ;; esac
libpq_url=${url/+psycopg/}
file=${1:-backups/shop-$(date -u +%Y%m%d-%H%M%S).dump}
mkdir -p "$(dirname "$file")"
pg_dump --format=custom --no-owner --no-privileges --file="$file" "$libpq_url"
echo "Backup written: $file ($(du -h "$file" | cut -f1))"
