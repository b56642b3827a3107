#!/usr/bin/env bash
# Install the headless browser the browser tests drive: Debian's `chromium` package
# (/usr/bin/chromium). Playwright drives it through its own protocol client from the
# package index; Playwright's bundled browser downloads are never used (a CI runner or a
# VPC may have no route to them, and the system browser gets Debian's security updates).
#
# Idempotent and quiet: a second run installs nothing and prints nothing.
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "error: the browser tests need Debian's chromium package. Run this script as root." >&2
  exit 1
fi
echo "Installing chromium from Debian's packages..."
log="$(mktemp)"
# fonts-liberation: text needs a font to have a size; without one, layout checks and
# screenshots show empty boxes.
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-liberation </dev/null; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
