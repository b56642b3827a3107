#!/usr/bin/env bash
# Install the mail servers the integration tests run: Dovecot and Postfix from Debian's
# packages, and Cyrus IMAP and Courier IMAP unpacked into /opt/imapless-test-servers
# (IMAPLESS_TEST_SERVERS_DIR; tests/support/daemons.py reads the same variable).
# Only the binaries are used: the tests start their own instances from temporary config
# directories on free loopback ports, never the system services.
#
# Idempotent and quiet: a second run installs nothing and prints nothing.
#
# Why Cyrus and Courier are unpacked instead of installed: cyrus-imapd and courier-imap
# declare "Conflicts: imap-server", and so does dovecot-imapd, so apt refuses to install
# them beside Dovecot. Their dependencies (libraries, cyrus-common's tools, Courier's
# authlib) install normally; the two server packages are fetched with `apt-get download`
# and unpacked with `dpkg-deb -x` into that directory, outside the checkout: the servers
# drop to their own users (cyrus, courier), who must be able to reach the binaries, and a
# checkout may sit in a directory only root can enter.
set -euo pipefail
servers="${IMAPLESS_TEST_SERVERS_DIR:-/opt/imapless-test-servers}"

missing=()
[ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
[ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
command -v postfix >/dev/null || [ -x /usr/sbin/postfix ] || missing+=(postfix)
command -v openssl >/dev/null || missing+=(openssl)
# Cyrus: cyrus-common brings the server's tools and libraries, sasl2-bin saslpasswd2.
[ -x /usr/sbin/cyrmaster ] || missing+=(cyrus-common)
command -v saslpasswd2 >/dev/null || missing+=(sasl2-bin)
# Courier: couriertcpd and the authlib daemon with its userdb module and tools.
[ -x /usr/sbin/couriertcpd ] || missing+=(courier-base)
[ -x /usr/sbin/authdaemond ] || missing+=(courier-authdaemon)
command -v makeuserdb >/dev/null || missing+=(courier-authlib-userdb)
dpkg -s gamin >/dev/null 2>&1 || missing+=(gamin libgamin0)
command -v unshare >/dev/null || missing+=(util-linux)
unpacked=()
[ -x "$servers/cyrus-imapd/usr/lib/cyrus/bin/imapd" ] || unpacked+=(cyrus-imapd)
[ -x "$servers/courier-imap/usr/bin/imapd" ] || unpacked+=(courier-imap)
[ ${#missing[@]} -eq 0 ] && [ ${#unpacked[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "error: the integration tests need ${missing[*]} ${unpacked[*]} (Debian packages)." >&2
  echo "       Run this script as root." >&2
  exit 1
fi

updated=no
apt_update() {
  [ "$updated" = yes ] && return
  apt-get update -qq
  updated=yes
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]} from Debian's packages..."
  apt_update
  # The packages' post-install scripts try to start system services; no init system here
  # (or a policy-rc.d) stops that, which is what we want: the tests run their own instances.
  # --no-install-recommends: cyrus-common recommends cyrus-imapd, and apt would satisfy
  # that by REMOVING dovecot-imapd (both conflict on imap-server).
  log="$(mktemp)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  # Services these packages register must hold no ports and never start at boot: the tests
  # run private instances, and a system cyrmaster or authdaemond would take 143/993 or the
  # authlib socket.
  for service in cyrus-imapd courier-authdaemon saslauthd; do
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable --now "$service" >/dev/null 2>&1 || true
    else
      [ -x "/etc/init.d/$service" ] && { "/etc/init.d/$service" stop >/dev/null 2>&1 || true; }
      command -v update-rc.d >/dev/null && { update-rc.d "$service" disable >/dev/null 2>&1 || true; }
    fi
  done
fi

if [ ${#unpacked[@]} -gt 0 ]; then
  echo "Unpacking ${unpacked[*]} into $servers..."
  mkdir -p "$servers"
  chmod 0755 "$servers"
  download="$(mktemp -d)"
  trap 'rm -rf "$download"' EXIT
  # `apt-get download` runs as the _apt user when it can, which needs write access here.
  chmod 0777 "$download"
  if ! (cd "$download" && apt-get download -qq "${unpacked[@]}" >/dev/null 2>&1); then
    apt_update
    (cd "$download" && apt-get download -qq "${unpacked[@]}" >/dev/null)
  fi
  for package in "${unpacked[@]}"; do
    rm -rf "$servers/$package.new"
    dpkg-deb -x "$download/${package}"_*.deb "$servers/$package.new"
    rm -rf "$servers/$package"
    mv "$servers/$package.new" "$servers/$package"
  done
fi
