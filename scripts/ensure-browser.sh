#!/usr/bin/env bash
# Make a Chromium available for the Playwright tests: Debian's package where we can install it,
# Playwright's own download only where there is neither (a machine with internet).
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing chromium from Debian's packages..."
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/tmp/apt-chromium.log 2>&1 \
    && exit 0
  echo "apt-get install chromium failed (see /tmp/apt-chromium.log)."
fi
echo "Trying Playwright's browser..."
exec "${VENV:-.venv}/bin/python" -m playwright install chromium
