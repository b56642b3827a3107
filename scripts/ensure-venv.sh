#!/usr/bin/env bash
# Create the project's virtualenv, installing Debian's venv support first when it is missing.
set -euo pipefail
python=$1
venv=$2
[ -x "$venv/bin/python" ] && exit 0
if ! "$python" -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing python3-venv from Debian's packages..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
    "$python" -m venv "$venv"
  else
    echo "error: '$python -m venv' failed; install python3-venv (sudo apt-get install python3-venv)" >&2
    exit 1
  fi
fi
