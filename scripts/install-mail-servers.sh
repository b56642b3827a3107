#!/usr/bin/env bash
# Install Dovecot and Postfix from Debian's packages for the integration tests.
# Only the binaries are used: the tests start their own instances from temporary
# config directories on free loopback ports, never the system services.
set -euo pipefail
missing=()
command -v dovecot >/dev/null || missing+=(dovecot-imapd dovecot-lmtpd)
command -v postfix >/dev/null || [ -x /usr/sbin/postfix ] || missing+=(postfix)
command -v openssl >/dev/null || missing+=(openssl)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "error: the integration tests need ${missing[*]} (Debian packages)." >&2
  echo "       Run as root, or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing ${missing[*]} from Debian's packages..."
apt-get update -qq
# The packages' post-install scripts try to start system services; no init system here
# (or a policy-rc.d) stops that, which is what we want: the tests run their own instances.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
