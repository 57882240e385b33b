#!/usr/bin/env bash
# The whole suite: lint and types, then the tests on SQLite, then the database tests on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

"$VENV/bin/ruff" check boltgate tests bench
"$VENV/bin/ruff" format --check boltgate tests bench
"$VENV/bin/mypy"

# The browser tests drive Debian's Chromium and read QR codes with zbar: install them when missing.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
command -v zbarimg >/dev/null 2>&1 || missing+=(zbar-tools)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "== installing ${missing[*]} (Debian packages)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PostgreSQL must be up for the second run (it is on machines of this kind; start it if it is down).
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break; sleep 1; done
fi

echo "== tests on SQLite"
BOLTGATE_TEST_DATABASE=sqlite "$VENV/bin/pytest" -q -p no:cacheprovider "$@"
echo "== database tests on PostgreSQL"
BOLTGATE_TEST_DATABASE=postgresql "$VENV/bin/pytest" -q -p no:cacheprovider -m db "$@"
